"""Remote dev boxes over a real sshd on 127.0.0.2 and 127.0.0.3: the same tasks, in parallel, safely."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from sshlab import SshLab

from conftest import REPO, SLOW, Workspace, alive, answers, procs_under, wait_for


def remote_fleet(ws: Workspace, lab: SshLab) -> dict[str, Path]:
    b = ws.ports
    ws.extra_toml = lab.hosts_toml("box1", "box2")
    return {
        "l1": ws.project("l1", port_range=[b[0], b[1]]),
        # A path with spaces and both kinds of quotes reaches the remote shell intact.
        "r1": ws.project("r1", host="box1", port_range=[b[2], b[3]],
                         path=ws.root / "remote one" / "it's \"quoted\""),
        "r2": ws.project("r2", host="box2", port_range=[b[4], b[5]]),
    }


def test_bootstrap_start_status_stop_across_hosts(ws: Workspace, ssh_lab: SshLab) -> None:
    paths = remote_fleet(ws, ssh_lab)
    first = ws.json("bootstrap", "*")
    assert set(first["recap"]) == {"local", "box1", "box2"}
    assert all(c["failed"] == 0 and c["changed"] > 0 for c in first["recap"].values()), first["recap"]
    again = ws.json("bootstrap", "*")
    assert all(c["changed"] == 0 and c["unreachable"] == 0 for c in again["recap"].values())
    assert (paths["r1"] / ".gitignore").exists() and (paths["r1"] / ".jupyter_runtime").is_dir()

    started = ws.json("start-all")
    pids = {r["project"]: r["facts"]["pid"] for r in started["results"]}
    hosts = {r["project"]: r["host"] for r in started["results"]}
    assert hosts == {"l1": "local", "r1": "box1", "r2": "box2"}
    # The SSH sessions that started them are closed (the command has exited): the servers still run.
    ports = {r["project"]: r["facts"]["port"] for r in started["results"]}
    assert all(alive(pid) for pid in pids.values()) and all(answers(p) for p in ports.values())
    assert (paths["r1"] / ".logs" / "jupyter.pid").read_text() == f"{pids['r1']}\n"

    status = ws.json("status")
    assert [(r["name"], r["host"], r["state"], r["pid"]) for r in status["projects"]] == [
        ("l1", "local", "running", pids["l1"]), ("r1", "box1", "running", pids["r1"]),
        ("r2", "box2", "running", pids["r2"])]
    table = ws.cli("status")
    assert table.returncode == 0 and "box1" in table.stdout and "box2" in table.stdout
    assert_reached_from_here(ws, started, status, table.stdout, ports, pids)

    logs = ws.cli("logs", "r1", "-n", "3")
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 3
    port_rows = {r["port"]: r for r in ws.json("ports", "--host", "box2")["ports"]}
    assert (port_rows[ports["r2"]]["state"], port_rows[ports["r2"]]["project"]) == ("jupyter", "r2")
    assert ws.json("start", "r2")["results"][0]["status"] == "ok"  # idempotent remotely too

    stopped = ws.json("stop-all")
    assert {r["project"]: r["status"] for r in stopped["results"] if r["action"] == "stop"} == {
        "l1": "changed", "r1": "changed", "r2": "changed"}
    assert not any(alive(pid) for pid in pids.values())
    assert procs_under(ws.root) == []
    # psutil was provisioned once on each remote, into a user-owned directory keyed by version and ABI.
    for alias in ("box1", "box2"):
        deps = list((ssh_lab.hosts[alias].home / ".cache" / "jupyter-lifecycle" / "deps").iterdir())
        assert len(deps) == 1 and deps[0].name.startswith(f"psutil-{psutil.__version__}-")


def assert_reached_from_here(ws: Workspace, started: dict[str, Any], status: dict[str, Any], table: str,
                             ports: dict[str, int], pids: dict[str, int]) -> None:
    """A remote server is shown by where it is (box1:PORT) and how to reach it (jlc open NAME), never
    by its host's http://127.0.0.1:PORT, which here means whatever listens on this machine; a local one
    keeps its URL. No token anywhere unless asked for."""
    by_name = {r["project"]: r for r in started["results"]}
    assert by_name["r1"]["facts"]["url"] == f"http://127.0.0.1:{ports['r1']}/lab"  # the host's own, kept
    assert by_name["r1"]["facts"]["reach"] == "jlc open r1"
    assert by_name["l1"]["facts"]["reach"] == by_name["l1"]["facts"]["url"]
    assert f"on box1:{ports['r1']} pid {pids['r1']}" in by_name["r1"]["msg"]
    assert "127.0.0.1" not in by_name["r1"]["msg"] and "(reach it with 'jlc open r1')" in by_name["r1"]["msg"]
    rows = {r["name"]: r for r in status["projects"]}
    assert (rows["r2"]["url"], rows["r2"]["reach"]) == (f"http://127.0.0.1:{ports['r2']}/lab", "jlc open r2")
    assert rows["l1"]["reach"] == rows["l1"]["url"] == f"http://127.0.0.1:{ports['l1']}/lab"
    lines = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert f"box1:{ports['r1']} (jlc open r1)" in lines["r1"] and "127.0.0.1" not in lines["r1"]
    assert f"box2:{ports['r2']} (jlc open r2)" in lines["r2"] and "127.0.0.1" not in lines["r2"]
    assert f"http://127.0.0.1:{ports['l1']}/lab" in lines["l1"]
    again = ws.cli("start", "r2")
    assert again.returncode == 0
    assert f"ok: [box2] r2: already running on box2:{ports['r2']} pid {pids['r2']} (reach it with 'jlc open r2')" \
        in again.stdout
    assert "127.0.0.1" not in again.stdout and "token=" not in again.stdout
    # Asked for, the token comes with the host it is valid on, and the way there from here.
    shown = ws.cli("start", "r2", "--show-token")
    login = next(line for line in shown.stdout.splitlines() if "login URL" in line)
    assert login.startswith(f"    login URL on box2: http://127.0.0.1:{ports['r2']}/lab?token=")
    assert login.endswith(" (from here: jlc open r2)")
    token = login.split("token=")[1].split()[0]
    assert f"box2:{ports['r2']} (jlc open r2) token={token}" in ws.cli("status", "--show-token").stdout
    assert token not in ws.cli("status").stdout
    which = ws.cli("which", str(ports["r1"]), "--host", "box1")
    assert which.returncode == 0, which.stderr
    assert f"url:        http://127.0.0.1:{ports['r1']}/lab (on box1)" in which.stdout
    assert "reach:      jlc open r1" in which.stdout and "token=" not in which.stdout
    assert ws.json("which", str(ports["r1"]), "--host", "box1")["reach"] == "jlc open r1"


def test_unreachable_host_does_not_stop_the_others(ws: Workspace, ssh_lab: SshLab) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.4", 0))
        dead_port = probe.getsockname()[1]  # closed again: nothing listens there
    ws.extra_toml = ssh_lab.hosts_toml("box1") + (
        f'[hosts.box3]\naddress = "127.0.0.4"\nport = {dead_port}\nconnect_timeout = 3\n'
        f'known_hosts = "{ssh_lab.known_hosts}"\n')
    ws.project("r1", host="box1")
    ws.project("r3", host="box3", path=ws.root / "r3")
    t0 = time.monotonic()
    proc = ws.cli("status", "--json")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 4, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["projects"]}
    assert rows["r1"]["state"] == "stopped"
    assert rows["r3"]["state"] == "unreachable"
    assert "cannot connect to" in rows["r3"]["note"] and "127.0.0.4" in rows["r3"]["note"]
    assert elapsed < 20
    text = ws.cli("bootstrap", "*", "--check")
    assert text.returncode == 4
    assert "unreachable: [box3] r3: cannot connect to" in text.stdout
    assert "box1 : ok=" in text.stdout and "box3 : ok=0   changed=0   failed=0   skipped=0   unreachable=1" \
        in text.stdout


def ssh_fingerprint(public_key: Path) -> str:
    """The key's SHA256 fingerprint as OpenSSH computes it (``256 SHA256:... comment (ED25519)``)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return out.split()[1]


