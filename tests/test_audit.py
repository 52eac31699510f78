"""audit: a project broken in every way the rules check is found out exactly, the safe breakages are
repaired by --fix (the others come with their fix spelled out), and a clean project passes every rule."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sshlab import SshLab

from lifecycle.host.audit import RULE_IDS

from conftest import Workspace, alive, jupyter_by_hand

HAND_WRITTEN = """\
#!/usr/bin/env bash
# Our own app.sh: no restart, no logs -f, and IPYTHONDIR set only after Jupyter runs.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export JUPYTER_CONFIG_DIR="$ROOT/.jupyter_config"
export JUPYTER_DATA_DIR="$ROOT/.jupyter_data"
export JUPYTER_RUNTIME_DIR="$ROOT/.jupyter_runtime"
export MPLCONFIGDIR="$ROOT/.cache/matplotlib"
case "$1" in
  bootstrap) python3 -m venv "$ROOT/.venv" ;;
  start) shift; case "${1:-}" in --foreground|--no-open|--port) ;; esac; jupyter lab --no-browser "$@" ;;
  stop) kill "$(cat "$ROOT/.logs/jupyter.pid")" ;;
  status) echo "?" ;;
  logs) cat "$ROOT/.logs/jupyterlab.log" ;;
esac
export IPYTHONDIR="$ROOT/.ipython"
"""


def statuses(doc: dict[str, Any], name: str) -> dict[str, str]:
    row = next(r for r in doc["projects"] if r["name"] == name)
    return {r["id"]: r["status"] for r in row["rules"]}


def rule(doc: dict[str, Any], name: str, rule_id: str) -> dict[str, Any]:
    row = next(r for r in doc["projects"] if r["name"] == name)
    return next(r for r in row["rules"] if r["id"] == rule_id)


def ephemeral() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_clean_project_passes_every_rule(ws: Workspace) -> None:
    path = ws.project("tidy")
    assert ws.cli("bootstrap", "tidy").returncode == 0
    assert ws.cli("adopt", "tidy").returncode == 0
    try:
        assert ws.cli("start", "tidy").returncode == 0
        doc = ws.json("audit", "--deep")
        assert statuses(doc, "tidy") == {r: "pass" for r in RULE_IDS}, json.dumps(doc, indent=1)
        assert [r["id"] for r in doc["rules"]] == list(RULE_IDS)
        text = ws.cli("audit")
        assert text.returncode == 0, text.stdout + text.stderr
        assert text.stdout.splitlines()[2].split() == ["tidy", "local", str(len(RULE_IDS)), "0", "0", "0"]
    finally:
        ws.cli("stop", "tidy")
    assert not (path / ".logs" / "jupyter.pid").exists()


def test_every_broken_rule_is_found_and_the_safe_ones_are_fixed(
        ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    low = ephemeral()[0] + 100
    # Ranges that overlap each other and lie in the host's ephemeral range (nothing binds them here).
    path = ws.project("broken", port_range=[low, low + 9])
    ws.project("neighbour", port_range=[low + 5, low + 14])
    assert ws.cli("bootstrap", "broken").returncode == 0
    kernels = ws.venv / "share" / "jupyter" / "kernels"
    user_spec = Path(os.environ["HOME"]) / ".local" / "share" / "jupyter" / "kernels" / "broken-user"
    try:
        # dirs: one isolation dir gone.  kernel: registered without the isolation env.
        shutil.rmtree(path / ".ipython")
        kernel_json = kernels / "broken" / "kernel.json"
        spec = json.loads(kernel_json.read_text())
        spec["env"] = {}
        kernel_json.write_text(json.dumps(spec))
        # user-kernels: a --user kernelspec that runs the project's venv.
        user_spec.mkdir(parents=True)
        (user_spec / "kernel.json").write_text(json.dumps(
            {"argv": [str(ws.venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
             "display_name": "broken (user)", "language": "python"}))
        # pid-file: junk in the conventional place, and a pid file kept somewhere else.
        (path / ".logs" / "jupyter.pid").write_text("not a pid\n")
        # gitignore: the managed block gone.
        (path / ".gitignore").write_text("*.pyc\n")
        # runtime: a runtime file of a server that is gone.
        gone = dead_pid()
        stale_runtime = path / ".jupyter_runtime" / f"jpserver-{gone}.json"
        stale_runtime.write_text(json.dumps({"pid": gone, "port": low, "url": f"http://127.0.0.1:{low}/",
                                             "token": "", "root_dir": str(path)}))
        # app-sh: a hand-written script that misses part of the contract.
        (path / "scripts").mkdir()
        (path / "scripts" / "app.sh").write_text(HAND_WRITTEN)
        # orphans and isolation-env: a server started by hand in the project, without the isolation env,
        # which also keeps its pid file in a place of its own.
        server = jupyter_by_hand(ws.venv, path, ws.ports[0], path / "by-hand.log", spawned=spawned)
        (path / "jupyter.pid").write_text(f"{server.pid}\n")

        doc = ws.json("audit", "--only", "broken", expect=1)
        found = statuses(doc, "broken")
        assert {r for r, s in found.items() if s == "fail"} == {
            "dirs", "isolation-env", "kernel", "user-kernels", "pid-file", "port-overlap", "gitignore", "runtime",
            "orphans", "app-sh"}, found
        assert {r for r, s in found.items() if s == "warn"} == {"port-span"}
        assert {r for r, s in found.items() if s == "pass"} == {"project-dir", "venv"}
        assert "jupyter.pid" in rule(doc, "broken", "pid-file")["msg"]
        assert "restart, logs -f" in rule(doc, "broken", "app-sh")["msg"]
        assert "IPYTHONDIR is set" in rule(doc, "broken", "app-sh")["msg"]
        assert f"server pid {server.pid}" in rule(doc, "broken", "orphans")["msg"]
        assert doc["results"] == [] and doc["recap"] == {}

        # --check with --fix: what would change, and nothing changes.
        checked = ws.json("audit", "--only", "broken", "--fix", "--check", expect=1)
        assert {(r["action"], r["status"]) for r in checked["results"]} == {
            ("dirs", "changed"), ("gitignore", "changed"), ("user-kernels", "changed"), ("kernel", "changed"),
            ("pid-file", "changed"), ("runtime", "changed")}
        assert all(r["msg"].startswith("would ") for r in checked["results"])
        assert not (path / ".ipython").exists() and user_spec.exists() and stale_runtime.exists()
        assert (path / ".gitignore").read_text() == "*.pyc\n"

        fixed = ws.json("audit", "--only", "broken", "--fix", expect=1)
        assert {(r["action"], r["status"]) for r in fixed["results"]} == {
            ("dirs", "changed"), ("gitignore", "changed"), ("user-kernels", "changed"), ("kernel", "changed"),
            ("pid-file", "changed"), ("runtime", "changed")}
        after = statuses(fixed, "broken")
        assert {r for r, s in after.items() if s == "fail"} == {
            "isolation-env", "pid-file", "port-overlap", "orphans", "app-sh"}, after
        # The unsafe ones say exactly what to do.
        assert rule(fixed, "broken", "isolation-env")["advice"].startswith("jlc restart broken")
        assert "jlc adopt broken --force" in rule(fixed, "broken", "app-sh")["advice"]
        assert rule(fixed, "broken", "pid-file")["fix"] is None
        assert ".logs/jupyter.pid" in rule(fixed, "broken", "pid-file")["advice"]
        assert "jlc start broken adopts the server" in rule(fixed, "broken", "orphans")["advice"]
        overlap = rule(fixed, "broken", "port-overlap")["advice"]
        assert overlap.startswith(f"in {ws.inventory}, [projects.broken]: port_range = [")
        # The safe ones were really done.
        assert (path / ".ipython").is_dir() and not stale_runtime.exists()
        assert not user_spec.exists() and (kernels / "broken-user" / "kernel.json").exists()
        assert json.loads(kernel_json.read_text())["env"]["IPYTHONDIR"] == str(path / ".ipython")
        assert "*.pyc" in (path / ".gitignore").read_text() and ".logs/" in (path / ".gitignore").read_text()
        assert not (path / ".logs" / "jupyter.pid").exists() and (path / "jupyter.pid").exists()
        assert alive(server.pid)  # never a process: orphans are the user's to stop

        again = ws.json("audit", "--only", "broken", "--fix", expect=1)
        assert [r for r in again["results"] if r["status"] != "ok"] == []
        text = ws.cli("audit", "--only", "broken")
        assert text.returncode == 1
        assert "fail: [local] broken: app-sh: scripts/app.sh: does not implement restart, logs -f" in text.stdout
        assert "    to do: fix it by hand, or replace it with a generated one: jlc adopt broken --force" in text.stdout
    finally:
        shutil.rmtree(kernels / "broken-user", ignore_errors=True)


def test_fix_check_reports_the_bootstrap_steps_a_missing_venv_needs(ws: Workspace) -> None:
    path = ws.project("novenv", venv=str(ws.root / "no-venv-yet"))
    doc = ws.json("audit", "--fix", "--check", expect=1)
    assert [(r["action"], r["msg"]) for r in doc["results"] if r["action"] in ("venv", "requirements", "kernel")] == [
        ("venv", f"would create {ws.root / 'no-venv-yet'} with {ws.projects['novenv']['python']}"),
        ("requirements", "would install requirements"), ("kernel", "would register kernel 'novenv'")]
    assert statuses(doc, "novenv")["venv"] == "fail" and rule(doc, "novenv", "venv")["fix"]
    assert not (ws.root / "no-venv-yet").exists() and not (path / ".logs").exists()


def test_a_missing_project_fails_one_rule_and_the_rest_do_not_apply(ws: Workspace) -> None:
    ws.project("here")
    ws.project("gone", path=ws.root / "not-there")
    shutil.rmtree(ws.root / "not-there")
    doc = ws.json("audit", "--only", "gone", expect=1)
    found = statuses(doc, "gone")
    assert found["project-dir"] == "fail" and set(found.values()) - {"n/a"} == {"fail", "pass"}
    assert {r for r, s in found.items() if s == "pass"} <= {"port-span", "port-overlap"}
    fixed = ws.json("audit", "--only", "gone", "--fix", expect=1)
    assert not (ws.root / "not-there").exists() and fixed["results"] == []


def test_check_needs_fix(lone_project: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "audit", "--check"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: --check only applies with --fix: audit without --fix changes nothing\n"


def test_audit_fix_and_adopt_on_a_remote_host(ws: Workspace, ssh_lab: SshLab) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    remote = ws.project("far", host="box1")
    local = ws.project("near")
    doc = ws.json("audit", expect=1)
    assert {r["host"] for r in doc["projects"]} == {"local", "box1"}
    assert statuses(doc, "far")["gitignore"] == "fail" and statuses(doc, "far")["dirs"] == "fail"
    fixed = ws.json("audit", "--only", "far", "--fix")
    assert {r["host"] for r in fixed["results"]} == {"box1"}
    assert {(r["action"], r["status"]) for r in fixed["results"]} >= {("dirs", "changed"), ("gitignore", "changed"),
                                                                      ("kernel", "changed")}
    assert "fail" not in statuses(fixed, "far").values()
    assert (remote / ".gitignore").exists() and not (local / ".gitignore").exists()
    # adopt writes through the host layer too: the text is rendered here, written there.
    adopted = ws.json("adopt", "far")["results"][0]
    assert (adopted["host"], adopted["status"]) == ("box1", "changed")
    assert (remote / "scripts" / "app.sh").stat().st_mode & 0o111
    assert rule(ws.json("audit", "--only", "far"), "far", "app-sh")["status"] == "pass"
