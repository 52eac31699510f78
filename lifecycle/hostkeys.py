"""Host keys: known_hosts located and loaded, unknown keys refused (or recorded on opt-in), changed keys refused.

Fabric's default policy accepts any key; ours replaces it on a connection and
on every ProxyJump gateway before the first byte is exchanged.  Every refusal
names the host as the user calls it (the inventory name, or the -H destination),
the key's SHA256 fingerprint as OpenSSH prints it, and the command that trusts it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

import paramiko

from .errors_ssh import HostUnreachable
from .inventory import Host


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it (base64, no padding); paramiko's own
    ``key.fingerprint`` says the same, but only from paramiko 3.2 on."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def describe(key: paramiko.PKey) -> str:
    """A key as people compare it with ``ssh-keygen -lf``: its type and SHA256 fingerprint."""
    return f"{key.get_name()} {fingerprint(key)}"


def known_hosts_name(host: str, port: int | None) -> str:
    """How known_hosts (and ``ssh-keygen -R``) name a host: ``[host]:port`` unless the port is 22."""
    return host if port in (None, 22) else f"[{host}]:{port}"


def subject(target: Host, hostname: str, gateway: bool) -> str:
    """The host a key belongs to, for messages: the known_hosts name and what the user calls it."""
    if gateway:
        return f"{hostname} (the ProxyJump hop to {target.name})"
    return hostname if hostname == target.name else f"{target.name} ({hostname})"


def how_to_trust(target: Host, known_hosts: str) -> str:
    """The command that records a host's key: ``jlc trust NAME`` for an inventory host (it records
    every hop's key); a host given to -H is in no inventory, so OpenSSH's own first contact does it."""
    if not target.adhoc:
        return f"'jlc trust {target.name}'"
    # OpenSSH takes a port in a destination only as a URI (ssh://user@box:2222).
    dest = f"ssh://{target.address}" if target.address.rpartition("@")[2].count(":") == 1 else target.address
    ssh = ["ssh"] + (["-F", target.ssh_config] if target.ssh_config else []) + [dest]
    return (f"'{shlex.join(ssh)}' once (OpenSSH shows the fingerprint, asks, and records the key in "
            f"{known_hosts}), or rerun with JLC_TRUST_NEW_HOSTS=1 to record it")


class _Refuse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuse unknown host keys with a message that says how to trust one deliberately."""

    def __init__(self, known_hosts: str, target: Host, gateway: bool) -> None:
        self.known_hosts = known_hosts
        self.target = target
        self.gateway = gateway

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostUnreachable(
            f"host key of {subject(self.target, hostname, self.gateway)} is not in {self.known_hosts} (it offers "
            f"{describe(key)}); check that fingerprint, then trust it with "
            f"{how_to_trust(self.target, self.known_hosts)} (or 'StrictHostKeyChecking accept-new' for it in "
            f"your ssh config)")


class _TrustAndSave(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """--trust-new-host: add the key to the known_hosts file (never replaces a changed one)."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        Path(self.known_hosts).parent.mkdir(parents=True, exist_ok=True)
        with open(self.known_hosts, "a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def known_hosts_path(target: Host, ssh_config: dict[str, Any]) -> str:
    configured = target.known_hosts or (ssh_config.get("userknownhostsfile") or "").split(" ")[0]
    return os.path.expanduser(configured or "~/.ssh/known_hosts")


def known_hosts_file(target: Host) -> str:
    """The known_hosts file used for this target (inventory setting, its ssh config, or ~/.ssh/known_hosts)."""
    from fabric import Config

    if target.known_hosts:
        return os.path.expanduser(target.known_hosts)
    config = Config(runtime_ssh_path=os.path.expanduser(target.ssh_config)) if target.ssh_config else Config()
    config.load_ssh_config()
    return known_hosts_path(target, dict(config.base_ssh_config.lookup(target.address)))


def hops(conn: Any) -> list[Any]:
    """The connection and its ProxyJump gateways, the target first."""
    from fabric import Connection

    out = []
    hop = conn
    while isinstance(hop, Connection):
        out.append(hop)
        hop = hop.gateway
    return out


def secure(conn: Any, target: Host, trust_new: bool) -> None:
    """Load known_hosts into this connection (and any ProxyJump gateway) and set our policy."""
    for hop in hops(conn):
        known = known_hosts_path(target, hop.ssh_config)
        if os.path.exists(known):
            try:
                hop.client.load_host_keys(known)
            except (OSError, UnicodeError, ValueError, paramiko.SSHException) as exc:
                # Refusing is the safe answer: an unreadable file might hold a key that would be refused.
                raise HostUnreachable(f"cannot read the known_hosts file {known}: "
                                      f"{getattr(exc, 'strerror', None) or exc}") from None
        # ssh's own opt-in spelling counts too; a changed key is refused either way.
        opted_in = str(hop.ssh_config.get("stricthostkeychecking", "")).lower() in ("accept-new", "no", "off")
        trust = trust_new or opted_in or os.environ.get("JLC_TRUST_NEW_HOSTS") == "1"
        policy = _TrustAndSave(known) if trust else _Refuse(known, target, gateway=hop is not conn)
        hop.client.set_missing_host_key_policy(policy)


def changed_key(conn: Any, target: Host, exc: paramiko.BadHostKeyException) -> HostUnreachable:
    """The refusal of a changed key: which host (a gateway is found by its address), both
    fingerprints, and how to replace the old entry if the change is expected."""
    chain = hops(conn)
    hop = next((h for h in chain if h.host == exc.hostname), conn)
    name = known_hosts_name(exc.hostname, hop.port)
    known = known_hosts_path(target, hop.ssh_config)
    return HostUnreachable(
        f"host key of {subject(target, name, hop is not conn)} CHANGED: {known} has {describe(exc.expected_key)}, "
        f"the host now offers {describe(exc.key)}. Refusing to connect; if the change is expected, remove the "
        f"old entry (ssh-keygen -R '{name}' -f {known}) and trust the new one with {how_to_trust(target, known)}")
