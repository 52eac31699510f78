"""Servers started by hand: seen where the user would look, stoppable one at a time (stop-server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_lifecycle import start_kernel

from conftest import SLOW, Workspace, alive, answers, jupyter_by_hand, wait_for


def row(ws: Workspace, name: str) -> dict[str, object]:
    return next(r for r in ws.json("status")["projects"] if r["name"] == name)


def test_server_started_by_hand_without_isolation_belongs_to_its_project(
        ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    """`cd project && jupyter lab`: its runtime file goes to ~/.local/share/jupyter/runtime, not the project."""
    path = ws.project("p1")
    port = ws.ports[5]
    server = jupyter_by_hand(ws.venv, path, port, ws.root / "hand.log", spawned=spawned)
    assert not (path / ".jupyter_runtime").exists()  # nothing of the project's isolation was used
    state = row(ws, "p1")
    assert (state["state"], state["pid"], state["tracked"]) == ("running", server.pid, False), state
    assert "without the project's isolation env" in str(state["note"])
    # start does not start a second server beside it: it adopts this one and says what it found.
    start = ws.cli("start", "p1", "--no-open")
    assert start.returncode == 0, start.stderr + start.stdout
    assert "adopted untracked server (started by hand without the project's isolation env)" in start.stdout
    assert int((path / ".logs" / "jupyter.pid").read_text()) == server.pid
    assert row(ws, "p1")["tracked"] is True
    stop = ws.cli("stop", "p1")
    assert stop.returncode == 0, stop.stderr + stop.stdout
    wait_for(lambda: server.poll() is not None, SLOW, "the hand-started server to exit")
    assert row(ws, "p1")["state"] == "stopped"


def test_stop_finds_an_untracked_hand_started_server(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    path = ws.project("p1")
    server = jupyter_by_hand(ws.venv, path, ws.ports[6], ws.root / "hand.log", spawned=spawned)
    stop = ws.cli("stop", "p1")
    assert stop.returncode == 0 and "found by its root dir" in stop.stdout, stop.stdout
    wait_for(lambda: server.poll() is not None, SLOW, "the hand-started server to exit")


def test_interpreter_path_never_attributes_a_server(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    """A server run by a script inside a project, serving a directory outside every project, is unmanaged."""
    path = ws.project("p1")
    outside = ws.root / "outside"
    outside.mkdir()
    script = Path(sys.executable).parent / "jupyter-lab"
    if not script.exists():
        pytest.skip("needs the jupyter-lab console script beside this interpreter")
    (path / "bin").mkdir()
    local_script = path / "bin" / "jupyter-lab"
    shutil.copy(script, local_script)
    port = ws.ports[7]
    cmd = [str(ws.venv / "bin" / "python"), str(local_script), "--no-browser", f"--port={port}",
           "--ip=127.0.0.1", f"--notebook-dir={outside}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with open(ws.root / "outside.log", "wb") as log:
        server = subprocess.Popen(cmd, cwd=outside, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    spawned.append(server)
    wait_for(lambda: answers(port) or server.poll() is not None, SLOW, "the outside server")
    doc = ws.json("status")
    assert doc["projects"][0]["state"] == "stopped"
    assert [u["pid"] for u in doc["unmanaged"]] == [server.pid]
    orphans = {o["pid"]: o for o in ws.json("orphans")["orphans"]}
    assert orphans[server.pid]["project"] is None
    # And stop of the project leaves it alone.
    assert ws.cli("stop", "p1").returncode == 0 and alive(server.pid)


def test_stop_server_by_port_and_by_pid(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    outside = ws.root / "outside"
    outside.mkdir()
    ws.project("p1")
    first = jupyter_by_hand(ws.venv, outside, ws.ports[8], ws.root / "a.log", spawned=spawned)
    kernel = start_kernel_anywhere(first.pid)
    second = jupyter_by_hand(ws.venv, outside, ws.ports[9], ws.root / "b.log", spawned=spawned)

    check = ws.cli("stop-server", str(ws.ports[8]), "--check")
    assert check.returncode == 0 and "would stop untracked server" in check.stdout and alive(first.pid)
    by_port = ws.cli("stop-server", str(ws.ports[8]))
    assert by_port.returncode == 0, by_port.stderr + by_port.stdout
    assert f"stopped untracked server pid {first.pid} on port {ws.ports[8]}" in by_port.stdout
    wait_for(lambda: first.poll() is not None and not alive(kernel), SLOW, "the server and its kernel to go")
    by_pid = ws.json("stop-server", f"pid:{second.pid}")
    assert by_pid["results"][0]["status"] == "changed" and by_pid["results"][0]["facts"]["pid"] == second.pid
    wait_for(lambda: second.poll() is not None, SLOW, "the second server to exit")

    gone = ws.cli("stop-server", str(ws.ports[8]))
    assert gone.returncode == 1 and "no Jupyter server matches" in gone.stdout
    bad = ws.cli("stop-server", "eighty")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_stop_server_refuses_a_projects_tracked_server(ws: Workspace) -> None:
    path = ws.project("p1")
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    pid = int((path / ".logs" / "jupyter.pid").read_text())
    refused = ws.cli("stop-server", f"pid:{pid}")
    assert refused.returncode == 1 and "use `stop p1`" in refused.stdout and alive(pid)
    assert ws.cli("stop", "p1").returncode == 0


def start_kernel_anywhere(server_pid: int) -> int:
    """Start a kernel in a server whose runtime file lives in the (test's) default runtime dir."""
    runtime = Path(os.environ["HOME"]) / ".local" / "share" / "jupyter" / "runtime"
    return start_kernel(runtime, server_pid, runtime)
