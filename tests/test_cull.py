"""Idle cull against real servers and kernels: idle goes, busy stays, only what is idle is touched."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_lifecycle import api, server_info

from lifecycle.host.clock import parse_iso
from lifecycle.host.cull import Activity, kernel_verdict, server_verdict

from conftest import SLOW, Workspace, alive, procs_under, run_in_kernel, wait_for


class Lab:
    """A running server of a test project, reached with its token like a user's browser would."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.path = ws.root / "projects" / name
        started = ws.cli("start", name, "--no-open")
        assert started.returncode == 0, started.stderr + started.stdout
        self.pid = int((self.path / ".logs" / "jupyter.pid").read_text())
        info = server_info(self.path, self.pid)
        self.base, self.token = str(info["url"]).rstrip("/"), str(info["token"])

    def new_kernel(self) -> str:
        model = api(f"{self.base}/api/kernels", self.token, "POST", {"name": "python3"})
        assert isinstance(model, dict)
        return str(model["id"])

    def kernels(self) -> dict[str, dict[str, Any]]:
        listed = api(f"{self.base}/api/kernels?no_track_activity=1", self.token)
        assert isinstance(listed, list)
        return {str(k["id"]): k for k in listed}

    def run(self, kernel_id: str, code: str) -> None:
        """Execute ``code`` in one kernel over ZMQ (no websocket: no browser connection is counted)."""
        conn = self.path / ".jupyter_runtime" / f"kernel-{kernel_id}.json"
        wait_for(conn.exists, SLOW, "the kernel's connection file")
        run_in_kernel(conn, code)

    def server_idle_for(self) -> float:
        doc = api(f"{self.base}/api/status", self.token)
        assert isinstance(doc, dict)
        return time.time() - (parse_iso(doc["last_activity"]) or 0.0)

    def kernel_idle_for(self, kernel_id: str) -> float:
        k = self.kernels()[kernel_id]
        return time.time() - (parse_iso(k["last_activity"]) or 0.0) if k["execution_state"] == "idle" else 0.0


def by_action(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r["action"] == action]


def test_busy_kernel_keeps_the_server_and_an_idle_server_is_culled(ws: Workspace) -> None:
    ws.project("p1", idle_timeout="3s")
    lab = Lab(ws, "p1")
    kid = lab.new_kernel()
    kernel_pid = wait_for(lambda: [c.pid for c in procs_under(lab.path) if "ipykernel_launcher" in c.cmdline()],
                          30, "the kernel process")[0]
    lab.run(kid, "import time; time.sleep(15)")
    wait_for(lambda: lab.kernels()[kid]["execution_state"] == "busy", SLOW, "the kernel to be busy")
    wait_for(lambda: lab.server_idle_for() > 4, SLOW, "the server's clock to pass the idle timeout")

    kept = ws.json("cull")["results"]
    assert [(r["action"], r["status"]) for r in kept] == [("cull", "ok")], kept
    assert "1 kernel busy: kept" in kept[0]["msg"]
    assert alive(lab.pid)

    wait_for(lambda: lab.kernels()[kid]["execution_state"] == "idle", SLOW, "the cell to finish")
    wait_for(lambda: lab.server_idle_for() > 4, SLOW, "the server to be idle past the timeout")
    would = ws.json("cull", "--check")["results"]
    assert [(r["status"], r["msg"].split(",")[0]) for r in would] == [("changed", f"would cull pid {lab.pid}")]
    assert alive(lab.pid)

    out = ws.cli("cull")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "changed: [local] p1: culled, idle " in out.stdout and f"stopped pid {lab.pid}" in out.stdout
    assert not alive(lab.pid) and not alive(kernel_pid)  # the ordinary stop: kernels reaped
    assert not (lab.path / ".logs" / "jupyter.pid").exists()
    row = ws.json("status")["projects"][0]
    assert row["state"] == "stopped" and "culled" in row["note"], row
    state = json.loads((lab.path / ".logs" / "jupyter.state.json").read_text())
    assert (state["wanted"], state["wanted_by"]) == ("stopped", "cull")
    again = ws.json("cull")["results"]
    assert [(r["status"], r["msg"]) for r in again] == [("ok", "not running")]


