"""jlc open's tunnels over a real sshd (127.0.0.2/3) to real remote Labs: carrying, dying, closing, detaching."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from sshlab import SshHost, SshLab, ssh_forward, timed_download

from conftest import Workspace, alive, answers, wait_for

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Background:
    """jlc running in the background; its stdout and stderr collected line by line."""

    def __init__(self, ws: Workspace, *args: str) -> None:
        self.proc = ws.spawn(*args, stdin=subprocess.DEVNULL)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=lambda s=s, d=d: d.extend(s), daemon=True)
                         for s, d in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for r in self._readers:
            r.start()

    def url(self, timeout: float = 60) -> str:
        return str(wait_for(lambda: next((ln.strip() for ln in self.out if ln.startswith("http")), None), timeout,
                            f"a URL from jlc open (stderr so far: {self.err})"))

    def said(self, text: str, timeout: float, after: int = 0) -> str:
        return str(wait_for(lambda: next((ln for ln in self.err[after:] if text in ln), None), timeout,
                            f"{text!r} on stderr (so far: {self.err})"))

    def finish(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout=timeout)
        for r in self._readers:
            r.join(timeout=10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


@pytest.fixture
def background(ws: Workspace) -> Iterator[list[Background]]:
    runs: list[Background] = []
    yield runs
    for run in runs:
        run.kill()


def _run(runs: list[Background], ws: Workspace, *args: str) -> Background:
    run = Background(ws, *args)
    runs.append(run)
    return run


def port_of(url: str) -> int:
    return int(url.split("://127.0.0.1:")[1].split("/")[0])


def token_of(url: str) -> str:
    return url.split("?token=")[1]


def get(port: int, path: str, token: str | None = None, timeout: float = 30) -> bytes:
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with OPENER.open(req, timeout=timeout) as resp:
        return bytes(resp.read())


def remote_project(ws: Workspace, lab: SshLab, name: str = "r1", host: str = "box1", start: bool = True) -> Path:
    if not ws.extra_toml:
        ws.extra_toml = lab.hosts_toml("box1", "box2")
    path = ws.project(name, host=host)
    if start:
        proc = ws.cli("start", name)
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return path


def sshd_serving(client_pid: int, box: SshHost) -> list[psutil.Process]:
    """The sshd processes at the far end of ``client_pid``'s SSH connections to ``box``."""
    mine = {c.laddr.port for c in psutil.Process(client_pid).net_connections("tcp")
            if c.raddr and (c.raddr.ip, c.raddr.port) == (box.address, box.port)
            and c.status == psutil.CONN_ESTABLISHED}
    out = {}
    for c in psutil.net_connections("tcp"):
        if (c.pid and c.laddr and (c.laddr.ip, c.laddr.port) == (box.address, box.port) and c.raddr
                and c.raddr.port in mine and c.pid != box.proc.pid):
            out[c.pid] = psutil.Process(c.pid)
    assert out and all(p.name() == "sshd" for p in out.values()), (mine, out)
    return list(out.values())


def tunnels(ws: Workspace) -> list[dict[str, Any]]:
    return list(ws.json("tunnels")["tunnels"])


@pytest.fixture(autouse=True)
def no_tunnel_left() -> Iterator[None]:
    """A failed test must not leave a detached tunnel running (its command line names no test path)."""
    yield
    from lifecycle import tunnel_registry as registry

    left = [p for p in (registry.process_of(r) for r in registry.records()) if p is not None]
    for proc in left:
        proc.kill()
    assert not left, f"tunnels left running: {[p.pid for p in left]}"


