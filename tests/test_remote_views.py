"""Remote hosts in the fleet views, over the real sshd: a project directory missing on its host, one
machine reached under two host names, `which --host a,b`, and `-H` with no local inventory at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sshlab import SshLab

from conftest import SLOW, Workspace, alive, jupyter_by_hand, procs_under


def _alias_of_box1(lab: SshLab) -> str:
    """[hosts.alias]: box1's sshd reached by address and port instead of its ssh config alias."""
    box1 = lab.hosts["box1"]
    return (f'[hosts.alias]\naddress = "{box1.address}"\nport = {box1.port}\nuser = "{lab.user}"\n'
            f'identity = "{lab.user_key}"\nknown_hosts = "{lab.known_hosts}"\npython = "{lab.remote_python}"\n'
            "connect_timeout = 60\n")


def test_missing_remote_directory_is_that_projects_problem(ws: Workspace, ssh_lab: SshLab) -> None:
    b = ws.ports
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    ws.project("r1", host="box1", port_range=[b[0], b[1]])
    ghost_path = ws.root / "not cloned yet"
    ws.project("ghost", host="box1", port_range=[b[2], b[3]], path=ghost_path)
    ghost_path.rmdir()  # the inventory names it; the host does not have it
    why = f"{ghost_path} does not exist"

    status = ws.json("status")
    rows = {r["name"]: r for r in status["projects"]}
    assert (rows["ghost"]["host"], rows["ghost"]["state"], rows["ghost"]["note"]) == ("box1", "missing", why)
    assert rows["r1"]["state"] == "stopped"

    logs = ws.cli("logs", "ghost")
    assert logs.returncode == 0 and logs.stdout == ""
    assert f"(project ghost missing: {why})" in logs.stderr
    assert ws.json("logs", "*")["logs"] == [
        {"project": "ghost", "path": str(ghost_path / ".logs" / "jupyterlab.log"), "exists": False,
         "missing": why, "lines": []},
        {"project": "r1", "path": str(ws.root / "projects" / "r1" / ".logs" / "jupyterlab.log"), "exists": False,
         "missing": None, "lines": []}]

    boot = ws.cli("bootstrap", "ghost")
    assert boot.returncode == 1 and f"failed: [box1] ghost: project missing: {why}" in boot.stdout
    assert not ghost_path.exists()  # bootstrap does not create it
    try:
        started = ws.cli("start", "*", "--json")
        assert started.returncode == 1, started.stderr
        got = {r["project"]: (r["action"], r["status"], r["msg"]) for r in json.loads(started.stdout)["results"]}
        assert got["ghost"] == ("start", "failed", f"project missing: {why}")
        assert got["r1"][:2] == ("start", "changed")  # the other project still ran
    finally:
        stopped = ws.cli("stop-all")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert f"skipped: [box1] ghost: project missing: {why}" in stopped.stdout
    assert "changed: [box1] r1:" in stopped.stdout
    assert ws.json("stop", "ghost")["results"][0]["status"] == "skipped"
    assert procs_under(ws.root) == []