def test_unknown_host_key_is_refused_until_trusted(ws: Workspace, ssh_lab: SshLab) -> None:
    known = ws.root / "known_hosts"
    known.write_text("")
    ws.extra_toml = ssh_lab.hosts_toml("box1", known_hosts=known)
    ws.project("r1", host="box1")
    box = ssh_lab.hosts["box1"]
    offered = f"ssh-ed25519 {ssh_fingerprint(box.host_key.with_suffix('.pub'))}"
    refused = ws.cli("status")
    assert refused.returncode == 4
    # The inventory name (what `jlc trust` takes), the address as known_hosts writes it, OpenSSH's fingerprint.
    assert f"host key of box1 ([{box.address}]:{box.port}) is not in {known} (it offers {offered})" \
        in refused.stderr
    assert "trust it with 'jlc trust box1'" in refused.stderr and "HOST" not in refused.stderr
    assert known.read_text() == ""
    trusted = ws.cli("trust", "box1")
    assert trusted.returncode == 0
    assert trusted.stdout == f"changed: [box1] host key added to {known}: [{box.address}]:{box.port} {offered}\n"
    assert known.read_text().split() == ssh_lab.host_key_line("box1").split()
    assert ws.cli("status").returncode == 0
    again = ws.cli("trust", "box1")
    assert again.stdout == f"ok: [box1] host key already in {known}: [{box.address}]:{box.port} {offered}\n"