def test_tunnel_carries_a_lab_and_comes_back_after_its_session_is_killed(
        ws: Workspace, ssh_lab: SshLab, background: list[Background]) -> None:
    path = remote_project(ws, ssh_lab)
    payload = os.urandom(5 * 2**20)
    (path / "data.bin").write_bytes(payload)
    run = _run(background, ws, "open", "r1", "--no-browser")
    url = run.url()
    port, token = port_of(url), token_of(url)
    assert "version" in json.loads(get(port, "/api"))
    assert hashlib.sha256(get(port, "/files/data.bin", token)).digest() == hashlib.sha256(payload).digest()
    # A Lab opens dozens of connections at once; each gets its own channel.
    with ThreadPoolExecutor(24) as pool:
        answers_ = list(pool.map(lambda _: json.loads(get(port, "/api/status", token)), range(48)))
    assert all("started" in a for a in answers_)
    assert [r["project"] for r in tunnels(ws)] == ["r1"]

    before = len(run.err)
    t0 = time.monotonic()
    for proc in sshd_serving(run.proc.pid, ssh_lab.hosts["box1"]):
        proc.kill()
    lost = run.said("tunnel lost", 30, before)
    restored = run.said("tunnel restored", 30, before)
    assert time.monotonic() - t0 < 30
    assert "box1 closed the connection; reconnecting" in lost and restored
    assert "version" in json.loads(get(port, "/api"))  # same local port, new session

    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130
    assert run.err[-1].strip() == "[box1] r1: tunnel closed (SIGINT)"
    assert not any("Traceback" in ln for ln in run.err), run.err
    assert not answers(port)
    assert tunnels(ws) == []
    assert ws.cli("stop", "r1").returncode == 0


def test_sigterm_and_sighup_close_every_tunnel_in_one_line(ws: Workspace, ssh_lab: SshLab,
                                                           background: list[Background]) -> None:
    remote_project(ws, ssh_lab, "r1", "box1")
    remote_project(ws, ssh_lab, "r2", "box2")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        _open_two_then_signal(ws, _run(background, ws, "open", "r*", "--no-browser", "--keepalive", "1"), sig)
    assert ws.cli("stop", "r*").returncode == 0


def _open_two_then_signal(ws: Workspace, run: Background, sig: int) -> None:
    wait_for(lambda: len([ln for ln in run.out if ln.startswith("http")]) == 2, 60, "two URLs")
    ports = [port_of(ln) for ln in run.out]
    assert len(set(ports)) == 2 and all(answers(p) for p in ports)
    assert {t["project"]: t["pid"] for t in tunnels(ws)} == {"r1": run.proc.pid, "r2": run.proc.pid}
    # Idle for longer than two keepalive intervals: answered probes keep the sessions alive.
    quiet_until = time.monotonic() + 3.5
    wait_for(lambda: time.monotonic() > quiet_until or any("lost" in ln for ln in run.err), 10, "an idle period")
    assert not any("lost" in ln for ln in run.err), run.err
    before = len(run.err)
    run.proc.send_signal(sig)
    assert run.finish() == 128 + sig
    assert [ln.strip() for ln in run.err[before:]] == [f"2 tunnels closed ({signal.Signals(sig).name}): r1, r2"]
    assert not any(answers(p) for p in ports) and tunnels(ws) == []


def test_a_silent_session_is_declared_dead_within_30s(ws: Workspace, ssh_lab: SshLab,
                                                     background: list[Background]) -> None:
    remote_project(ws, ssh_lab)
    run = _run(background, ws, "open", "r1", "--no-browser", "--reconnect", "0")
    port = port_of(run.url())
    # A frozen far end (a sleeping laptop's peer, a dead network path): no FIN, no answers.
    frozen = sshd_serving(run.proc.pid, ssh_lab.hosts["box1"])
    try:
        for proc in frozen:
            proc.suspend()
        t0 = time.monotonic()
        assert run.finish(timeout=40) == 4
        elapsed = time.monotonic() - t0
    finally:
        for proc in frozen:
            proc.kill()
    assert elapsed < 30, elapsed  # default keepalive 10 s: dead after 20 s of silence
    assert run.err[-1].strip().startswith("[box1] r1: tunnel lost: no answer from box1 for 2")
    assert run.err[-1].strip().endswith("; closed")
    assert not any("Traceback" in ln for ln in run.err), run.err
    assert not answers(port)
    assert ws.cli("stop", "r1").returncode == 0


def test_local_port_taken_is_refused_before_any_url(ws: Workspace, ssh_lab: SshLab) -> None:
    remote_project(ws, ssh_lab)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken = squatter.getsockname()[1]
        proc = ws.cli("open", "r1", "--local-port", str(taken), "--no-browser")
    assert proc.returncode == 1
    assert proc.stdout == ""  # no URL, so no token sent to whatever listens there
    assert proc.stderr.strip().splitlines() == [
        f"error: [box1] r1: --local-port {taken} is taken by python (pid {os.getpid()}); choose another port "
        f"or leave --local-port out"]
    assert tunnels(ws) == []
    assert ws.cli("open", "r1", "--local-port", "70000").returncode == 2
    assert ws.cli("stop", "r1").returncode == 0


