"""jlc supervise against real servers: restart on crash, stopped stays stopped, backoff and give-up, one supervisor."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from test_lifecycle import api, server_info

from conftest import SLOW, Workspace, alive, answers, wait_for


class Supervisor:
    """``jlc supervise`` in the background, its stdout collected line by line."""

    def __init__(self, ws: Workspace, *args: str) -> None:
        self.proc = ws.spawn("supervise", *args)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or ()), daemon=True),
                         threading.Thread(target=lambda: self.errors.extend(self.proc.stderr or ()), daemon=True)]
        for t in self._threads:
            t.start()

    def saw(self, text: str) -> list[str]:
        return [ln for ln in list(self.lines) if text in ln]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=SLOW)
        for t in self._threads:
            t.join(timeout=10)
        return code


@contextlib.contextmanager
def supervising(ws: Workspace, *args: str) -> Iterator[Supervisor]:
    sup = Supervisor(ws, *args)
    try:
        wait_for(lambda: sup.errors or sup.proc.poll() is not None, SLOW, "the supervisor to say it runs")
        assert sup.proc.poll() is None, "".join(sup.errors)
        yield sup
    finally:
        if sup.proc.poll() is None:
            sup.stop()
        if sup.proc.poll() is None:
            sup.proc.kill()
            sup.proc.wait()


def pid_of(path: Path) -> int | None:
    try:
        return int((path / ".logs" / "jupyter.pid").read_text())
    except (OSError, ValueError):
        return None


def running_again(path: Path, old: int) -> int | None:
    """The project's new server pid, once it differs from ``old`` and its port answers."""
    pid = pid_of(path)
    if pid is None or pid == old or not alive(pid):
        return None
    meta = json.loads((path / ".logs" / "jupyter.meta.json").read_text())
    return pid if answers(int(meta["port"])) else None


def row(ws: Workspace, name: str) -> dict[str, Any]:
    return next(r for r in ws.json("status")["projects"] if r["name"] == name)


def test_killed_server_is_restarted_stopped_one_stays_stopped(ws: Workspace) -> None:
    p1 = ws.project("p1", restart="on-failure")
    p2 = ws.project("p2", restart="always")
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    first = pid_of(p1)
    assert first is not None
    with supervising(ws, "--interval", "0.5") as sup:
        # restart = always: the supervisor starts p2 itself (it is its parent: exact exit statuses).
        p2_pid = wait_for(lambda: running_again(p2, 0), SLOW, "p2 to be started by the supervisor")
        second = ws.cli("supervise", "--once")
        assert second.returncode == 1 and f"another supervisor (pid {sup.proc.pid}) already runs for" in second.stderr
        assert second.stderr.strip().splitlines()[-1].startswith("error: another supervisor")

        os.kill(first, signal.SIGKILL)
        restarted = wait_for(lambda: running_again(p1, first), SLOW, "p1 to be restarted")
        wait_for(lambda: sup.saw("changed: [local] p1: restart: pid "), SLOW, "the restart's result line")
        assert "(restart 1)" in sup.saw("changed: [local] p1: restart: pid ")[0]
        r = row(ws, "p1")
        assert (r["state"], r["pid"], r["restarts"]) == ("running", restarted, 1), r
        # It was started by `jlc start`, not by the supervisor: the reason comes from its log.
        assert r["last_exit"]["pid"] == first and "gone without a word in its log" in r["last_exit"]["reason"]
        assert "last exit: gone without a word" in r["note"]
        table = ws.cli("status")
        assert "RESTARTS" in table.stdout.splitlines()[0]

        os.kill(p2_pid, signal.SIGKILL)
        wait_for(lambda: running_again(p2, p2_pid), SLOW, "p2 to be restarted")
        r2 = row(ws, "p2")
        assert r2["last_exit"]["reason"] == "killed by signal 9 (SIGKILL)" and r2["last_exit"]["signal"] == 9, r2

        # A server the user stops stays stopped (the supervisor is seen working meanwhile: p2 again).
        assert ws.cli("stop", "p1").returncode == 0
        again = pid_of(p2)
        assert again is not None
        os.kill(again, signal.SIGKILL)
        wait_for(lambda: running_again(p2, again), SLOW, "p2 to be restarted once more")
        assert pid_of(p1) is None and row(ws, "p1")["state"] == "stopped"
        # A clean exit from inside (File > Shut Down) under on-failure: noted, left stopped.
        assert ws.cli("start", "p1", "--no-open").returncode == 0
        mine = pid_of(p1)
        assert mine is not None and row(ws, "p1")["restarts"] == 0  # a user's start is a fresh run
        info = server_info(p1, mine)
        api(f"{str(info['url']).rstrip('/')}/api/shutdown", str(info["token"]), "POST")
        wait_for(lambda: sup.saw("ok: [local] p1: pid "), SLOW, "the supervisor to notice the clean exit")
        assert "shut down from inside" in sup.saw("ok: [local] p1: pid ")[0]
        assert sup.saw("restart = on-failure leaves it stopped")
        assert pid_of(p1) is None and not alive(mine)
        # SIGTERM ends the supervisor cleanly and leaves the servers running.
        live = pid_of(p2)
        assert sup.stop(signal.SIGTERM) == 0
        assert "supervisor stopped; servers left running" in "".join(sup.errors)
    assert live is not None and alive(live)
    assert ws.cli("stop", "*").returncode == 0