def test_changed_host_key_is_refused(ws: Workspace, ssh_lab: SshLab) -> None:
    other = ws.root / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    box = ssh_lab.hosts["box1"]
    known = ws.root / "known_hosts"
    known.write_text(f"[{box.address}]:{box.port} " + " ".join(other.with_suffix(".pub").read_text().split()[:2])
                     + "\n")
    ws.extra_toml = ssh_lab.hosts_toml("box1", known_hosts=known)
    ws.project("r1", host="box1")
    old = ssh_fingerprint(other.with_suffix(".pub"))
    new = ssh_fingerprint(box.host_key.with_suffix(".pub"))
    assert old != new
    proc = ws.cli("status")
    assert proc.returncode == 4
    assert (f"host key of box1 ([{box.address}]:{box.port}) CHANGED: {known} has ssh-ed25519 {old}, the host now "
            f"offers ssh-ed25519 {new}. Refusing to connect") in proc.stderr
    assert f"ssh-keygen -R '[{box.address}]:{box.port}' -f {known}" in proc.stderr
    assert "trust the new one with 'jlc trust box1'" in proc.stderr
    trust = ws.cli("trust", "box1")  # trusting never replaces a changed key
    assert trust.returncode == 4 and f"CHANGED: {known} has ssh-ed25519 {old}" in trust.stderr
    assert known.read_text().count("\n") == 1


def test_ad_hoc_host_key_refusal_says_what_works_without_an_inventory_name(ws: Workspace,
                                                                          ssh_lab: SshLab) -> None:
    """`jlc -H box2` reaches a host named in no inventory: `jlc trust box2` could not work for it."""
    ws.project("l1")
    box = ssh_lab.hosts["box2"]
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    assert not known.exists()
    env = {**os.environ, "JLC_INVENTORY": str(ws.inventory), "JLC_REMOTE_PYTHON": str(ssh_lab.remote_python)}
    cmd = [sys.executable, "-m", "lifecycle", "-S", str(ssh_lab.ssh_config), "-H", "box2", "status"]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 4
    offered = ssh_fingerprint(box.host_key.with_suffix(".pub"))
    assert f"host key of box2 ([{box.address}]:{box.port}) is not in {known} (it offers ssh-ed25519 {offered})" \
        in refused.stderr
    assert f"trust it with 'ssh -F {ssh_lab.ssh_config} box2' once" in refused.stderr
    assert "jlc trust" not in refused.stderr
    # The other way it names works: one run that records the key (box2 has no inventory of its own).
    recorded = subprocess.run(cmd, capture_output=True, text=True, env={**env, "JLC_TRUST_NEW_HOSTS": "1"},
                              timeout=120)
    assert "no inventory of its own" in recorded.stderr, recorded.stderr
    assert known.read_text().split() == ssh_lab.host_key_line("box2").split()