def test_detached_tunnels_are_listed_closed_and_keep_their_port(ws: Workspace, ssh_lab: SshLab) -> None:
    remote_project(ws, ssh_lab, "r1", "box1")
    remote_project(ws, ssh_lab, "r2", "box2")
    opened = ws.cli("open", "r*", "--detach", "--no-browser")
    assert opened.returncode == 0, opened.stderr
    urls = opened.stdout.split()
    assert len(urls) == 2 and all("?token=" in u for u in urls)
    ports = {port_of(u) for u in urls}
    for u in urls:
        assert "version" in json.loads(get(port_of(u), "/api"))
    listed = {t["project"]: t for t in tunnels(ws)}
    assert set(listed) == {"r1", "r2"} and {t["local_port"] for t in listed.values()} == ports
    assert all(t["detached"] and t["state"] == "up" and alive(t["pid"]) for t in listed.values())
    state = Path(os.environ["JLC_STATE_DIR"]) / "tunnels"
    assert state.stat().st_mode & 0o777 == 0o700
    for f in state.iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f
        assert "token" not in f.read_text() or f.suffix == ".log" and "token=<hidden>" in f.read_text()
    table = ws.cli("tunnels")
    assert table.returncode == 0 and "r1" in table.stdout and "detached" in table.stdout

    # Opening again reuses the running tunnel and prints the current URL.
    again = ws.cli("open", "r1", "--detach", "--no-browser")
    assert again.returncode == 0 and again.stdout.strip() == next(u for u in urls if port_of(u) ==
                                                                   listed["r1"]["local_port"])
    assert "tunnel already open" in again.stderr

    closed = ws.json("close", "*")
    assert {(r["project"], r["status"]) for r in closed["results"]} == {("r1", "changed"), ("r2", "changed")}
    wait_for(lambda: not any(alive(t["pid"]) for t in listed.values()), 10, "the tunnel processes to end")
    assert not any(answers(p) for p in ports) and tunnels(ws) == []
    nothing = ws.cli("close", "r1")
    assert nothing.returncode == 0 and "nothing to close" in nothing.stderr

    # The same project gets the same local port next time (bookmarks keep working)...
    reopened = ws.cli("open", "r1", "--detach", "--no-browser")
    assert port_of(reopened.stdout.strip()) == listed["r1"]["local_port"]
    assert ws.cli("close", "r1").returncode == 0
    # ...unless something else took it meanwhile: then another one, said so, and the usual one kept.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", listed["r1"]["local_port"]))
        squatter.listen(1)
        moved = ws.cli("open", "r1", "--detach", "--no-browser")
        assert moved.returncode == 0, moved.stderr
        assert port_of(moved.stdout.strip()) != listed["r1"]["local_port"]
        assert f"its usual local port {listed['r1']['local_port']} is taken" in moved.stderr
        assert ws.cli("close", "r1").returncode == 0
    assert ws.cli("stop", "r*").returncode == 0


def test_close_never_signals_a_process_it_cannot_identify(ws: Workspace, spawned: list[subprocess.Popen[bytes]]
                                                          ) -> None:
    ws.project("l1")
    sleeper = subprocess.Popen(["sleep", "60"])
    spawned.append(sleeper)
    me = psutil.Process(sleeper.pid)
    state = Path(os.environ["JLC_STATE_DIR"]) / "tunnels"
    state.mkdir(parents=True)
    base = {"project": "r9", "host": "box9", "local_port": 1, "remote_port": 2, "url": "http://127.0.0.1:1/lab",
            "pid": sleeper.pid, "create_time": me.create_time(), "cmdline": me.cmdline(), "machine": "",
            "started": "2026-01-01T00:00:00+00:00", "detached": True}
    for name, changes in (("r9", {"create_time": me.create_time() - 100}),
                          ("r8", {"project": "r8", "cmdline": ["python", "-m", "lifecycle.tunneld", "r8@box9"]})):
        (state / f"{name}@box9.json").write_text(json.dumps({**base, **changes}))
    listed = ws.json("tunnels")["tunnels"]
    assert {(t["project"], t["state"]) for t in listed} == {("r8", "gone"), ("r9", "gone")}
    assert list(state.glob("*.json")) == []  # stale records are forgotten once shown
    for name, changes in (("r9", {"create_time": me.create_time() - 100}),):
        (state / f"{name}@box9.json").write_text(json.dumps({**base, **changes}))
    proc = ws.cli("close", "r9")
    assert proc.returncode == 0 and "was not running (stale record removed)" in proc.stdout
    assert sleeper.poll() is None  # the pid's present owner was left alone


