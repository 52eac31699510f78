"""A server started by a project's own scripts/app.sh (the original conventions) is seen and stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import Workspace, alive, wait_for

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(port: int) -> bool:
    try:
        with _OPENER.open(f"http://127.0.0.1:{port}/api", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def app_sh_start(path: Path, venv: Path, port: int, pid_file: Path) -> subprocess.Popen[bytes]:
    """What the original spec's app.sh does: isolation env, nohup-style start, pid file right after."""
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(path / ".jupyter_config"), "JUPYTER_DATA_DIR": str(path / ".jupyter_data"),
           "JUPYTER_RUNTIME_DIR": str(path / ".jupyter_runtime"), "IPYTHONDIR": str(path / ".ipython"),
           "MPLCONFIGDIR": str(path / ".cache" / "matplotlib")}
    script = Path(sys.executable).parent / "jupyter-lab"
    launcher = [str(venv / "bin" / "python"), str(script)] if script.exists() else \
        [str(venv / "bin" / "python"), "-m", "jupyterlab"]
    cmd = launcher + ["--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--notebook-dir={path / 'notebooks'}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    (path / "notebooks").mkdir()
    pid_file.parent.mkdir(exist_ok=True)
    with open(path / "app.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def test_app_sh_server_is_seen_and_stopped(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    path = ws.project("legacy")
    port = ws.ports[3]
    proc = app_sh_start(path, ws.venv, port, path / ".run" / "jupyter.pid")
    spawned.append(proc)
    wait_for(lambda: answers(port) or proc.poll() is not None, 60, "the app.sh-style server")
    assert proc.poll() is None, (path / "app.log").read_text()

    row = ws.json("status")["projects"][0]
    assert (row["state"], row["pid"], row["port"], row["tracked"]) == ("running", proc.pid, port, True)
    again = ws.cli("start", "legacy")
    assert again.returncode == 0 and f"already running on http://127.0.0.1:{port}/lab pid {proc.pid}" in again.stdout

    stopped = ws.json("stop", "legacy")
    assert stopped["results"][0]["status"] == "changed"
    proc.wait(timeout=30)  # we are its parent here: collect it
    assert not alive(proc.pid)
    assert not (path / ".run" / "jupyter.pid").exists()
    assert ws.json("status")["projects"][0]["state"] == "stopped"


def test_server_without_pid_file_in_project_runtime_dir_is_the_projects(
        ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    path = ws.project("byhand")
    port = ws.ports[4]
    proc = app_sh_start(path, ws.venv, port, path / "elsewhere.pid")
    spawned.append(proc)
    wait_for(lambda: answers(port) and list((path / ".jupyter_runtime").glob("jpserver-*.json")), 60, "server")
    row = ws.json("status")["projects"][0]
    assert (row["state"], row["pid"], row["tracked"]) == ("running", proc.pid, False)
    adopted = ws.json("start", "byhand")["results"][0]
    assert adopted["status"] == "changed" and "adopted untracked server" in adopted["msg"]
    assert (path / ".logs" / "jupyter.pid").read_text() == f"{proc.pid}\n"
    assert ws.json("status")["projects"][0]["tracked"] is True
    assert ws.cli("stop", "byhand").returncode == 0
    proc.wait(timeout=30)
