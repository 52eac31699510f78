"""Reaching remote hosts: Fabric connections with strict host keys, and the host layer run over SSH.

Fabric (via paramiko) resolves ~/.ssh/config (aliases, User, Port, IdentityFile,
ProxyJump) and authenticates; the host key policy is ours: known_hosts is
loaded and an unknown or changed key is refused unless the user opts in.
Every task is one SSH exec per host: ``python -c BOOT`` with the host layer
and the request on stdin, one JSON document back on stdout, live events on
stderr.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import os
import select
import shlex
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import paramiko

from .host.remote_boot import BOOT
from .inventory import Host

Emit = Callable[[dict[str, Any]], None]
PACKAGE = Path(__file__).resolve().parent
NEED_PSUTIL = 3

# paramiko logs a dying connection as ERROR lines with a traceback, which Python
# prints on stderr when nobody configured logging; we report failures ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class HostUnreachable(Exception):
    """The host could not be reached or could not run the host layer; the message says why."""


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


def _known_hosts(target: Host, ssh_config: dict[str, Any]) -> str:
    configured = target.known_hosts or (ssh_config.get("userknownhostsfile") or "").split(" ")[0]
    return os.path.expanduser(configured or "~/.ssh/known_hosts")


def known_hosts_file(target: Host) -> str:
    """The known_hosts file used for this target (inventory setting, its ssh config, or ~/.ssh/known_hosts)."""
    from fabric import Config

    if target.known_hosts:
        return os.path.expanduser(target.known_hosts)
    config = Config(runtime_ssh_path=os.path.expanduser(target.ssh_config)) if target.ssh_config else Config()
    config.load_ssh_config()
    return _known_hosts(target, dict(config.base_ssh_config.lookup(target.address)))


def _secure(conn: Any, target: Host, trust_new: bool) -> None:
    """Load known_hosts into this connection (and any ProxyJump gateway) and set our policy."""
    from fabric import Connection

    hop = conn
    while isinstance(hop, Connection):
        known = _known_hosts(target, hop.ssh_config)
        if os.path.exists(known):
            hop.client.load_host_keys(known)
        # ssh's own opt-in spelling counts too; a changed key is refused either way.
        opted_in = str(hop.ssh_config.get("stricthostkeychecking", "")).lower() in ("accept-new", "no", "off")
        trust = trust_new or opted_in or os.environ.get("JLC_TRUST_NEW_HOSTS") == "1"
        hop.client.set_missing_host_key_policy(_TrustAndSave(known) if trust else _Refuse(known))
        hop = hop.gateway


def _transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """A Transport preferring AES-GCM, which paramiko knows but lists last.

    GCM encrypts and authenticates in one pass where CTR + HMAC takes two:
    a tunnel carries about 1.4x more per CPU second with it (bench/tunnel.py).
    Servers without it negotiate the next cipher as before.
    """
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    gcm = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = gcm + tuple(c for c in options.ciphers if c not in gcm)
    return transport


def connect(target: Host, trust_new: bool = False) -> Any:
    """An open fabric Connection whose host key was verified; HostUnreachable otherwise."""
    from fabric import Config, Connection

    config = Config(runtime_ssh_path=os.path.expanduser(target.ssh_config)) if target.ssh_config else Config()
    if target.ssh_config:
        config.load_ssh_config()
    kwargs: dict[str, Any] = {"look_for_keys": True}
    if "transport_factory" in inspect.signature(paramiko.SSHClient.connect).parameters:  # paramiko >= 3.2
        kwargs["transport_factory"] = _transport
    if target.identity:
        kwargs["key_filename"] = [os.path.expanduser(target.identity)]
    conn = Connection(target.address, user=target.user, port=target.port, config=config,
                      connect_timeout=int(target.connect_timeout), connect_kwargs=kwargs)
    _secure(conn, target, trust_new)
    where = f"{conn.user}@{conn.host}:{conn.port}"
    try:
        try:
            conn.open()
        except BaseException:
            disconnect(conn)  # a ProxyJump gateway may be connected already
            raise
    except HostUnreachable:
        raise
    except paramiko.BadHostKeyException as exc:
        # known_hosts names non-default ports as [host]:port; say it the same way.
        name = exc.hostname if conn.port == 22 else f"[{exc.hostname}]:{conn.port}"
        raise HostUnreachable(
            f"host key of {name} CHANGED: {_known_hosts(target, conn.ssh_config)} has a different "
            f"{exc.expected_key.get_name()} key. Refusing to connect; if the change is expected, remove the "
            f"old entry (ssh-keygen -R '{name}' -f {_known_hosts(target, conn.ssh_config)}) and trust the "
            f"new one with 'jlc trust HOST'") from None
    except paramiko.AuthenticationException as exc:
        raise HostUnreachable(f"authentication failed for {where}: {exc}") from None
    except TimeoutError:
        raise HostUnreachable(f"cannot connect to {where}: timed out after {target.connect_timeout:g}s") from None
    except (OSError, paramiko.SSHException, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise HostUnreachable(f"cannot connect to {where}: {reason}") from None
    return conn


def disconnect(conn: Any) -> None:
    """Close a connection and its ProxyJump gateways (Fabric's close leaves gateways connected)."""
    from fabric import Connection

    hop = conn
    while isinstance(hop, Connection):
        try:
            hop.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may raise anything; it is closed
            pass
        hop = hop.gateway


@lru_cache(maxsize=1)
def host_layer() -> tuple[str, bytes]:
    """The host layer as a deterministic zip, and its content hash (the remote cache key)."""
    files = [PACKAGE / "__init__.py"] + sorted((PACKAGE / "host").glob("*.py"))
    digest = hashlib.sha256()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            rel = "lifecycle/" + str(path.relative_to(PACKAGE))
            data = path.read_bytes()
            digest.update(rel.encode() + b"\0" + data)
            info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return digest.hexdigest()[:16], buf.getvalue()


def _psutil_version() -> str:
    import psutil

    return str(psutil.__version__)


def _exec(conn: Any, target: Host, header: dict[str, Any], body: bytes, emit: Emit) -> tuple[int, dict[str, Any]]:
    """Run BOOT on the host with header+body on stdin; stream events; return (exit status, document)."""
    command = f"{shlex.quote(target.python)} -c {shlex.quote(BOOT)}"
    chan = conn.transport.open_session(timeout=target.connect_timeout)
    try:
        chan.exec_command(command)
        chan.sendall(json.dumps(header).encode() + b"\n" + body)
        if not header.get("watch"):
            chan.shutdown_write()
        out = bytearray()
        err = bytearray()
        stray: list[str] = []
        while True:
            busy = False
            # A paramiko channel is selectable: sleep until the host says something.
            select.select([chan], [], [], 0.5)
            if chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
                *lines, rest = err.split(b"\n")
                err = bytearray(rest)
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    if text.startswith("@jlc "):
                        emit(json.loads(text[5:]))
                    elif text.strip():
                        stray = (stray + [text])[-15:]
            if not busy and chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
        status = chan.recv_exit_status()
    finally:
        chan.close()
    try:
        doc = json.loads(out.decode("utf-8"))
    except ValueError:
        tail = "\n".join(stray) or "(no output)"
        if status == 127:
            raise HostUnreachable(f"{target.python!r} was not found on {target.name}: install Python 3.9+ "
                                  f"there or set hosts.{target.name}.python to its absolute path") from None
        raise HostUnreachable(f"the host layer failed on {target.name} (exit {status}): {tail}") from None
    return status, doc


def _provision_psutil(conn: Any, target: Host, need: dict[str, Any], emit: Emit) -> None:
    """Make psutil importable on the host, in a user-owned directory keyed by version and ABI."""
    import platform
    import sys
    import sysconfig

    import psutil

    here = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}-{''.join(platform.libc_ver())}"
    version = _psutil_version()
    if need.get("tag") == here and os.environ.get("JLC_NO_PSUTIL_COPY") != "1":
        # Same interpreter ABI and platform: our own psutil works there as is.
        buf = io.BytesIO()
        root = Path(psutil.__file__).parent
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and "tests" not in path.parts:
                    zf.write(path, "psutil/" + str(path.relative_to(root)))
        data = buf.getvalue()
        emit({"event": "progress", "project": target.name, "msg": f"copying psutil {version} to the host"})
        status, doc = _exec(conn, target, {"psutil": version, "provision": "psutil", "layer_len": len(data)},
                            data, emit)
        if status == 0:
            return
        raise HostUnreachable(f"could not copy psutil to {target.name}: {doc}")
    emit({"event": "progress", "project": target.name, "msg": f"installing psutil {version} on the host"})
    deps = str(need.get("deps"))
    python = shlex.quote(str(need.get("python") or target.python))
    cmd = (f"{python} -m pip install --quiet --disable-pip-version-check --no-input "
           f"--target {shlex.quote(deps + '.tmp')} psutil=={shlex.quote(version)} && "
           f"mv {shlex.quote(deps + '.tmp')} {shlex.quote(deps)}")
    result = conn.run(cmd, hide=True, warn=True, in_stream=False, pty=False)
    if result.ok:
        return
    why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["pip is not available"]
    raise HostUnreachable(
        f"psutil is missing on {target.name} and could not be installed ({why[0]}); install it there with "
        f"'{need.get('python') or target.python} -m pip install --user psutil' or the system package "
        f"(python3-psutil), then rerun")


def run_remote(target: Host, request: dict[str, Any], emit: Emit, watch: bool = False) -> dict[str, Any]:
    """Run one host-layer request on the host; HostUnreachable when it cannot be done."""
    conn = connect(target)
    try:
        digest, layer = host_layer()
        body = json.dumps(request).encode()
        header = {"layer": digest, "layer_len": len(layer), "request_len": len(body),
                  "psutil": _psutil_version(), "watch": watch}
        status, doc = _exec(conn, target, header, layer + body, emit)
        if status == NEED_PSUTIL and doc.get("need") == "psutil":
            _provision_psutil(conn, target, doc, emit)
            status, doc = _exec(conn, target, header, layer + body, emit)
        if status != 0 and "error" not in doc:
            raise HostUnreachable(f"the host layer failed on {target.name} (exit {status}): {doc}")
        return doc
    finally:
        disconnect(conn)