def test_open_starts_a_stopped_project_only_when_asked(ws: Workspace, ssh_lab: SshLab) -> None:
    remote_project(ws, ssh_lab, start=False)
    refused = ws.cli("open", "r1", "--no-browser")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "r1 is not running on box1; start it with 'jlc open r1 --start'" in refused.stderr
    opened = ws.cli("open", "r1", "--start", "--detach", "--no-browser")
    assert opened.returncode == 0, opened.stderr
    assert "changed: [box1] r1: start: started" in opened.stderr
    start_line = next(ln for ln in opened.stderr.splitlines() if ": start: started" in ln)
    # Where it started, by the host's name; no hint to run the open that is running.
    assert " started on box1:" in start_line and "127.0.0.1" not in start_line and "reach it" not in start_line
    url = opened.stdout.strip()
    # The printed URL is the server's current one: its token works through the tunnel.
    current = ws.json("status", "--show-token")["projects"][0]["token_url"]
    assert token_of(url) == token_of(current)
    assert "started" in json.loads(get(port_of(url), "/api/status", token_of(url)))
    assert ws.cli("close", "r1").returncode == 0
    assert ws.cli("stop", "r1").returncode == 0


def test_a_server_that_moved_is_followed(ws: Workspace, ssh_lab: SshLab, background: list[Background]) -> None:
    remote_project(ws, ssh_lab)
    run = _run(background, ws, "open", "r1", "--no-browser")
    url = run.url()
    port = port_of(url)
    old = ws.json("status")["projects"][0]["port"]
    new = next(p for p in ws.ports if p != old)
    assert ws.cli("restart", "r1", "--port", str(new)).returncode == 0
    # The next connection is refused at the far end; the tunnel asks where the server went.
    assert "version" in json.loads(get(port, "/api"))
    line = run.said("the server restarted", 30)
    assert f"now port {new} on box1" in line
    fresh = wait_for(lambda: [ln.strip() for ln in run.out if ln.startswith("http")][1:], 10, "the new URL")
    assert port_of(fresh[0]) == port and token_of(fresh[0]) != token_of(url)
    assert "started" in json.loads(get(port, "/api/status", token_of(fresh[0])))
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130
    assert ws.cli("stop", "r1").returncode == 0


def test_tunnel_throughput_is_not_far_below_ssh_L(ws: Workspace, ssh_lab: SshLab,
                                                  background: list[Background]) -> None:
    """A loose floor (the benchmark, bench/tunnel.py, has the real figures): 1 KiB reads fail it."""
    path = remote_project(ws, ssh_lab)
    (path / "big.bin").write_bytes(os.urandom(20 * 2**20))
    run = _run(background, ws, "open", "r1", "--no-browser")
    url = run.url()
    server_port = ws.json("status")["projects"][0]["port"]
    with ssh_forward(ssh_lab, "box1", server_port) as ssh_port:
        ssh = min(timed_download(ssh_port, "big.bin", token_of(url)) for _ in range(3))
        jlc = min(timed_download(port_of(url), "big.bin", token_of(url)) for _ in range(3))
    assert jlc <= ssh / 0.3, f"jlc open {jlc:.2f}s vs ssh -L {ssh:.2f}s"
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130
    assert ws.cli("stop", "r1").returncode == 0


