"""Connections to remote hosts: Fabric for ssh config (aliases, User, Port, IdentityFile, ProxyJump) and
authentication, our host-key policy (hostkeys.py), AES-GCM preferred, gateways closed with the connection.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import paramiko

from .errors_ssh import HostUnreachable
from .hostkeys import changed_key, secure
from .inventory import Host

__all__ = ["HostUnreachable", "connect", "disconnect"]

# paramiko logs a dying connection as ERROR lines with a traceback, which Python
# prints on stderr when nobody configured logging; we report failures ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


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
    # paramiko waits 15 s for the greeting and 30 s for auth whatever the connect timeout;
    # an sshd frozen after accept() then surfaced as "No existing session".
    kwargs: dict[str, Any] = {"look_for_keys": True, "banner_timeout": target.connect_timeout,
                              "auth_timeout": target.connect_timeout}
    if "transport_factory" in inspect.signature(paramiko.SSHClient.connect).parameters:  # paramiko >= 3.2
        kwargs["transport_factory"] = _transport
    keys = [os.path.expanduser(k) for k in (target.identity, *target.more_identities) if k]
    if keys:
        kwargs["key_filename"] = keys
    conn = Connection(target.address, user=target.user, port=target.port, config=config,
                      connect_timeout=int(target.connect_timeout), connect_kwargs=kwargs)
    secure(conn, target, trust_new)
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
        raise changed_key(conn, target, exc) from None
    except paramiko.AuthenticationException as exc:
        raise HostUnreachable(f"authentication failed for {where}: {exc}") from None
    except TimeoutError:
        raise HostUnreachable(f"cannot connect to {where}: timed out after {target.connect_timeout:g}s") from None
    except (OSError, paramiko.SSHException, EOFError) as exc:
        if _waited(exc):
            raise HostUnreachable(f"cannot connect to {where}: timed out after {target.connect_timeout:g}s "
                                  f"waiting for the SSH server to answer") from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise HostUnreachable(f"cannot connect to {where}: {reason}") from None
    return conn


def _waited(exc: BaseException) -> bool:
    """Did paramiko give up waiting for the server (greeting, auth) rather than meet an error?"""
    text = str(exc)
    return "protocol banner" in text or "No existing session" in text or "Authentication timeout" in text


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


