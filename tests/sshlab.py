"""A real sshd on loopback addresses for the remote tests: generated keys, private config, isolated homes."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ADDRESSES = ("127.0.0.2", "127.0.0.3")


@dataclass
class SshHost:
    alias: str
    address: str
    port: int
    home: Path
    host_key: Path
    proc: subprocess.Popen[bytes]


@dataclass
class SshLab:
    dir: Path
    user: str
    user_key: Path
    known_hosts: Path
    ssh_config: Path
    remote_python: Path
    hosts: dict[str, SshHost] = field(default_factory=dict)

    def hosts_toml(self, *aliases: str, known_hosts: Path | None = None) -> str:
        """[hosts.*] tables reaching these hosts through the lab's ssh config aliases."""
        out = []
        for alias in aliases:
            out += [f"[hosts.{alias}]", f'address = "{alias}"', f'ssh_config = "{self.ssh_config}"',
                    f'known_hosts = "{known_hosts or self.known_hosts}"', f'python = "{self.remote_python}"',
                    # Generous: sshd forks a process per connection, slow on a loaded machine.
                    "connect_timeout = 60", ""]
        return "\n".join(out)

    def host_key_line(self, alias: str) -> str:
        h = self.hosts[alias]
        kind, b64 = h.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[{h.address}]:{h.port} {kind} {b64}\n"


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd on {address}:{port} exited: {log.read_text()}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd on {address}:{port} did not listen within 120s")


def start_lab(root: Path) -> SshLab:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        why = "sshd is not installed (apt-get install openssh-server; .ci/run does)"
        if os.environ.get("JLC_REQUIRE_SSHD") == "1":
            pytest.fail(why)  # CI: the remote tests must run
        pytest.skip(why)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    root.mkdir(parents=True, exist_ok=True)
    user_key = root / "user_key"
    _keygen(user_key)
    (root / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    # The "remote" interpreter: no psutil, no pip, so the tool must provision what it needs.
    remote_python = root / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(remote_python)], check=True, timeout=120)
    lab = SshLab(dir=root, user=getpass.getuser(), user_key=user_key, known_hosts=root / "known_hosts",
                 ssh_config=root / "ssh_config", remote_python=remote_python / "bin" / "python")
    config_lines = []
    for i, address in enumerate(ADDRESSES, start=1):
        alias = f"box{i}"
        port = _free_port(address)
        home = root / f"home{i}"
        home.mkdir()
        host_key = root / f"host_key{i}"
        _keygen(host_key)
        conf = root / f"sshd{i}.conf"
        conf.write_text("\n".join([
            f"Port {port}", f"ListenAddress {address}", f"HostKey {host_key}", f"PidFile {root}/sshd{i}.pid",
            f"AuthorizedKeysFile {root}/authorized_keys", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            # The remote side's home is a temporary directory, never the real one.
            f"SetEnv HOME={home} JLC_STATE_DIR={home}/state NO_COLOR=1", "",
        ]))
        log = root / f"sshd{i}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        _wait_listening(address, port, proc, log)
        lab.hosts[alias] = SshHost(alias, address, port, home, host_key, proc)
        config_lines += [f"Host {alias}", f"  HostName {address}", f"  Port {port}", f"  User {lab.user}",
                         f"  IdentityFile {user_key}", "  IdentitiesOnly yes", ""]
    # box2 again, but reached through box1 (ProxyJump), to check gateways get the same host-key rules.
    box2 = lab.hosts["box2"]
    config_lines += ["Host box2-via-box1", f"  HostName {box2.address}", f"  Port {box2.port}", f"  User {lab.user}",
                     f"  IdentityFile {user_key}", "  IdentitiesOnly yes", "  ProxyJump box1", ""]
    lab.ssh_config.write_text("\n".join(config_lines))
    lab.known_hosts.write_text("".join(lab.host_key_line(a) for a in lab.hosts))
    return lab


def stop_lab(lab: SshLab) -> None:
    for h in lab.hosts.values():
        h.proc.terminate()
    for h in lab.hosts.values():
        try:
            h.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            h.proc.kill()
            h.proc.wait(timeout=10)


@contextlib.contextmanager
def ssh_forward(lab: SshLab, alias: str, remote_port: int) -> Iterator[int]:
    """OpenSSH's own ``ssh -L`` to ``remote_port`` on the host: the yardstick for our tunnel."""
    local = _free_port("127.0.0.1")
    proc = subprocess.Popen(["ssh", "-F", str(lab.ssh_config), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                             "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{remote_port}", alias],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening("127.0.0.1", local, proc, Path(os.devnull))
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def timed_download(port: int, name: str, token: str) -> float:
    """Seconds to download ``/files/NAME`` from the Jupyter server behind ``port``."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"http://127.0.0.1:{port}/files/{name}", headers={"Authorization": f"token {token}"})
    t0 = time.perf_counter()
    with opener.open(req, timeout=120) as resp:
        while resp.read(2**20):
            pass
    return time.perf_counter() - t0
