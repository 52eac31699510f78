"""Tasks that need a connection of their own: open (SSH tunnels for remote projects), tunnels, close, trust."""

from __future__ import annotations

import os
import sys
from typing import Any

from invoke.exceptions import Exit

from ..closer import chosen_records, close_tunnels, forget_gone
from ..errors import EXIT_UNREACHABLE, LifecycleError, UsageError
from ..inventory import LOCAL, load_inventory
from ..opener import OpenOptions, open_projects
from ..report import Reporter, tunnels_table
from ..tunnel import TunnelOptions
from .common import finish, lc_task, prepare
from .flags import HOST, PORT, SECONDS_OR_OFF


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@lc_task(name="open", kinds={"local_port": PORT, "keepalive": SECONDS_OR_OFF, "reconnect": SECONDS_OR_OFF}, help={
    "no_browser": "only print the URL (and keep the tunnel); do not start a browser",
    "local_port": "local port of the tunnel (one remote project; default: the project's usual one)",
    "start": "start a project that is not running, then open it",
    "detach": "run each tunnel in the background; list them with 'jlc tunnels', end them with 'jlc close'",
    "keepalive": "seconds between keepalive probes; the session is dead after twice that in silence (0: off)",
    "reconnect": "seconds to keep reconnecting after the session died (0: exit at once)",
})
def open_(c: Any, name: str, no_browser: bool = False, local_port: int | None = None, start: bool = False,
          detach: bool = False, keepalive: float = 10.0, reconnect: float = 300.0, tag: Any = None,
          host: str | None = None) -> None:
    """Open projects' Labs in the browser; remote ones through SSH tunnels kept until Ctrl-C (or --detach)."""
    reporter, inv, projects = prepare(c, "open", name, tag, host, False, True)
    reporter.urls, reporter.out = sys.stdout, sys.stderr  # stdout carries the URLs and nothing else
    if local_port is not None:
        if len(projects) != 1:
            raise UsageError(f"--local-port works on one project; {name!r} selects {len(projects)}: "
                             + ", ".join(p.name for p in projects))
        if projects[0].host == LOCAL:
            raise UsageError(f"--local-port is for the tunnel to a remote project; {projects[0].name} is local")
    options = OpenOptions(browser=not no_browser and _interactive(), local_port=local_port, start=start,
                          detach=detach, ask=sys.stdin.isatty() and sys.stderr.isatty(),
                          tunnel=TunnelOptions(keepalive=keepalive, reconnect=reconnect))
    code = open_projects(inv, projects, options, reporter)
    if code:
        raise Exit(code=code)


@lc_task(help={"only": "narrow to tunnels of projects matching this name pattern",
               "host": "only tunnels to this inventory host"})
def tunnels(c: Any, only: str | None = None, host: str | None = None, json: bool = False) -> None:
    """List the tunnels running on this machine (foreground and detached); stale records are removed."""
    reporter = Reporter("tunnels", as_json=json)
    records = chosen_records(only, host)
    forget_gone(records)
    rows = [r.to_public() for r in records]
    if json:
        reporter.json({"version": 1, "tunnels": rows})
    elif rows:
        print(tunnels_table(rows))
    else:
        print("no tunnels", file=sys.stderr)


@lc_task(help={"name": "tunnel(s) to close: a project name, glob ('gpu-*'), list ('a,b'), negation ('!old')",
               "host": "only tunnels to this inventory host"})
def close(c: Any, name: str, host: str | None = None, check: bool = False, json: bool = False) -> None:
    """Close tunnels: their process, positively identified, gets SIGTERM (SIGKILL after 5 s)."""
    reporter = Reporter("close", as_json=json)
    records = chosen_records(name, host)
    if not records and not json:
        print(f"nothing to close: no tunnel matches {name!r}" + (f" on {host}" if host else ""), file=sys.stderr)
        return
    finish(reporter, close_tunnels(records, check, reporter.event))


@lc_task(kinds={"host": HOST}, help={"host": "the inventory host whose key to record"})
def trust(c: Any, host: str) -> None:
    """Record a host's SSH key (and its ProxyJump hops' keys) in known_hosts after you have checked the
    fingerprint (first contact only: a changed key is never replaced)."""
    import paramiko

    from ..hostkeys import describe, hops, known_hosts_file, known_hosts_name
    from ..ssh import HostUnreachable, connect, disconnect

    inv = load_inventory()
    if host not in inv.hosts:
        raise UsageError(f"no host {host!r} in {inv.source}; hosts: {', '.join(inv.hosts) or '(none)'} (a host "
                         f"reached with -H only: run 'ssh HOST' once, which shows the fingerprint and records it)")
    path = known_hosts_file(inv.hosts[host])
    try:
        known = paramiko.HostKeys(path) if os.path.exists(path) else paramiko.HostKeys()
    except (OSError, UnicodeError, ValueError, paramiko.SSHException) as exc:
        raise LifecycleError(f"cannot read the known_hosts file {path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    size = os.path.getsize(path) if os.path.exists(path) else 0
    try:
        conn = connect(inv.hosts[host], trust_new=True)
    except HostUnreachable as exc:
        # The key is recorded before authentication: a login that then fails has still trusted it.
        grew = (os.path.getsize(path) if os.path.exists(path) else 0) != size
        recorded = f" (its host key was recorded in {path} before that)" if grew else ""
        raise LifecycleError(f"host {host} unreachable: {exc}{recorded}", EXIT_UNREACHABLE) from None
    try:
        keys = [(known_hosts_name(hop.host, hop.port), hop.transport.get_remote_server_key()) for hop in hops(conn)]
    finally:
        disconnect(conn)
    # The target first, then each ProxyJump hop: each key as `ssh-keygen -lf` shows it, to compare.
    for name, key in keys:
        before = (known.lookup(name) or {}).get(key.get_name())
        if before is not None and before.asbytes() == key.asbytes():
            print(f"ok: [{host}] host key already in {path}: {name} {describe(key)}")
        else:
            print(f"changed: [{host}] host key added to {path}: {name} {describe(key)}")
