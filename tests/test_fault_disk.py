"""Fault suite, disks: a full or read-only project never leaves a server untracked or the fleet view broken.

The CLI runs in a private mount namespace (``unshare --mount``) where the
project's ``.logs`` is a full tmpfs, or the project is read-only; the rest of
the machine never sees those mounts.  Skipped where mount namespaces are not
available (not root and no user namespaces).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workspace, alive, servers_in


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _can_unshare(), reason="needs mount namespaces (root or user namespaces)")


def in_mount_namespace(ws: Workspace, script: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    jlc = f"{shlex.quote(sys.executable)} -m lifecycle"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                           f"set -u; jlc() {{ {jlc} \"$@\"; }}; {script}"],
                          capture_output=True, text=True, timeout=timeout, cwd=ws.root,
                          env={**os.environ, "JLC_INVENTORY": str(ws.inventory)})


def test_start_with_full_logs_leaves_nothing_running(ws: Workspace) -> None:
    path = ws.project("p1")
    logs = path / ".logs"
    logs.mkdir()
    out = in_mount_namespace(ws, f"""
        mount -t tmpfs -o size=64k,mode=0700 tmpfs {shlex.quote(str(logs))}
        dd if=/dev/zero of={shlex.quote(str(logs / 'fill'))} bs=4k 2>/dev/null || true
        jlc start p1 --no-open; echo "exit=$?"
    """)
    assert "exit=1" in out.stdout, out.stdout + out.stderr
    assert "no space left on device" in out.stdout, out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    # Nothing the failed start spawned is left, and the next status agrees.
    assert servers_in(path) == []
    row = ws.json("status")["projects"][0]
    assert row["state"] == "stopped" and row["pid"] is None, row


def test_read_only_project_stops_cleanly_and_the_view_survives(ws: Workspace) -> None:
    path = ws.project("p1")
    ws.project("other")
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    pid = int((path / ".logs" / "jupyter.pid").read_text())
    quoted = shlex.quote(str(path))
    out = in_mount_namespace(ws, f"""
        mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted}
        jlc stop p1; echo "exit=$?"
        jlc status --json > status.json; echo "status=$?"
    """)
    assert "exit=0" in out.stdout and "status=0" in out.stdout, out.stdout + out.stderr
    assert not alive(pid)
    assert "warning: could not remove" in out.stdout and "Read-only file system" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    doc = json.loads((ws.root / "status.json").read_text())
    rows = {r["name"]: r for r in doc["projects"]}
    assert rows["p1"]["state"] == "stale" and rows["other"]["state"] == "stopped"
    # Writable again (outside the namespace): the next stop repairs what could not be removed.
    again = ws.cli("stop", "p1")
    assert again.returncode == 0 and "removed" in again.stdout, again.stdout
    assert not (path / ".logs" / "jupyter.pid").exists()
    assert ws.json("status")["projects"][0]["state"] == "stopped"


def test_private_modes(ws: Workspace) -> None:
    """Pid file, identity, log, .logs and the runtime dir are owner-only, and loose ones get tightened."""
    path = ws.project("p1")
    (path / ".logs").mkdir(mode=0o755)
    (path / ".logs").chmod(0o755)
    (path / ".logs" / "jupyterlab.log").write_text("old\n")
    (path / ".logs" / "jupyterlab.log").chmod(0o644)
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    try:
        def mode(p: Path) -> int:
            return p.stat().st_mode & 0o777

        logs, runtime = path / ".logs", path / ".jupyter_runtime"
        assert mode(logs) == 0o700 and mode(runtime) == 0o700
        for name in ("jupyter.pid", "jupyter.meta.json", "jupyterlab.log", "jupyterlab.log.1"):
            assert mode(logs / name) == 0o600, name
        pid = int((logs / "jupyter.pid").read_text())
        for runtime_file in runtime.glob(f"jpserver-{pid}*"):
            assert mode(runtime_file) & 0o077 == 0, runtime_file
    finally:
        assert ws.cli("stop", "p1").returncode == 0
