"""Fault suite, concurrency and crashes: one project, one server, whatever runs at the same time.

Concurrent starts of one project, concurrent start-alls, a start beside a
start-all, and the CLI SIGKILLed in the middle of start and stop.  Before the
per-project lock, 5 concurrent starts gave 2-3 servers.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from conftest import SLOW, Workspace, alive, servers_in, wait_for


def launch(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return ws.spawn(*args)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout + stderr))
    return out


def state(ws: Workspace, name: str) -> dict[str, object]:
    return next(r for r in ws.json("status")["projects"] if r["name"] == name)


@pytest.mark.parametrize("round_", range(3))
def test_five_concurrent_starts_give_one_server(ws: Workspace, round_: int) -> None:
    path = ws.project("p1")
    results = finish([launch(ws, "start", "p1", "--no-open") for _ in range(5)])
    assert all(code == 0 for code, _ in results), results
    servers = servers_in(path)
    assert len(servers) == 1, f"round {round_}: {len(servers)} servers: {servers}; {results}"
    assert sum("started on" in out for _, out in results) == 1
    assert state(ws, "p1")["pid"] == servers[0]
    assert ws.cli("stop", "p1").returncode == 0
    assert servers_in(path) == []


def test_two_concurrent_start_alls_give_one_server_per_project(ws: Workspace) -> None:
    paths = {name: ws.project(name) for name in ("a", "b", "c")}
    results = finish([launch(ws, "start-all"), launch(ws, "start-all")])
    assert all(code == 0 for code, _ in results), results
    for name, path in paths.items():
        assert len(servers_in(path)) == 1, f"{name}: {servers_in(path)}"
    rows = {r["name"]: r for r in ws.json("status")["projects"]}
    assert {n: r["pid"] for n, r in rows.items()} == {n: servers_in(p)[0] for n, p in paths.items()}
    assert ws.cli("stop-all").returncode == 0
    assert all(servers_in(p) == [] for p in paths.values())


def test_start_beside_start_all_keeps_the_pid_file(ws: Workspace) -> None:
    """start-all's scan predates c12's pid file: it must not call that file stale and start a second server."""
    paths = {name: ws.project(name) for name in ("c11", "c12")}
    results = finish([launch(ws, "start", "c12", "--no-open"), launch(ws, "start-all")])
    assert all(code == 0 for code, _ in results), results
    assert len(servers_in(paths["c12"])) == 1
    row = state(ws, "c12")
    assert row["state"] == "running" and row["pid"] == servers_in(paths["c12"])[0] and row["tracked"]
    assert ws.cli("stop-all").returncode == 0


@pytest.mark.parametrize("delay", [0.05, 0.4, 1.5])
def test_cli_killed_during_start_then_status_tells_the_truth(ws: Workspace, delay: float) -> None:
    path = ws.project("p1")
    cli = launch(ws, "start", "p1", "--no-open")
    time.sleep(delay)  # the moment of the crash is the test's parameter, not a wait for a condition
    cli.send_signal(signal.SIGKILL)
    cli.communicate(timeout=SLOW)
    # Whatever the moment, status and reality agree once the server (if any) is up.
    running = servers_in(path)
    if running:
        wait_for(lambda: state(ws, "p1")["state"] == "running", SLOW, "the orphaned start's server to answer")
        assert state(ws, "p1")["pid"] == running[0]
    else:
        assert state(ws, "p1")["state"] in ("stopped", "stale")
    again = ws.cli("start", "p1", "--no-open")
    assert again.returncode == 0, again.stderr + again.stdout
    assert len(servers_in(path)) == 1
    assert ws.cli("stop", "p1").returncode == 0
    assert servers_in(path) == [] and state(ws, "p1")["state"] == "stopped"


@pytest.mark.parametrize("delay", [0.05, 0.5])
def test_cli_killed_during_stop_then_status_tells_the_truth(ws: Workspace, delay: float) -> None:
    path = ws.project("p1")
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    pid = servers_in(path)[0]
    cli = launch(ws, "stop", "p1")
    time.sleep(delay)  # the moment of the crash, as above
    cli.send_signal(signal.SIGKILL)
    cli.communicate(timeout=SLOW)
    row = state(ws, "p1")
    if alive(pid):
        # The API shutdown may still be under way: it ends in stopped, never in a lie.
        wait_for(lambda: not alive(pid) or state(ws, "p1")["state"] == "running", SLOW, "a settled state")
    final = ws.cli("stop", "p1")
    assert final.returncode == 0, final.stderr + final.stdout
    assert servers_in(path) == [] and state(ws, "p1")["state"] == "stopped", row