@pytest.mark.machine_wide
def test_one_machine_under_two_host_names_is_listed_and_swept_once(ws: Workspace, ssh_lab: SshLab) -> None:
    b = ws.ports
    ws.extra_toml = ssh_lab.hosts_toml("box1") + _alias_of_box1(ssh_lab)
    ws.project("pa", host="box1", port_range=[b[0], b[2]])
    ws.project("pb", host="alias", port_range=[b[3], b[5]])
    spawned: list[subprocess.Popen[bytes]] = []
    try:
        started = ws.json("start-all")
        pid = {r["project"]: r["facts"]["pid"] for r in started["results"]}
        port = {r["project"]: r["facts"]["port"] for r in started["results"]}
        assert {r["project"]: r["host"] for r in started["results"]} == {"pa": "box1", "pb": "alias"}

        # Each host sees both servers; the one the other host tracks is neither an orphan nor unmanaged.
        for args in ((), ("--host", "box1"), ("--host", "alias")):
            sweep = ws.json("orphans", "--kill", "--include-unmanaged", "--check", *args)
            assert not [r for r in sweep["results"] if any(str(p) in r["msg"] for p in pid.values())], sweep
            msgs = [(r["host"], r["msg"]) for r in sweep["results"]]
            assert len({m for _, m in msgs}) == len(msgs), msgs  # nothing proposed twice
            orphans = ws.json("orphans", *args)["orphans"]
            assert not [r for r in orphans if r["pid"] in pid.values()], orphans
            unmanaged = ws.json("status", *args)["unmanaged"]
            assert not [r for r in unmanaged if r["pid"] in pid.values()], unmanaged

        ports = ws.json("ports")["ports"]
        listed = [(r["port"], r["host"], r["project"], r["pid"]) for r in ports if r["state"] == "jupyter"]
        assert sorted(listed) == sorted([(port["pa"], "box1", "pa", pid["pa"]),
                                         (port["pb"], "alias", "pb", pid["pb"])])
        assert len({r["port"] for r in ports}) == len(ports)  # every port once, though both hosts answered
        table = ws.cli("ports")
        assert table.returncode == 0 and sum(f" {port['pb']} " in line for line in table.stdout.splitlines()) == 1

        # which asks both names; the machine answers once, under the host of the server's project.
        both = ws.json("which", str(port["pb"]), "--host", "box1,alias")
        assert [(a["host"], a["project"], a["pid"]) for a in both["answers"]] == [("alias", "pb", pid["pb"])]
        assert both["unreachable"] == {}
        text = ws.cli("which", f"pid:{pid['pa']}", "--host", "alias,box1")
        lines = [line.split() for line in text.stdout.splitlines()]
        assert text.returncode == 0 and text.stdout.count("found:") == 1 and ["host:", "box1"] in lines

        # A server of no project, seen by both names, is stopped once (by the first, alias), and only it.
        outside = ws.root / "outside"
        outside.mkdir()
        stray = jupyter_by_hand(ws.venv, outside, b[7], ws.root / "outside.log", spawned=spawned)
        # status lists it once among the unmanaged, though both names see it.
        assert [r["pid"] for r in ws.json("status")["unmanaged"]].count(stray.pid) == 1
        swept = ws.json("orphans", "--kill", "--include-unmanaged")["results"]
        about = [(r["host"], r["status"]) for r in swept if str(stray.pid) in r["msg"]]
        assert about == [("alias", "changed")], swept
        stray.wait(timeout=SLOW)
        assert alive(pid["pa"]) and alive(pid["pb"])
    finally:
        for proc in spawned:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stopped = ws.json("stop-all")
    assert {r["project"]: r["status"] for r in stopped["results"]} == {"pa": "changed", "pb": "changed"}
    assert not any(alive(p) for p in pid.values())
    assert procs_under(ws.root) == []


def test_dash_h_needs_no_local_inventory(ws: Workspace, ssh_lab: SshLab, tmp_path: Path) -> None:
    """`jlc -H user@box:port -i KEY status` on a machine with no inventory anywhere."""
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text(ssh_lab.known_hosts.read_text())
    box1 = ssh_lab.hosts["box1"]
    far = ws.root / "far"
    far.mkdir()
    theirs = box1.home / ".config" / "jupyter-lifecycle" / "inventory.toml"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_text(f'[projects.far]\npath = "{far}"\nvenv = "{ws.venv}"\n')
    nowhere = tmp_path / "empty cwd"
    nowhere.mkdir()
    target = f"{ssh_lab.user}@{box1.address}:{box1.port}"
    base = {k: v for k, v in os.environ.items() if k != "JLC_INVENTORY"}
    base["JLC_REMOTE_PYTHON"] = str(ssh_lab.remote_python)

    # Two -i: a key the box does not accept, then the right one (each -i is offered, not just the first).
    keys = ["-i", str(ssh_lab.hosts["box2"].host_key), "-i", str(ssh_lab.user_key)]

    def jlc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lifecycle", "-H", target, *keys, *args],
                              capture_output=True, text=True, env=env, cwd=nowhere, timeout=600)

    try:
        assert not (home / ".config" / "jupyter-lifecycle" / "inventory.toml").exists()
        for env in (base, {**base, "JLC_INVENTORY": str(tmp_path / "no such inventory.toml")}):
            proc = jlc(env, "status", "--json")
            assert proc.returncode == 0, proc.stderr
            assert [(r["name"], r["host"], r["state"]) for r in json.loads(proc.stdout)["projects"]] == [
                ("far", box1.address, "stopped")]
        broken = tmp_path / "broken.toml"
        broken.write_text("[projects\n")
        proc = jlc({**base, "JLC_INVENTORY": str(broken)}, "status")
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {broken}:1: invalid TOML"), proc.stderr
    finally:
        theirs.unlink()
