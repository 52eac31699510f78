"""A server started by a project's own scripts/app.sh (the original conventions) is seen and stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import SLOW, Workspace, alive, jupyter_by_hand, wait_for


def app_sh_start(path: Path, venv: Path, port: int, pid_file: Path,
                 spawned: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """What the original spec's app.sh does: isolation env, nohup-style start, pid file right after."""
    env = {"JUPYTER_CONFIG_DIR": str(path / ".jupyter_config"), "JUPYTER_DATA_DIR": str(path / ".jupyter_data"),
           "JUPYTER_RUNTIME_DIR": str(path / ".jupyter_runtime"), "IPYTHONDIR": str(path / ".ipython"),
           "MPLCONFIGDIR": str(path / ".cache" / "matplotlib")}
    (path / "notebooks").mkdir()
    pid_file.parent.mkdir(exist_ok=True)
    proc = jupyter_by_hand(venv, path / "notebooks", port, path / "app.log", env, spawned)
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def test_app_sh_server_is_seen_and_stopped(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    path = ws.project("legacy")
    port = ws.ports[3]
    proc = app_sh_start(path, ws.venv, port, path / ".run" / "jupyter.pid", spawned)

    row = ws.json("status")["projects"][0]
    assert (row["state"], row["pid"], row["port"], row["tracked"]) == ("running", proc.pid, port, True)
    again = ws.cli("start", "legacy")
    assert again.returncode == 0 and f"already running on http://127.0.0.1:{port}/lab pid {proc.pid}" in again.stdout

    stopped = ws.json("stop", "legacy")
    assert stopped["results"][0]["status"] == "changed"
    proc.wait(timeout=SLOW)  # we are its parent here: collect it
    assert not alive(proc.pid)
    assert not (path / ".run" / "jupyter.pid").exists()
    assert ws.json("status")["projects"][0]["state"] == "stopped"


def test_server_without_pid_file_in_project_runtime_dir_is_the_projects(
        ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    path = ws.project("byhand")
    port = ws.ports[4]
    proc = app_sh_start(path, ws.venv, port, path / "elsewhere.pid", spawned)
    wait_for(lambda: list((path / ".jupyter_runtime").glob("jpserver-*.json")), SLOW, "its runtime file")
    row = ws.json("status")["projects"][0]
    assert (row["state"], row["pid"], row["tracked"]) == ("running", proc.pid, False)
    adopted = ws.json("start", "byhand")["results"][0]
    assert adopted["status"] == "changed" and "adopted untracked server" in adopted["msg"]
    assert (path / ".logs" / "jupyter.pid").read_text() == f"{proc.pid}\n"
    assert ws.json("status")["projects"][0]["tracked"] is True
    assert ws.cli("stop", "byhand").returncode == 0
    proc.wait(timeout=SLOW)
