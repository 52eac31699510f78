"""Fault suite, kernels after a server crash: nothing the dead server's kernels started survives stop/restart."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from test_lifecycle import server_info, start_kernel

from conftest import SLOW, Workspace, alive, run_in_kernel, wait_for


def run_in_project_kernel(project: Path, code: str) -> None:
    """Execute ``code`` in the project's (only) kernel, without waiting for it."""
    runtime = project / ".jupyter_runtime"
    conn = wait_for(lambda: sorted(runtime.glob("kernel-*.json")), SLOW, "the kernel's connection file")[0]
    run_in_kernel(conn, code)


def crash_with_busy_kernel(ws: Workspace, name: str) -> tuple[Path, int, list[int]]:
    """Start the project, a kernel that started a child and is busy, then SIGKILL the server."""
    path = ws.project(name)
    assert ws.cli("start", name, "--no-open").returncode == 0
    pid = int((path / ".logs" / "jupyter.pid").read_text())
    kernel = start_kernel(path, pid)
    marker = path / "child.pid"
    run_in_project_kernel(path, "import subprocess, time\n"
                             f"p = subprocess.Popen(['sleep', '600'])\nopen({str(marker)!r}, 'w').write(str(p.pid))\n"
                             "time.sleep(600)\n")
    child = int(wait_for(lambda: marker.exists() and marker.read_text(), SLOW, "the kernel's child"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), SLOW, "the server to die")
    return path, pid, [kernel, child]


@pytest.mark.parametrize("action", ["stop", "restart"])
def test_crashed_server_leaves_nothing_after_stop_or_restart(ws: Workspace, action: str) -> None:
    path, dead, left = crash_with_busy_kernel(ws, "p1")
    # ipykernel may exit on its own once its server is gone; what it started does not.
    wait_for(lambda: alive(left[1]), 5, "the kernel's child to still run")
    row = next(r for r in ws.json("status")["projects"] if r["name"] == "p1")
    assert row["state"] == "stale" and "left by a server that is gone" in row["note"], row
    # Listed as an orphan kernel while the kernel lives, else (re-parented) as a process it left.
    orphans = {o["pid"]: o for o in ws.json("orphans")["orphans"]}
    listed = [orphans[p] for p in left if p in orphans]
    assert listed and all(o["project"] == "p1" for o in listed), orphans

    done = ws.cli(action, "p1")
    assert done.returncode == 0, done.stderr + done.stdout
    assert not any(alive(p) for p in left), [p for p in left if alive(p)]
    info = json.loads((path / ".logs" / "jupyter.meta.json").read_text()) if action == "restart" else None
    if info is not None:
        assert info["pid"] != dead and alive(int(info["pid"]))
        assert server_info(path, int(info["pid"]))["root_dir"]
        assert ws.cli("stop", "p1").returncode == 0
    assert not [p for p in psutil.pids() if p in left and alive(p)]
