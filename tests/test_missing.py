"""One broken project never blocks the others: a project whose directory is missing (deleted, not
cloned yet) or whose requirements file is missing is that project's problem only."""

from __future__ import annotations

import json
import shutil

from conftest import Workspace


def results(doc: dict[str, object]) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    for r in doc["results"]:  # type: ignore[attr-defined]
        out.setdefault(r["project"], []).append((r["action"], r["status"], r["msg"]))
    return out


def test_missing_directory_is_one_row_and_never_blocks_the_others(ws: Workspace) -> None:
    ws.project("alpha", port_range=[ws.ports[0], ws.ports[4]], app="server")
    ghost = ws.project("ghost", port_range=[ws.ports[5], ws.ports[9]])
    shutil.rmtree(ghost)
    why = f"{ghost} does not exist"

    status = ws.cli("status")
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith("ghost"))
    assert " missing " in line and why in line
    rows = {r["name"]: r for r in ws.json("status")["projects"]}
    assert (rows["ghost"]["state"], rows["ghost"]["note"]) == ("missing", why)
    assert rows["alpha"]["state"] == "stopped"

    # Nothing to stop is no failure; nothing to start or bootstrap is.
    stop = ws.cli("stop", "ghost")
    assert stop.returncode == 0, stop.stderr + stop.stdout
    assert f"skipped: [local] ghost: project missing: {why}" in stop.stdout
    for task in ("start", "bootstrap"):
        proc = ws.cli(task, "ghost", "--json")
        assert proc.returncode == 1, proc.stderr + proc.stdout
        assert results(json.loads(proc.stdout))["ghost"] == [(task, "failed", f"project missing: {why}")]
        assert proc.stderr == ""

    # The fleet runs: alpha starts and stops, ghost is reported beside it.
    start_all = ws.cli("start-all", "--json", timeout=180)
    assert start_all.returncode == 1, start_all.stderr + start_all.stdout
    got = results(json.loads(start_all.stdout))
    assert got["ghost"] == [("start", "failed", f"project missing: {why}")]
    assert [s for _, s, _ in got["alpha"]] == ["changed"]
    assert ws.json("status", "--only", "alpha")["projects"][0]["state"] == "running"
    stop_all = ws.cli("stop-all", "--json", timeout=120)
    assert stop_all.returncode == 0, stop_all.stderr + stop_all.stdout
    got = results(json.loads(stop_all.stdout))
    assert got["ghost"] == [("stop", "skipped", f"project missing: {why}")]
    assert [s for _, s, _ in got["alpha"]] == ["changed"]
    assert not ghost.exists()  # nothing created where the project should be


def test_missing_requirements_file_fails_that_bootstrap_only(ws: Workspace) -> None:
    ws.project("alpha")
    reqs = ws.project("reqs", requirements="requirements-dev.txt")
    proc = ws.cli("bootstrap", "*", "--check", "--json", timeout=180)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    got = results(json.loads(proc.stdout))
    assert ("requirements", "failed", f"requirements file {reqs / 'requirements-dev.txt'} does not exist") \
        in got["reqs"]
    assert all(status != "failed" for _, status, _ in got["alpha"]), got["alpha"]
    # The project is there: status shows its real state, and the rest of the inventory loads.
    assert {r["name"]: r["state"] for r in ws.json("status")["projects"]} == {"alpha": "stopped", "reqs": "stopped"}
