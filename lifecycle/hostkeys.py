"""Host keys: known_hosts located and loaded, unknown keys refused (or recorded on opt-in), changed keys refused.

Fabric's default policy accepts any key; ours replaces it on a connection and
on every ProxyJump gateway before the first byte is exchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import paramiko

from .errors_ssh import HostUnreachable
from .inventory import Host


class _Refuse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuse unknown host keys with a message that says how to trust one deliberately."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostUnreachable(
            f"host key of {hostname} is not in {self.known_hosts} (it offers {key.get_name()} "
            f"{key.fingerprint}); check that fingerprint, then trust it with 'jlc trust HOST' (or "
            f"'StrictHostKeyChecking accept-new' for it in your ssh config)")


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


def secure(conn: Any, target: Host, trust_new: bool) -> None:
    """Load known_hosts into this connection (and any ProxyJump gateway) and set our policy."""
    from fabric import Connection

    hop = conn
    while isinstance(hop, Connection):
        known = known_hosts_path(target, hop.ssh_config)
        if os.path.exists(known):
            hop.client.load_host_keys(known)
        # ssh's own opt-in spelling counts too; a changed key is refused either way.
        opted_in = str(hop.ssh_config.get("stricthostkeychecking", "")).lower() in ("accept-new", "no", "off")
        trust = trust_new or opted_in or os.environ.get("JLC_TRUST_NEW_HOSTS") == "1"
        hop.client.set_missing_host_key_policy(_TrustAndSave(known) if trust else _Refuse(known))
        hop = hop.gateway


