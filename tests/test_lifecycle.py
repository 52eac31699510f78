"""Start, status, stop, restart, logs against real JupyterLab servers and kernels."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import SLOW, Workspace, alive, procs_under, wait_for

STATUS_KEYS = {"name", "host", "path", "state", "pid", "port", "url", "started", "kernels", "busy_kernels",
               "rss_bytes"}
RESULT_KEYS = {"host", "project", "action", "status", "msg", "changed", "diff"}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def server_info(project: Path, pid: int, runtime: Path | None = None) -> dict[str, object]:
    return dict(json.loads(((runtime or project / ".jupyter_runtime") / f"jpserver-{pid}.json").read_text()))


def api(url: str, token: str = "", method: str = "GET", body: dict[str, object] | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"token {token}")
    with _OPENER.open(req, timeout=SLOW) as resp:
        return json.loads(resp.read() or b"null")


def start_kernel(project: Path, pid: int, runtime: Path | None = None) -> int:
    """Start a kernel through the server's API; return the kernel's process id."""
    info = server_info(project, pid, runtime)
    base = str(info["url"]).rstrip("/")
    api(f"{base}/api/kernels", str(info["token"]), "POST", {"name": "python3"})
    kernels = wait_for(lambda: [c for c in psutil.Process(pid).children(recursive=True)
                                if "ipykernel_launcher" in " ".join(c.cmdline())], SLOW, "the kernel process")
    return int(kernels[0].pid)


def started_pid(ws: Workspace, name: str) -> int:
    return int((ws.root / "projects" / name / ".logs" / "jupyter.pid").read_text())


def test_start_status_stop_cycle(ws: Workspace) -> None:
    path = ws.project("alpha")
    first = ws.cli("start", "alpha", "--no-open")
    assert first.returncode == 0, first.stderr + first.stdout
    pid_file = path / ".logs" / "jupyter.pid"
    pid = int(pid_file.read_text())  # a plain integer, as the original tools expect
    assert pid_file.read_text() == f"{pid}\n"
    meta = json.loads((path / ".logs" / "jupyter.meta.json").read_text())
    assert meta["pid"] == pid and meta["create_time"] == pytest.approx(psutil.Process(pid).create_time())
    port = meta["port"]
    assert ws.ports[0] <= port <= ws.ports[-1]
    assert f"changed: [local] alpha: started on http://127.0.0.1:{port}/lab pid {pid}" in first.stdout
    assert "changed=1" in first.stdout
    assert api(f"http://127.0.0.1:{port}/api")
    # Isolation: the server writes its runtime file into the project, not the home dir.
    token = str(server_info(path, pid)["token"])
    assert token and token not in first.stdout + first.stderr

    again = ws.cli("start", "alpha")
    assert again.returncode == 0
    assert f"ok: [local] alpha: already running on http://127.0.0.1:{port}/lab pid {pid}" in again.stdout
    assert "changed=0" in again.stdout

    doc = ws.json("status")
    assert set(doc) == {"version", "projects", "unmanaged"} and doc["version"] == 1
    row = doc["projects"][0]
    assert STATUS_KEYS <= set(row)
    assert (row["name"], row["state"], row["pid"], row["port"]) == ("alpha", "running", pid, port)
    assert row["url"] == f"http://127.0.0.1:{port}/lab" and token not in json.dumps(doc)
    assert row["kernels"] == 0 and row["rss_bytes"] > 10 * 2**20
    table = ws.cli("status")
    assert table.returncode == 0 and "alpha" in table.stdout and "running" in table.stdout
    assert token not in table.stdout
    shown = ws.json("status", "--show-token")
    assert shown["projects"][0]["token_url"].endswith(f"?token={token}")

    stop = ws.json("stop", "alpha")
    assert set(stop) == {"version", "results", "recap"}
    assert RESULT_KEYS <= set(stop["results"][0])
    assert stop["results"][0]["status"] == "changed" and stop["recap"]["local"]["changed"] == 1
    assert not alive(pid)
    assert not pid_file.exists() and not (path / ".logs" / "jupyter.meta.json").exists()
    assert not list((path / ".jupyter_runtime").glob("jpserver-*"))
    again_stop = ws.json("stop", "alpha")
    assert again_stop["results"][0]["status"] == "ok" and again_stop["recap"]["local"]["changed"] == 0
    assert ws.json("status")["projects"][0]["state"] == "stopped"


def test_restart_and_logs(ws: Workspace) -> None:
    ws.project("beta")
    assert ws.cli("start", "beta").returncode == 0
    first = started_pid(ws, "beta")
    check = ws.json("stop", "beta", "--check")
    assert check["results"][0]["msg"] == f"would stop pid {first}" and alive(first)
    doc = ws.json("restart", "beta")
    actions = [(r["action"], r["status"]) for r in doc["results"]]
    assert actions == [("stop", "changed"), ("start", "changed")]
    second = started_pid(ws, "beta")
    assert second != first and not alive(first) and alive(second)
    logs = ws.cli("logs", "beta", "-n", "5")
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 5
    full = ws.cli("logs", "beta", "-n", "400")
    assert "token=<hidden>" in full.stdout
    assert str(server_info(ws.root / "projects" / "beta", second)["token"]) not in full.stdout
    assert ws.cli("stop", "beta").returncode == 0


def test_check_mode_changes_nothing(ws: Workspace) -> None:
    path = ws.project("gamma")
    proc = ws.cli("start", "gamma", "--check")
    assert proc.returncode == 0 and f"would start on port {ws.ports[0]}" in proc.stdout
    assert not (path / ".logs").exists() and procs_under(ws.root) == []


def test_server_that_fails_to_start(ws: Workspace) -> None:
    path = ws.project("broken", args=["--no-such-flag"])
    proc = ws.cli("start", "broken")
    assert proc.returncode == 1
    assert "failed: [local] broken: jupyter exited with code 2 during startup" in proc.stdout
    assert "unrecognized arguments: --no-such-flag" in proc.stdout  # the log tail
    assert not (path / ".logs" / "jupyter.pid").exists()
    assert not (path / ".logs" / "jupyter.meta.json").exists()
    assert "failed=1" in proc.stdout and "Traceback" not in proc.stderr


def test_explicit_port_taken_and_range_skips_it(ws: Workspace) -> None:
    taken = ws.ports[2]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", taken))
        sock.listen()
        ws.project("delta", port_range=[taken, taken + 1])
        proc = ws.cli("start", "delta", "--port", str(taken))
        assert proc.returncode == 1
        expected = f"failed: [local] delta: port {taken} is in use by {psutil.Process().name()} (pid {os.getpid()})"
        assert expected in proc.stdout
        assert not (ws.root / "projects" / "delta" / ".logs" / "jupyter.pid").exists()
        ok = ws.json("start", "delta")
        assert ok["results"][0]["facts"]["port"] == taken + 1
        assert ws.cli("stop", "delta").returncode == 0


def test_pid_file_naming_an_unrelated_process(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> None:
    path = ws.project("eps")
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    spawned.append(sleeper)
    (path / ".logs").mkdir()
    (path / ".logs" / "jupyter.pid").write_text(f"{sleeper.pid}\n")
    # Identity metadata of an earlier server that had this pid: the create time differs.
    (path / ".logs" / "jupyter.meta.json").write_text(json.dumps(
        {"pid": sleeper.pid, "create_time": 1000.0, "cmdline": ["python", "-m", "jupyterlab"]}))
    row = ws.json("status")["projects"][0]
    assert row["state"] == "stale" and "now belongs to another program (sleep)" in row["note"]
    proc = ws.cli("stop", "eps")
    assert proc.returncode == 0
    assert "removed stale pid file .logs/jupyter.pid" in proc.stdout
    assert alive(sleeper.pid)
    assert not (path / ".logs" / "jupyter.pid").exists()


def test_garbage_pid_file_is_stale(ws: Workspace) -> None:
    path = ws.project("zeta")
    (path / ".logs").mkdir()
    (path / ".logs" / "jupyter.pid").write_text("hello\n")
    assert ws.json("status")["projects"][0]["state"] == "stale"
    proc = ws.cli("stop", "zeta")
    assert proc.returncode == 0 and "pid file holds 'hello', not a pid" in proc.stdout
    assert not (path / ".logs" / "jupyter.pid").exists()


def test_stop_reaps_kernels(ws: Workspace) -> None:
    ws.project("eta")
    assert ws.cli("start", "eta").returncode == 0
    pid = started_pid(ws, "eta")
    kernel = start_kernel(ws.root / "projects" / "eta", pid)
    assert ws.json("status")["projects"][0]["kernels"] == 1
    assert ws.cli("stop", "eta").returncode == 0
    assert not alive(pid) and not alive(kernel)


def test_stop_of_hung_server_kills_it_and_its_kernels(ws: Workspace) -> None:
    ws.project("theta")
    assert ws.cli("start", "theta").returncode == 0
    pid = started_pid(ws, "theta")
    kernel = start_kernel(ws.root / "projects" / "theta", pid)
    os.kill(pid, signal.SIGSTOP)  # hung: answers neither the API nor SIGTERM
    # stop-all cannot learn whether its kernel is busy: not knowing is not "idle", it is left alone.
    skipped = ws.json("stop-all")["results"][0]
    assert skipped["status"] == "skipped" and "did not say whether its kernels are busy" in skipped["msg"]
    assert alive(pid) and alive(kernel)
    doc = ws.json("stop", "theta", "--timeout", "1")
    result = doc["results"][0]
    assert result["facts"]["method"] == "SIGKILL" and result["facts"]["kernels_reaped"] == 1
    assert not alive(pid) and not alive(kernel)


def test_stale_runtime_files_cleaned_on_status(ws: Workspace) -> None:
    path = ws.project("iota")
    runtime = path / ".jupyter_runtime"
    runtime.mkdir()
    dead = 3_999_123
    (runtime / f"jpserver-{dead}.json").write_text(json.dumps({"pid": dead, "port": ws.ports[0]}))
    (runtime / f"jpserver-{dead}-open.html").write_text("")
    assert ws.cli("status").returncode == 0
    assert list(runtime.iterdir()) == []


def test_foreground_ctrl_c_stops_cleanly(ws: Workspace) -> None:
    path = ws.project("kappa")
    pid_file = path / ".logs" / "jupyter.pid"
    with ws.streaming("start", "kappa", "--foreground") as lines:
        # Ctrl-C once the tool follows the server (it said so), not while it still waits for /api.
        wait_for(lambda: any("started on" in ln for ln in lines), SLOW, "the foreground server to start")
        pid = int(pid_file.read_text())
    out = "".join(lines)
    assert "started on" in out and "stopped pid" in out, out
    assert not alive(pid)
    assert not pid_file.exists()
    assert procs_under(ws.root) == []
