"""A user's own Jupyter server that the test suite must leave alone (used by .ci/run).

    bystander.py start DIR   start JupyterLab with one kernel, all under DIR (own venv, root dir,
                             HOME, Jupyter dirs, a free port); wait until it answers
    bystander.py check DIR   exit 1 unless the same server (pid + create time) and the same kernel
                             are alive and the server still answers /api and lists the kernel
    bystander.py stop DIR    stop both (SIGTERM, then SIGKILL)

It runs with the repository's .tool interpreter (psutil, jupyterlab); its venv reuses that
interpreter's packages through a .pth file, like the suite's shared venv, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import site
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

DEADLINE = 180.0  # seconds; CI machines can be slow
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _api(port: int, path: str, token: str = "", method: str = "GET", body: bytes | None = None) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers={"Authorization": f"token {token}"} if token else {})
    with _OPENER.open(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def _wait(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"bystander: timed out after {DEADLINE:g}s waiting for {what}")


def _answers(port: int) -> bool:
    try:
        return "version" in _api(port, "/api")
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(top: Path) -> None:
    venv, root, home = top / "venv", top / "root", top / "home"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=DEADLINE)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    outer = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if os.path.isdir(p)]
    (purelib / "_outer_env.pth").write_text("\n".join(dict.fromkeys(outer)) + "\n")
    root.mkdir()
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(top / "config"),
           "JUPYTER_DATA_DIR": str(top / "data"), "JUPYTER_RUNTIME_DIR": str(top / "runtime"),
           "IPYTHONDIR": str(top / "ipython")}
    port = _free_port()
    cmd = [str(venv / "bin" / "python"), "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={root}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with open(top / "server.log", "wb") as log:
        server = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: _answers(port) or server.poll() is not None, f"the bystander server on port {port}")
    if server.poll() is not None:
        sys.exit(f"bystander: the server exited with {server.returncode}: {(top / 'server.log').read_text()}")
    info = json.loads((top / "runtime" / f"jpserver-{server.pid}.json").read_text())
    kernel = _api(port, "/api/kernels", info["token"], "POST", b'{"name": "python3"}')
    kernel_proc = _wait(lambda: next((c for c in psutil.Process(server.pid).children(recursive=True)
                                      if "ipykernel_launcher" in " ".join(c.cmdline())), None), "its kernel")
    state = {"port": port, "token": info["token"], "kernel_id": kernel["id"],
             "pids": {str(p.pid): p.create_time() for p in (psutil.Process(server.pid), kernel_proc)},
             "server": server.pid}
    (top / "state.json").write_text(json.dumps(state))
    print(f"bystander: JupyterLab pid {server.pid} on port {port} with kernel pid {kernel_proc.pid}")


def check(top: Path) -> None:
    state = json.loads((top / "state.json").read_text())
    problems = []
    for pid, created in state["pids"].items():
        try:
            proc = psutil.Process(int(pid))
            if proc.create_time() != created or proc.status() == psutil.STATUS_ZOMBIE:
                problems.append(f"pid {pid} is gone (its pid now names another process)")
        except psutil.NoSuchProcess:
            problems.append(f"pid {pid} is gone")
    try:
        kernels = _api(state["port"], "/api/kernels", state["token"])
        if state["kernel_id"] not in [k["id"] for k in kernels]:
            problems.append(f"the server no longer lists kernel {state['kernel_id']}")
    except (OSError, ValueError) as exc:
        problems.append(f"the server on port {state['port']} does not answer: {exc}")
    if problems:
        sys.exit("bystander: the suite touched a server it does not own: " + "; ".join(problems))
    print(f"bystander: untouched (pid {state['server']}, port {state['port']}, kernel alive)")


def stop(top: Path) -> None:
    try:
        state = json.loads((top / "state.json").read_text())
    except OSError:
        return
    procs = []
    for pid, created in state["pids"].items():
        try:
            proc = psutil.Process(int(pid))
        except psutil.NoSuchProcess:
            continue
        if proc.create_time() == created:
            procs.append(proc)
    for proc in procs:
        proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=30)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=30)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "check", "stop"):
        sys.exit("usage: bystander.py start|check|stop DIR")
    {"start": start, "check": check, "stop": stop}[sys.argv[1]](Path(sys.argv[2]))
