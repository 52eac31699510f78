"""Across projects: status, ports, orphans, which, orphans --kill, stop-all, start-all on one real scenario.

Three projects run under the tool; a server was started by hand inside one project's directory; one
runs outside every project; a kernel lost its server; a plain socket holds a port of one range.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from conftest import SLOW, Workspace, alive, answers, jupyter_by_hand, procs_under, wait_for


@dataclass
class Scene:
    ws: Workspace
    tracked: dict[str, int]
    untracked: subprocess.Popen[bytes]
    unmanaged: subprocess.Popen[bytes]
    orphan_kernel: int
    held_port: int


def orphan_kernel(ws: Workspace, project: Path) -> int:
    """A kernel whose launcher is gone: started through a shell that exits at once."""
    conn = project / ".jupyter_runtime" / "kernel-orphan.json"
    env = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
    env["IPYTHONDIR"] = str(project / ".ipython")
    cmd = f"'{ws.venv}/bin/python' -m ipykernel_launcher -f '{conn}' </dev/null >/dev/null 2>&1 & echo $!"
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=SLOW, cwd=project)
    pid = int(out.stdout.strip())
    wait_for(conn.exists, SLOW, "the orphan kernel's connection file")
    wait_for(lambda: psutil.Process(pid).ppid() == 1 or psutil.Process(pid).parent() is None, SLOW, "reparenting")
    return pid


@pytest.fixture
def scene(ws: Workspace, spawned: list[subprocess.Popen[bytes]]) -> Iterator[Scene]:
    b = ws.ports
    ws.project("p1", port_range=[b[0], b[1]])
    ws.project("p2", port_range=[b[2], b[3]])
    p3 = ws.project("p3", port_range=[b[4], b[5]])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", b[0]))  # a plain socket on p1's first port
        holder.listen()
        started = ws.json("start-all")
        assert started["recap"]["local"]["changed"] == 3, started
        tracked = {r["project"]: r["facts"]["pid"] for r in started["results"]}
        untracked = jupyter_by_hand(ws.venv, ws.root / "projects" / "p2", b[3], ws.root / "byhand.log",
                                    spawned=spawned)
        outside = ws.root / "outside"
        outside.mkdir()
        unmanaged = jupyter_by_hand(ws.venv, outside, b[7], ws.root / "outside.log", spawned=spawned)
        kernel = orphan_kernel(ws, p3)
        try:
            yield Scene(ws, tracked, untracked, unmanaged, kernel, b[0])
        finally:
            if alive(kernel):
                psutil.Process(kernel).kill()


def ours(rows: list[dict[str, object]], pids: set[int]) -> list[dict[str, object]]:
    """Rows about processes this test started (the machine may run other Jupyter servers)."""
    return [r for r in rows if r["pid"] in pids or r.get("project") in ("p1", "p2", "p3")]


def test_status_ports_orphans_which_then_stop_all(scene: Scene) -> None:
    ws, b = scene.ws, scene.ws.ports
    every = set(scene.tracked.values()) | {scene.untracked.pid, scene.unmanaged.pid, scene.orphan_kernel}

    status = ws.json("status")
    rows = {r["name"]: r for r in status["projects"]}
    assert [r["name"] for r in status["projects"]] == ["p1", "p2", "p3"]
    assert {n: (r["state"], r["pid"], r["port"]) for n, r in rows.items()} == {
        "p1": ("running", scene.tracked["p1"], b[1]),  # the socket holds b[0]
        "p2": ("running", scene.tracked["p2"], b[2]),
        "p3": ("running", scene.tracked["p3"], b[4]),
    }
    unmanaged = ours(status["unmanaged"], every)
    assert [(u["pid"], u["port"], u["root_dir"]) for u in unmanaged] == [
        (scene.unmanaged.pid, b[7], str(ws.root / "outside"))]

    ports = {r["port"]: r for r in ws.json("ports")["ports"]}
    me = psutil.Process()
    assert {p: (r["state"], r["pid"], r["project"]) for p, r in ports.items() if p in b} == {
        b[0]: ("other", os.getpid(), None),
        b[1]: ("jupyter", scene.tracked["p1"], "p1"),
        b[2]: ("jupyter", scene.tracked["p2"], "p2"),
        b[3]: ("jupyter", scene.untracked.pid, "p2"),
        b[4]: ("jupyter", scene.tracked["p3"], "p3"),
        b[5]: ("free", None, None),
        b[7]: ("jupyter", scene.unmanaged.pid, None),
    }
    assert ports[b[0]]["process"] == me.name()
    assert ports[b[7]]["range"] == []  # a server outside every range
    assert b[6] not in ports  # neither in a range nor a Jupyter server

    orphans = ours(ws.json("orphans")["orphans"], every)
    assert sorted((o["kind"], o["pid"], o["project"]) for o in orphans) == sorted([
        ("server", scene.untracked.pid, "p2"),
        ("server", scene.unmanaged.pid, None),
        ("kernel", scene.orphan_kernel, "p3"),
    ])

    which_port = ws.json("which", str(b[1]))
    assert (which_port["kind"], which_port["project"], which_port["pid"]) == ("port", "p1", scene.tracked["p1"])
    assert which_port["url"] == f"http://127.0.0.1:{b[1]}/lab" and "token_url" not in which_port
    assert "token=" in ws.json("which", str(b[1]), "--show-token")["token_url"]
    which_kernel = ws.json("which", f"pid:{scene.orphan_kernel}")
    assert (which_kernel["kind"], which_kernel["role"], which_kernel["project"], which_kernel["orphan"]) == (
        "pid", "kernel", "p3", True)
    (ws.root / "projects" / "p3" / "sub").mkdir()
    which_path = ws.json("which", str(ws.root / "projects" / "p3" / "sub"))
    assert (which_path["kind"], which_path["project"], which_path["pid"]) == ("path", "p3", scene.tracked["p3"])
    missing = ws.cli("which", "/no/such/thing")
    assert missing.returncode == 2 and "not a port, a running pid, or an existing path" in missing.stderr

    table = ws.cli("orphans")
    assert "(none)" in table.stdout and "kernel" in table.stdout
    # A long command is cut in the middle: the hand-started server's port and root dir stay visible.
    by_hand = next(line for line in table.stdout.splitlines() if f" {scene.untracked.pid} " in line)
    assert f"--port={b[3]}" in by_hand and "projects/p2" in by_hand, by_hand

    # stop-all takes these projects' orphans too (p3's stop reaps the kernel its project lost, the
    # sweep the untracked server in p2) and leaves the server outside every project alone.
    stopped = ws.json("stop-all")
    by_pid = {r["facts"]["pid"]: r for r in stopped["results"] if r["action"] == "orphan"}
    assert by_pid[scene.untracked.pid]["status"] == "changed"
    assert stopped["recap"]["local"]["failed"] == 0
    scene.untracked.wait(timeout=SLOW)
    wait_for(lambda: not alive(scene.orphan_kernel), SLOW, "the orphan kernel to go")
    assert not any(alive(pid) for pid in scene.tracked.values())
    assert alive(scene.unmanaged.pid) and answers(b[7])


@pytest.mark.machine_wide
def test_kill_orphans_then_stop_all_including_unmanaged(scene: Scene) -> None:
    """orphans --kill and stop-all --include-unmanaged act on every Jupyter process of the user."""
    ws = scene.ws
    every = set(scene.tracked.values()) | {scene.untracked.pid, scene.unmanaged.pid, scene.orphan_kernel}
    killed = ws.json("orphans", "--kill")
    by_pid = {r["facts"]["pid"]: r for r in killed["results"] if r.get("facts")}
    assert by_pid[scene.untracked.pid]["status"] == "changed"
    assert by_pid[scene.orphan_kernel]["status"] == "changed"
    skipped = [r for r in killed["results"] if r["status"] == "skipped"]
    assert any(f"unmanaged server pid {scene.unmanaged.pid} left alone" in r["msg"] for r in skipped)
    scene.untracked.wait(timeout=SLOW)
    wait_for(lambda: not alive(scene.orphan_kernel), SLOW, "the orphan kernel to go")
    assert all(alive(pid) for pid in scene.tracked.values()) and alive(scene.unmanaged.pid)
    left = ours(ws.json("orphans")["orphans"], every)
    assert [(r["kind"], r["pid"], r["project"]) for r in left] == [("server", scene.unmanaged.pid, None)]

    stopped = ws.json("stop-all", "--include-unmanaged")
    assert stopped["recap"]["local"]["failed"] == 0
    scene.unmanaged.wait(timeout=SLOW)
    assert procs_under(ws.root) == []


def test_stop_all_skips_busy_kernels_without_force(ws: Workspace) -> None:
    b = ws.ports
    ws.project("busy", port_range=[b[0], b[1]])
    ws.project("idle", port_range=[b[2], b[3]])
    assert ws.cli("start-all").returncode == 0
    path = ws.root / "projects" / "busy"
    pid = int((path / ".logs" / "jupyter.pid").read_text())
    info = json.loads((path / ".jupyter_runtime" / f"jpserver-{pid}.json").read_text())
    kernel_id = _start_busy_kernel(info)
    wait_for(lambda: ws.json("status", "--only", "busy")["projects"][0]["busy_kernels"] == 1, SLOW,
             "the kernel to report busy")

    first = ws.json("stop-all")
    by_project = {r["project"]: r for r in first["results"] if r["action"] == "stop"}
    assert by_project["idle"]["status"] == "changed"
    assert by_project["busy"]["status"] == "skipped"
    assert "1 kernel busy (use --force)" in by_project["busy"]["msg"]
    assert alive(pid)
    text = ws.cli("stop-all")
    assert f"skipped: [local] busy: pid {pid} left running: 1 kernel busy (use --force)" in text.stdout

    forced = ws.json("stop-all", "--force")
    assert {r["project"]: r["status"] for r in forced["results"] if r["action"] == "stop"} == {
        "busy": "changed", "idle": "ok"}
    assert not alive(pid) and procs_under(ws.root) == [], kernel_id


def _start_busy_kernel(info: dict[str, object]) -> str:
    """Start a kernel through the API and make it run a long cell (over its ZMQ channels)."""
    import urllib.request

    from jupyter_client.blocking.client import BlockingKernelClient

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"{str(info['url']).rstrip('/')}/api/kernels", data=b'{"name": "python3"}',
                                 method="POST", headers={"Authorization": f"token {info['token']}"})
    with opener.open(req, timeout=SLOW) as resp:
        kernel_id = json.loads(resp.read())["id"]
    runtime = Path(str(info["root_dir"])) / ".jupyter_runtime"
    conn = wait_for(lambda: list(runtime.glob(f"kernel-{kernel_id}.json")), SLOW, "the kernel connection file")[0]
    client = BlockingKernelClient(connection_file=str(conn))
    client.load_connection_file()
    # No heartbeat channel: on a loaded machine a missed 1 s heartbeat made wait_for_ready give up
    # with "Kernel died before replying to kernel_info" although the kernel was fine.
    client.start_channels(hb=False)
    try:
        client.wait_for_ready(timeout=SLOW)
        msg_id = client.execute("import time; time.sleep(600)")
        # The cell runs once the kernel says so on iopub; only then is it busy for the server too.
        deadline = time.monotonic() + SLOW
        while True:
            try:
                msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the kernel never reported the cell busy within {SLOW:g}s")
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "busy"):
                break
    finally:
        client.stop_channels()
    return str(kernel_id)


def test_start_all_check_and_selection(ws: Workspace) -> None:
    b = ws.ports
    ws.project("a1", port_range=[b[0], b[1]], tags=["x"])
    ws.project("a2", port_range=[b[2], b[3]])
    check = ws.json("start-all", "--check")
    assert [r["status"] for r in check["results"]] == ["changed", "changed"]
    assert procs_under(ws.root) == []
    only = ws.json("start-all", "--tag", "x")
    assert [r["project"] for r in only["results"]] == ["a1"]
    empty = ws.cli("stop-all", "--tag", "nope")
    assert empty.returncode == 2 and "no project has tag 'nope'; tags: x" in empty.stderr
    assert ws.json("stop-all")["recap"]["local"]["changed"] == 1


def test_which_refuses_nonsense(ws: Workspace) -> None:
    ws.project("a1")
    for target, fragment in (("pid:abc", "TARGET: expected a pid number"), (str(2**22 + 5), "nothing listens on port")):
        proc = ws.cli("which", target)
        assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