def test_kernel_cull_shuts_down_only_the_idle_kernel(ws: Workspace) -> None:
    ws.project("p1", kernel_idle_timeout="3s")
    lab = Lab(ws, "p1")
    busy, idle = lab.new_kernel(), lab.new_kernel()
    lab.run(idle, "x = 1")
    lab.run(busy, "import time; time.sleep(20)")
    wait_for(lambda: lab.kernels()[busy]["execution_state"] == "busy", SLOW, "one kernel to be busy")
    wait_for(lambda: lab.kernel_idle_for(idle) > 4, SLOW, "the other kernel to be idle past the timeout")
    assert lab.kernels()[busy]["execution_state"] == "busy"

    would = by_action(ws.json("cull", "--check"), "kernel")
    assert [(r["status"], r["facts"]["kernel"]) for r in would] == [("changed", idle)]
    assert set(lab.kernels()) == {busy, idle}

    out = ws.cli("cull")
    assert out.returncode == 0, out.stderr + out.stdout
    assert f"changed: [local] p1: kernel: shut down kernel {idle[:8]} (python3), idle " in out.stdout
    assert set(lab.kernels()) == {busy}
    assert alive(lab.pid)  # the server stays
    assert not (lab.path / ".jupyter_runtime" / f"kernel-{idle}.json").exists()
    nothing = by_action(ws.json("cull"), "kernel")
    assert [(r["status"], r["msg"]) for r in nothing] == [("ok", "1 kernel, none idle past 3s")]
    assert ws.cli("stop", "p1").returncode == 0


def test_cull_with_idle_flag_and_without_policy(ws: Workspace) -> None:
    ws.project("p1")
    ws.project("p2")
    lab = Lab(ws, "p1")
    none = ws.json("cull", "--only", "p1")["results"]
    assert [(r["status"], r["msg"].split(" (")[0]) for r in none] == [("skipped", "no idle policy")]
    stopped = ws.json("cull", "--only", "p2", "--idle", "1s")["results"]
    assert [(r["status"], r["msg"]) for r in stopped] == [("ok", "not running")]
    wait_for(lambda: lab.server_idle_for() > 2, SLOW, "the server to be idle for 2s")
    kernels_only = ws.json("cull", "--only", "p1", "--kernels", "--idle", "1s")["results"]
    assert [(r["action"], r["status"], r["msg"]) for r in kernels_only] == [("kernel", "ok", "no kernels")]
    assert alive(lab.pid)
    culled = ws.json("cull", "--only", "p1", "--idle", "1s")["results"]
    assert culled[0]["status"] == "changed" and culled[0]["facts"]["idle_seconds"] >= 1
    assert not alive(lab.pid)
    # start resumes: the project is wanted running again and the cull mark is gone
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    state = json.loads((lab.path / ".logs" / "jupyter.state.json").read_text())
    assert (state["wanted"], state["culled"]) == ("running", None)
    assert ws.cli("stop", "p1").returncode == 0


