"""lifecycle/merge.py: answers of host names that are one machine become one list (pure functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle.inventory import parse_inventory
from lifecycle.merge import answers_once, rows_once

INV = parse_inventory('[hosts.a]\naddress = "box"\n[hosts.b]\naddress = "box-alias"\n[hosts.c]\naddress = "other"\n'
                      '[projects.pa]\npath = "/p/a"\nhost = "a"\n[projects.pb]\npath = "/p/b"\nhost = "b"\n',
                      Path("/inv.toml"))


def port(host: str, number: int, project: str | None, ranges: list[str]) -> dict[str, Any]:
    return {"host": host, "port": number, "project": project, "range": ranges}


def test_rows_of_one_machine_are_listed_once_under_their_projects_host() -> None:
    answers = {
        "a": {"machine": "m1", "ports": [port("a", 9001, "pa", ["pa"]), port("a", 9002, "pb", [])]},
        "b": {"machine": "m1", "ports": [port("b", 9001, "pa", []), port("b", 9002, "pb", ["pb"])]},
        "c": {"machine": "m2", "ports": [port("c", 9001, None, [])]},
    }

    def union(kept: dict[str, Any], dropped: dict[str, Any]) -> None:
        kept["range"] = sorted(set(kept["range"]) | set(dropped["range"]))

    rows = rows_once(INV, answers, "ports", lambda r: r["port"], union)
    assert [(r["host"], r["port"], r["project"], r["range"]) for r in rows] == [
        ("a", 9001, "pa", ["pa"]), ("b", 9002, "pb", ["pb"]), ("c", 9001, None, [])]


def test_a_row_naming_a_project_wins_over_one_that_does_not() -> None:
    answers = {"a": {"machine": "m1", "orphans": [{"kind": "kernel", "pid": 7, "project": None}]},
               "b": {"machine": "m1", "orphans": [{"kind": "kernel", "pid": 7, "project": "pb"},
                                                  {"kind": "server", "pid": 7, "project": None}]}}
    rows = rows_once(INV, answers, "orphans", lambda r: (r["kind"], r["pid"]))
    assert [(r["kind"], r["project"]) for r in rows] == [("kernel", "pb"), ("server", None)]


def test_answers_without_a_machine_are_never_merged() -> None:
    answers = {"a": {"ports": [port("a", 9001, None, [])]}, "b": {"ports": [port("b", 9001, None, [])]}}
    assert len(rows_once(INV, answers, "ports", lambda r: r["port"])) == 2


def test_which_keeps_one_answer_per_machine_preferring_the_owner_and_an_answer_over_an_error() -> None:
    answers = {"a": {"machine": "m1", "host": "a", "project": "pb"},
               "b": {"machine": "m1", "host": "b", "project": "pb"},
               "c": {"machine": "m2", "error": "nothing listens on port 9"}}
    assert list(answers_once(INV, answers)) == ["b", "c"]
    errors_first: dict[str, dict[str, Any]] = {"a": {"machine": "m1", "error": "no process has pid 9"},
                                               "b": {"machine": "m1", "host": "b", "project": None}}
    assert list(answers_once(INV, errors_first)) == ["b"]


def test_a_container_on_this_kernel_is_another_machine() -> None:
    """Containers share the kernel's boot id but not pids or ports: their answers must not be merged."""
    import shutil
    import subprocess
    import sys

    from lifecycle.host.procs import boot_id, machine_id

    if not boot_id() or not shutil.which("unshare"):
        pytest.skip("needs a boot id and unshare")
    code = "from lifecycle.host.procs import machine_id; print(machine_id())"
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--net", "--fork", "--mount-proc",
                           sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a namespace here: {proc.stderr.strip()}")
    theirs = proc.stdout.strip()
    assert theirs.startswith(boot_id()), theirs  # the same kernel boot...
    assert theirs != machine_id()  # ...but not the same machine
    # The same process asking twice is one machine.
    assert machine_id() == machine_id()