def test_local_port_is_the_usual_one_else_the_servers_else_any(ws: Workspace) -> None:
    from lifecycle import opener
    from lifecycle.inventory import Project
    from lifecycle.report import Reporter
    from lifecycle.tunnel import Endpoint

    err = io.StringIO()
    reporter = Reporter("open", err=err)
    project = Project(name="r1", path="/x", host="box1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    where = Endpoint("127.0.0.1", free, f"http://127.0.0.1:{free}/lab?token=t")
    first = opener._bind(project, where, None, reporter)  # no usual port yet: the server's own number
    assert first.getsockname()[1] == free
    try:
        second = opener._bind(project, where, None, reporter)  # the usual one is busy: any other, said so
        try:
            assert second.getsockname()[1] != free
            assert f"its usual local port {free} is taken by python (pid {os.getpid()})" in err.getvalue()
        finally:
            second.close()
    finally:
        first.close()
    third = opener._bind(project, Endpoint("127.0.0.1", 9, where.token_url), None, reporter)
    try:
        assert third.getsockname()[1] == free  # the usual port wins over the server's new one
    finally:
        third.close()


def _on_terminal(ws: Workspace, *args: str, answer: str) -> tuple[int, str]:
    """Run jlc with a terminal as stdin/stdout/stderr; answer the first question; return (code, output)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lifecycle", *args], cwd=ws.root, stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, "JLC_INVENTORY": str(ws.inventory)},
                            start_new_session=True)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other side has closed
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"[y/N]" in seen:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=30), seen.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_open_asks_on_a_terminal_before_starting_a_project(ws: Workspace, ssh_lab: SshLab) -> None:
    remote_project(ws, ssh_lab, start=False)
    code, said = _on_terminal(ws, "open", "r1", "--no-browser", "--detach", answer="n")
    assert code == 1 and "r1 is not running on box1; start it? [y/N]" in said and "http" not in said
    assert ws.json("status")["projects"][0]["state"] == "stopped"
    code, said = _on_terminal(ws, "open", "r1", "--no-browser", "--detach", answer="y")
    assert code == 0, said
    assert "started on" in said and "?token=" in said
    assert [t["project"] for t in tunnels(ws)] == ["r1"]
    assert ws.cli("close", "r1").returncode == 0
    assert ws.cli("stop", "r1").returncode == 0


def test_simultaneous_detached_opens_make_one_tunnel(ws: Workspace, ssh_lab: SshLab) -> None:
    """Four `open --detach` of one project at once: one tunnel process, the same URL for all."""
    remote_project(ws, ssh_lab, "r1", "box1")
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: ws.cli("open", "r1", "--detach", "--no-browser"), range(4)))
    try:
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        assert len({r.stdout.strip() for r in runs}) == 1, [r.stdout for r in runs]
        assert sum("tunnel already open" in r.stderr for r in runs) == 3, [r.stderr for r in runs]
        listed = tunnels(ws)
        assert len(listed) == 1 and alive(listed[0]["pid"]), listed
        assert "version" in json.loads(get(port_of(runs[0].stdout.strip()), "/api"))
    finally:
        closed = ws.cli("close", "*")
        stopped = ws.cli("stop", "r1")
    assert closed.returncode == 0 and stopped.returncode == 0, closed.stderr + stopped.stderr
    wait_for(lambda: tunnels(ws) == [], 10, "the tunnel to be closed")


@pytest.mark.parametrize("step", ["status", "start"])
def test_open_says_why_when_a_host_answers_with_an_error(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Each step of open (asking where the server is, starting it) reports a host's error document
    for each of its projects and fails with 1; an unreachable host fails with 4. The transport is the seam."""
    from lifecycle import opener, transport
    from lifecycle.inventory import Host, Inventory, Project
    from lifecycle.report import Reporter

    projects = [Project(name="r1", path="/srv/r1", host="box1"), Project(name="r2", path="/srv/r2", host="box2")]
    inv = Inventory(source=Path("/nowhere/inventory.toml"), projects={p.name: p for p in projects},
                    hosts={h: Host(h, h) for h in ("box1", "box2")}, defaults={})
    answers = {"box1": {"version": 1, "error": "Python 3.9+ is needed on this host, found 3.8.18"},
               "box2": {"unreachable": "cannot connect to box2:22: Connection refused"}}
    monkeypatch.setattr(transport, "run", lambda *args, **kwargs: answers)
    err = io.StringIO()
    reporter = Reporter("open", out=err, err=err)
    outcome = opener.Outcome()
    if step == "status":
        ready = opener._running(inv, projects, opener.OpenOptions(), reporter, outcome)
    else:
        ready = opener._start(inv, projects, reporter, outcome)
    assert ready == [] and outcome.code == 4
    assert err.getvalue().splitlines() == [
        "error: [box1] r1: host box1: Python 3.9+ is needed on this host, found 3.8.18",
        "error: [box2] r2: host box2 unreachable: cannot connect to box2:22: Connection refused"]