@pytest.mark.parametrize(("flag", "message"), [
    ("5x", "--idle: expected a duration such as"),
    ("0s", "greater than zero"),
])
def test_bad_idle_flag_is_a_usage_error(ws: Workspace, flag: str, message: str) -> None:
    ws.project("p1")
    out = ws.cli("cull", "--idle", flag)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_verdicts_are_pure_rules() -> None:
    t0 = 1_000_000.0
    quiet = Activity(last_activity=t0, connections=0, kernels=[])
    assert server_verdict(quiet, 60, False, t0 + 59)[0] is False
    assert server_verdict(quiet, 60, False, t0 + 61)[:2] == (True, "idle 1m01s")
    busy = Activity(last_activity=t0, connections=0, kernels=[{"execution_state": "busy"}])
    assert server_verdict(busy, 60, True, t0 + 10_000)[0] is False  # never, whatever the timeout
    tab = Activity(last_activity=t0, connections=2, kernels=[{"execution_state": "idle"}])
    assert server_verdict(tab, 60, False, t0 + 120)[0] is False
    assert server_verdict(tab, 60, True, t0 + 120)[0] is True
    stamp = "1970-01-12T13:46:40.000000Z"  # t0
    assert parse_iso(stamp) == t0
    k = {"execution_state": "idle", "last_activity": stamp, "connections": 0}
    assert kernel_verdict(k, 60, False, t0 + 61) == (True, 61)
    assert kernel_verdict({**k, "connections": 1}, 60, False, t0 + 61)[0] is False
    assert kernel_verdict({**k, "connections": 1}, 60, True, t0 + 61)[0] is True
    assert kernel_verdict({**k, "execution_state": "busy"}, 60, True, t0 + 10_000)[0] is False
    # A kernel no client ever talked to stays "starting": forgotten, it goes like an idle one.
    assert kernel_verdict({**k, "execution_state": "starting"}, 60, False, t0 + 61)[0] is True
    assert kernel_verdict({**k, "execution_state": "starting"}, 60, False, t0 + 59)[0] is False


def test_bad_durations_in_the_inventory_exit_2_at_load(ws: Workspace) -> None:
    for key, value, expected in [("idle_timeout", "2x", "must be a duration"),
                                 ("kernel_idle_timeout", "0s", "greater than zero"),
                                 ("restart", "sometimes", 'must be one of "no", "on-failure", "always"'),
                                 ("log_max_size", "10Q", "must be a size"),
                                 ("log_keep", 0, "must be a positive integer")]:
        ws.projects.clear()
        ws.project("p1", None, **{key: value})
        out = ws.cli("status")
        assert out.returncode == 2, (key, out.stdout)
        assert f"projects.p1.{key}: must be " in out.stderr and expected in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    ws.projects.clear()
    ws.extra_toml = '[defaults]\nidle_timeout = "2h"\n'
    ws.project("p1", kernel_idle_timeout="1h30m", idle_timeout="off", log_max_size="512K")
    ws.project("p2")
    doc = json.loads(ws.cli("config", "--json").stdout)
    p1, p2 = doc["projects"]["p1"], doc["projects"]["p2"]
    assert (p1["idle_timeout"], p1["kernel_idle_timeout"], p1["log_max_size"]) == ("off", 5400.0, 512 * 1024)
    assert (p2["idle_timeout"], p2["restart"], p2["log_keep"], p2["log_max_size"]) == (7200.0, "no", 3, 10 * 2**20)


def test_cull_on_a_remote_host(ws: Workspace, ssh_lab: Any) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    path = ws.project("r1", host="box1", idle_timeout="2s")
    started = ws.json("start", "r1")["results"][0]
    assert started["host"] == "box1" and started["status"] == "changed", started
    pid = int(started["facts"]["pid"])
    info = server_info(path, pid)
    base, token = str(info["url"]).rstrip("/"), str(info["token"])

    def idle_for() -> float:
        doc = api(f"{base}/api/status", token)
        assert isinstance(doc, dict)
        return time.time() - (parse_iso(doc["last_activity"]) or 0.0)

    wait_for(lambda: idle_for() > 3, SLOW, "the remote server to be idle past its timeout")
    out = ws.json("cull")
    assert [(r["host"], r["project"], r["status"]) for r in out["results"]] == [("box1", "r1", "changed")]
    assert "culled, idle" in out["results"][0]["msg"] and out["recap"]["box1"]["changed"] == 1
    wait_for(lambda: not alive(pid), SLOW, "the culled server to be gone")
    assert ws.json("cull")["results"][0]["msg"] == "not running"