def test_server_dying_at_start_backs_off_then_gives_up(ws: Workspace) -> None:
    bad = ws.project("bad", restart="always", restart_max=2, restart_window="10m",
                     args=["--ServerApp.port_retries=abc"])
    with supervising(ws, "--interval", "0.3", "--json") as sup:
        wait_for(lambda: sup.saw('"gave up after 2 restarts'), SLOW, "the supervisor to give up")
        events = [json.loads(ln) for ln in sup.lines]
        attempts = [e for e in events if e["action"] == "restart"]
        assert [e["status"] for e in attempts] == ["failed", "failed"], events
        assert "jupyter exited with code 1 during startup" in attempts[0]["msg"]
        assert "next try in 2s" in attempts[0]["msg"] and "next try in 4s" in attempts[1]["msg"]
        gave_up = [e for e in events if e["action"] == "supervise"][0]
        assert gave_up["status"] == "failed" and "jlc start bad resumes" in gave_up["msg"]
        state = json.loads((bad / ".logs" / "jupyter.state.json").read_text())
        first, second = state["recent"]
        assert second - first >= 2.0  # the backoff held the second attempt back
        r = row(ws, "bad")
        assert r["state"] == "stopped" and r["restarts"] == 2
        assert "supervisor gave up: gave up after 2 restarts in 10m" in r["note"]
        assert "port_retries" in " ".join(r["last_exit"]["log"])
        count = len(sup.lines)
        assert sup.stop(signal.SIGINT) == 0  # Ctrl-C: the same clean end
    assert len(sup.lines) == count  # nothing more was tried after giving up
    assert pid_of(bad) is None


def test_supervise_once_and_bad_flags(ws: Workspace) -> None:
    ws.project("p1")
    quiet = ws.cli("supervise", "--once")
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stdout  # nothing to do: no line
    bad = ws.cli("supervise", "--interval", "soon")
    assert bad.returncode == 2 and "--interval: expected a positive number of seconds" in bad.stderr


def test_run_state_survives_junk(tmp_path: Path) -> None:
    from lifecycle.host import runstate
    from lifecycle.host.layout import Layout

    layout = Layout(root=tmp_path, venv=tmp_path / ".venv")
    (tmp_path / ".logs").mkdir()
    path = runstate.path_of(layout)
    os.mkfifo(path)
    assert runstate.read(layout) == runstate.RunState()  # a FIFO: read at once, not waited on
    runstate.want(layout, runstate.STOPPED, "stop")  # the junk is replaced by a regular file
    assert path.is_file() and runstate.read(layout).wanted == "stopped"
    path.write_text("{not json")
    assert runstate.read(layout) == runstate.RunState()
    path.write_text('{"restarts": "many", "recent": 5, "wanted": "running", "mystery": 1}')
    state = runstate.read(layout)
    assert (state.restarts, state.recent, state.wanted) == (0, [], "running")
    path.write_text(" " * (70 * 1024))  # larger than any state file we write
    assert runstate.read(layout) == runstate.RunState()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_supervise_restarts_a_server_on_a_remote_host(ws: Workspace, ssh_lab: Any) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    path = ws.project("r1", host="box1", restart="always")
    first = ws.cli("supervise", "--once")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "changed: [box1] r1: restart: not running (restart = always): started on " in first.stdout
    pid = pid_of(path)
    assert pid is not None and alive(pid)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), SLOW, "the remote server to die")
    seen: list[str] = []

    def restarted() -> bool:
        out = ws.cli("supervise", "--once")
        seen.append(out.stdout)
        return "changed: [box1] r1: restart: " in out.stdout

    # It died within a minute of its start: a quick failure, so the restart waits out a 2 s backoff.
    wait_for(restarted, SLOW, "the remote server to be restarted", interval=0.5)
    assert f"failed: [box1] r1: pid {pid} gone without a word in its log" in seen[0]
    assert "next restart in 2s (backoff: 1 quick failure)" in seen[0]
    # Not the supervisor's child over there: the reason comes from the log, and says so.
    assert f"changed: [box1] r1: restart: pid {pid} gone without a word in its log" in seen[-1]
    r = row(ws, "r1")
    assert (r["host"], r["state"], r["restarts"]) == ("box1", "running", 2) and r["pid"] != pid
    assert ws.cli("stop", "r1").returncode == 0
    quiet = ws.cli("supervise", "--once")
    assert quiet.returncode == 0 and quiet.stdout == ""  # stopped by the user: left alone