def test_open_tunnels_to_a_remote_server(ws: Workspace, ssh_lab: SshLab) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    ws.project("r1", host="box1")
    assert ws.cli("start", "r1").returncode == 0
    server_port = ws.json("status")["projects"][0]["port"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with ws.streaming("open", "r1", "--no-browser") as lines:
        url = wait_for(lambda: next((ln.strip() for ln in lines if ln.startswith("http://")), None), SLOW,
                       "the tunnel URL")
        local_port = int(url.split("://127.0.0.1:")[1].split("/")[0])
        assert local_port != server_port and "?token=" in url
        with opener.open(f"http://127.0.0.1:{local_port}/api", timeout=SLOW) as resp:
            assert "version" in json.loads(resp.read())
        token = url.split("?token=")[1]
        req = urllib.request.Request(f"http://127.0.0.1:{local_port}/api/status",
                                     headers={"Authorization": f"token {token}"})
        with opener.open(req, timeout=SLOW) as resp:
            assert "started" in json.loads(resp.read())
    assert not answers(local_port)  # the tunnel is gone
    assert ws.cli("stop", "r1").returncode == 0


def test_dash_h_with_inventory_and_ad_hoc_hosts(ws: Workspace, ssh_lab: SshLab) -> None:
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text(ssh_lab.ssh_config.read_text())
    (home / ".ssh" / "known_hosts").write_text(ssh_lab.known_hosts.read_text())
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    ws.project("l1")
    ws.project("r1", host="box1")
    env = {**os.environ, "JLC_INVENTORY": str(ws.inventory), "JLC_REMOTE_PYTHON": str(ssh_lab.remote_python)}
    named = subprocess.run([sys.executable, "-m", "lifecycle", "-H", "box1", "status", "--json"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert named.returncode == 0, named.stderr
    assert [(r["name"], r["host"]) for r in json.loads(named.stdout)["projects"]] == [("r1", "box1")]
    fab = subprocess.run([sys.executable, "-m", "fabric", "--search-root", str(REPO), "-H", "box1", "status",
                          "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert fab.returncode == 0, fab.stderr
    assert [r["name"] for r in json.loads(fab.stdout)["projects"]] == ["r1"]
    # box2 is not in the inventory: its own inventory file lists its projects.
    far = ws.root / "far away"
    far.mkdir()
    theirs = ssh_lab.hosts["box2"].home / ".config" / "jupyter-lifecycle" / "inventory.toml"
    theirs.parent.mkdir(parents=True)
    theirs.write_text(f'[projects.far]\npath = "{far}"\nvenv = "{ws.venv}"\n')
    try:
        adhoc = subprocess.run([sys.executable, "-m", "lifecycle", "-H", "box2", "status", "--json"],
                               capture_output=True, text=True, env=env, timeout=600)
    finally:
        theirs.unlink()
    assert adhoc.returncode == 0, adhoc.stderr
    assert [(r["name"], r["host"], r["state"]) for r in json.loads(adhoc.stdout)["projects"]] == [
        ("far", "box2", "stopped")]


def test_dash_capital_s_gives_an_ad_hoc_host_its_ssh_config(ws: Workspace, ssh_lab: SshLab) -> None:
    """`jlc -S FILE -H alias`: the alias is known only to FILE, so it works only if -S is honoured."""
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text(ssh_lab.known_hosts.read_text())
    ws.project("l1")
    far = ws.root / "far"
    far.mkdir()
    theirs = ssh_lab.hosts["box2"].home / ".config" / "jupyter-lifecycle" / "inventory.toml"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_text(f'[projects.far]\npath = "{far}"\nvenv = "{ws.venv}"\n')
    env = {**os.environ, "JLC_INVENTORY": str(ws.inventory), "JLC_REMOTE_PYTHON": str(ssh_lab.remote_python)}
    try:
        without = subprocess.run([sys.executable, "-m", "lifecycle", "-H", "box2", "status", "--json"],
                                 capture_output=True, text=True, env=env, timeout=120)
        given = subprocess.run([sys.executable, "-m", "lifecycle", "-S", str(ssh_lab.ssh_config), "-t", "20",
                                "-H", "box2", "status", "--json"], capture_output=True, text=True, env=env,
                               timeout=120)
    finally:
        theirs.unlink()
    assert without.returncode == 4 and "box2 unreachable" in without.stderr
    assert given.returncode == 0, given.stderr
    assert [(r["name"], r["host"]) for r in json.loads(given.stdout)["projects"]] == [("far", "box2")]


def system_python(root: Path) -> Path:
    """An interpreter that is a distribution's own as PEP 668 sees it (no venv, an EXTERNALLY-MANAGED
    marker in its stdlib dir), without pip or psutil: this machine's base interpreter copied beside
    a stdlib of links, so its prefix (and the marker) is ours and no system file is touched."""
    import sysconfig

    base = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(os.__file__).parent
    lib = root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    lib.mkdir(parents=True)
    (root / "bin").mkdir()
    python = root / "bin" / "python3"
    python.write_bytes(base.read_bytes())
    python.chmod(0o755)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages", "EXTERNALLY-MANAGED"):
            (lib / entry.name).symlink_to(entry)
    (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use apt\n")
    probe = subprocess.run([str(python), "-c", "import sys, sysconfig, importlib.util as u; print(sys.prefix == "
                            "sys.base_prefix, sysconfig.get_path('stdlib'), u.find_spec('pip') is None, "
                            "u.find_spec('psutil') is None)"], capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["True", str(lib), "True", "True"], (probe.stdout, probe.stderr, sysconfig)
    return python


def test_psutil_that_cannot_be_provisioned_says_what_to_install(ws: Workspace, ssh_lab: SshLab) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box2")
    ws.project("r2", host="box2")
    home = ssh_lab.hosts["box2"].home
    deps = home / ".cache" / "jupyter-lifecycle" / "deps"
    hidden = deps.with_name("deps.hidden")
    if deps.exists():
        deps.rename(hidden)
    env = {**os.environ, "JLC_INVENTORY": str(ws.inventory), "JLC_NO_PSUTIL_COPY": "1"}
    venv = f"{home}/.local/share/jupyter-lifecycle/venv"
    try:
        # A venv without pip: pip install --user is no advice (no pip; --user is refused in a venv).
        proc = subprocess.run([sys.executable, "-m", "lifecycle", "status"], capture_output=True, text=True,
                              env=env, timeout=600)
        assert proc.returncode == 4
        assert "psutil is missing on box2 and could not be installed (" in proc.stderr
        assert f"{ssh_lab.remote_python} has no pip, so install the system package " \
               "('sudo apt install python3-psutil'" in proc.stderr
        assert f"'{ssh_lab.remote_python} -m venv {venv} && {venv}/bin/pip install psutil'" in proc.stderr
        assert f'set hosts.box2.python = "{venv}/bin/python" in the inventory; then rerun' in proc.stderr
        assert "--user" not in proc.stderr
        # A distribution's Python under PEP 668 (Debian 12+, Ubuntu 23.04+): it says so.
        system = system_python(ws.root / "system-python")
        ws.extra_toml = ssh_lab.hosts_toml("box2").replace(f'python = "{ssh_lab.remote_python}"',
                                                           f'python = "{system}"')
        ws.write()
        managed = subprocess.run([sys.executable, "-m", "lifecycle", "status"], capture_output=True, text=True,
                                 env=env, timeout=600)
        assert managed.returncode == 4
        assert (f"{system} is managed by the system (PEP 668: pip install --user is refused there), so install "
                "the system package ('sudo apt install python3-psutil'") in managed.stderr
        assert f"'{system} -m venv {venv} && {venv}/bin/pip install psutil'" in managed.stderr
        assert "pip install --user psutil" not in managed.stderr
        # Allowed to copy its own (same ABI), the tool provisions it and the task works.
        ws.extra_toml = ssh_lab.hosts_toml("box2")
        ws.write()
        assert ws.cli("status").returncode == 0
    finally:
        if hidden.exists():
            import shutil

            shutil.rmtree(deps, ignore_errors=True)
            hidden.rename(deps)


def test_psutil_hint_follows_what_the_host_said() -> None:
    """The hint for each kind of interpreter the boot script can describe (its ``need`` answer)."""
    from lifecycle.inventory import Host
    from lifecycle.provision import psutil_hint

    need = {"python": "/usr/bin/python3", "deps": "/home/al/.cache/jupyter-lifecycle/deps/psutil-7.0.0-x"}
    plain = psutil_hint(Host("gpu", "gpu-box"), {**need, "pip": True, "externally_managed": False})
    assert plain == ("install it there with the system package (python3-psutil) or "
                     "'/usr/bin/python3 -m pip install --user psutil', then rerun")
    managed = psutil_hint(Host("gpu", "gpu-box"), {**need, "pip": True, "externally_managed": True})
    assert "PEP 668" in managed and "--user psutil" not in managed
    assert managed.endswith('set hosts.gpu.python = "/home/al/.local/share/jupyter-lifecycle/venv/bin/python" '
                            "in the inventory; then rerun")
    adhoc = psutil_hint(Host("al@gpu-box", "al@gpu-box", adhoc=True), {**need, "pip": False})
    assert adhoc.startswith("/usr/bin/python3 has no pip, so ")
    assert adhoc.endswith("rerun with JLC_REMOTE_PYTHON=/home/al/.local/share/jupyter-lifecycle/venv/bin/python")


def test_remote_logs_follow_streams_until_ctrl_c(ws: Workspace, ssh_lab: SshLab) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    path = ws.project("r1", host="box1")
    log = path / ".logs" / "jupyterlab.log"
    log.parent.mkdir()
    log.write_text("before\n")

    def followers() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"])
                if (p.info["cmdline"] or [""])[0] == str(ssh_lab.remote_python)]

    with ws.streaming("logs", "r1", "-f", "-n", "1") as seen:
        wait_for(lambda: "before\n" in seen, SLOW, "the last line")
        with open(log, "a") as fh:
            fh.write("written later\n")
        wait_for(lambda: "written later\n" in seen, SLOW, "the streamed line")
        assert followers()  # the host layer follows on the remote side
    wait_for(lambda: not followers(), SLOW, "the remote follower to exit when the controller hung up")


def test_foreground_refuses_a_remote_project(ws: Workspace, ssh_lab: SshLab) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    ws.project("r1", host="box1")
    proc = ws.cli("start", "r1", "--foreground")
    assert proc.returncode == 2
    assert "--foreground needs a project on this machine; r1 is remote" in proc.stderr


def test_proxyjump_from_ssh_config_is_honoured_and_checked(ws: Workspace, ssh_lab: SshLab) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box2-via-box1")
    ws.project("r2", host="box2-via-box1")
    doc = ws.json("status")
    assert [(r["name"], r["host"], r["state"]) for r in doc["projects"]] == [("r2", "box2-via-box1", "stopped")]
    # The jump host's key is checked too: without it in known_hosts the connection is refused.
    partial = ws.root / "known_hosts"
    partial.write_text(ssh_lab.host_key_line("box2"))
    ws.extra_toml = ssh_lab.hosts_toml("box2-via-box1", known_hosts=partial)
    ws.write()
    refused = ws.cli("status")
    box1 = ssh_lab.hosts["box1"]
    box2 = ssh_lab.hosts["box2"]
    assert refused.returncode == 4
    assert (f"host key of [{box1.address}]:{box1.port} (the ProxyJump hop to box2-via-box1) is not in {partial}"
            in refused.stderr)
    assert "trust it with 'jlc trust box2-via-box1'" in refused.stderr
    # Trusting the host records the hop's key too, and says which it already had.
    trusted = ws.cli("trust", "box2-via-box1")
    assert trusted.returncode == 0, trusted.stderr
    fingerprints = {alias: ssh_fingerprint(h.host_key.with_suffix(".pub")) for alias, h in ssh_lab.hosts.items()}
    assert trusted.stdout.splitlines() == [
        f"ok: [box2-via-box1] host key already in {partial}: [{box2.address}]:{box2.port} ssh-ed25519 "
        f"{fingerprints['box2']}",
        f"changed: [box2-via-box1] host key added to {partial}: [{box1.address}]:{box1.port} ssh-ed25519 "
        f"{fingerprints['box1']}"]
    assert ws.cli("status").returncode == 0


def test_unreadable_known_hosts_refuses_in_one_line(ws: Workspace, ssh_lab: SshLab) -> None:
    """A known_hosts that cannot be read (here a directory) refuses the host: it might hold a refusal."""
    known = ws.root / "known_hosts_dir"
    known.mkdir()
    ws.extra_toml = ssh_lab.hosts_toml("box1", known_hosts=known)
    ws.project("r1", host="box1")
    proc = ws.cli("status", "--json")
    assert proc.returncode == 4 and "Traceback" not in proc.stderr, proc.stderr
    note = json.loads(proc.stdout)["projects"][0]["note"]
    assert f"cannot read the known_hosts file {known}" in note, note
    trust = ws.cli("trust", "box1")
    assert trust.returncode == 1 and "Traceback" not in trust.stderr, trust.stderr
    assert trust.stderr.strip().splitlines() == [f"error: cannot read the known_hosts file {known}: Is a directory"]


def test_interrupted_remote_start_still_records_its_server(ws: Workspace, ssh_lab: SshLab) -> None:
    """Ctrl-C while a remote start waits for its server: the host layer, no longer heard, finishes the
    start (pid file written, server tracked) instead of dying half-way on a broken pipe."""
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    path = ws.project("r1", host="box1")
    # Interrupted once the server process exists (spawned by the host layer), before the start answers.
    code, _, err = ws.interrupted(
        "start", "r1", what="the remote server to be spawned",
        when=lambda: any("jupyterlab" in " ".join(p.info["cmdline"] or []) for p in procs_under(path)))
    assert code == 130 and "Traceback" not in err, (code, err)
    pid_file = path / ".logs" / "jupyter.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), SLOW, "the pid file")
    pid = int(pid_file.read_text())
    def running() -> dict[str, Any] | None:
        return next((r for r in ws.json("status", "--only", "r1")["projects"] if r["state"] == "running"), None)

    row = wait_for(running, SLOW, "r1 running and tracked")
    assert row["pid"] == pid
    assert ws.cli("stop", "r1").returncode == 0
    assert not alive(pid)
