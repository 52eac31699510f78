"""Tasks that need a connection of their own: open (with an SSH tunnel for remote projects), trust."""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.parse
import webbrowser
from typing import Any

from .. import transport
from ..errors import EXIT_UNREACHABLE, LifecycleError, UsageError
from ..inventory import LOCAL, load_inventory
from ..specs import project_spec
from .common import lc_task, prepare
from .flags import HOST, PORT


def _free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@lc_task(name="open", kinds={"local_port": PORT}, help={
    "no_browser": "only print the URL (and keep the tunnel); do not start a browser",
    "local_port": "local port for the tunnel to a remote server (default: a free one)",
})
def open_(c: Any, name: str, no_browser: bool = False, local_port: int | None = None, tag: Any = None,
          host: str | None = None) -> None:
    """Open a project's Lab in the browser; for a remote project through an SSH tunnel kept until Ctrl-C."""
    _, inv, projects = prepare(c, "open", name, tag, host, False, True)
    if len(projects) != 1:
        raise UsageError(f"open works on one project; {name!r} selects {len(projects)}: "
                         + ", ".join(p.name for p in projects))
    project = projects[0]
    known = [project_spec(p) for p in inv.projects.values() if p.host == project.host]
    request = transport.build_request("status", project.host, [project_spec(project)], {"show_token": True}, known)
    answer = transport.call(inv, project.host, request, lambda e: None)
    if "unreachable" in answer:
        raise LifecycleError(f"host {project.host} unreachable: {answer['unreachable']}", EXIT_UNREACHABLE)
    row = answer["projects"][0]
    if row["state"] not in ("running", "starting") or not row.get("token_url"):
        raise LifecycleError(f"{project.name} is {row['state']} on {project.host}; start it first: "
                             f"jlc start {project.name}")
    if project.host == LOCAL:
        print(row["token_url"], flush=True)
        if not no_browser and _interactive():
            webbrowser.open(row["token_url"])
        return
    from ..ssh import HostUnreachable, connect

    port = local_port or _free_local_port()
    remote_ip = "127.0.0.1" if project.ip in ("0.0.0.0", "", "*") else project.ip
    try:
        conn = connect(inv.hosts[project.host])
    except HostUnreachable as exc:
        raise LifecycleError(f"host {project.host} unreachable: {exc}", EXIT_UNREACHABLE) from None
    parts = urllib.parse.urlsplit(row["token_url"])
    local_url = urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
    try:
        with conn.forward_local(local_port=port, remote_port=int(row["port"]), remote_host=remote_ip,
                                local_host="127.0.0.1"):
            print(f"tunnel 127.0.0.1:{port} -> {project.host}:{row['port']} open; Ctrl-C closes it", file=sys.stderr)
            print(local_url, flush=True)
            if not no_browser and _interactive():
                webbrowser.open(local_url)
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("tunnel closed", file=sys.stderr)
    finally:
        conn.close()


@lc_task(kinds={"host": HOST}, help={"host": "the inventory host whose key to record"})
def trust(c: Any, host: str) -> None:
    """Record a host's SSH key in known_hosts after you have checked its fingerprint (first contact only)."""
    from ..ssh import HostUnreachable, connect, known_hosts_file

    inv = load_inventory()
    if host not in inv.hosts:
        raise UsageError(f"no host {host!r} in {inv.source}; hosts: {', '.join(inv.hosts) or '(none)'}")
    path = known_hosts_file(inv.hosts[host])
    before = os.path.getsize(path) if os.path.exists(path) else 0
    try:
        connect(inv.hosts[host], trust_new=True).close()
    except HostUnreachable as exc:
        raise LifecycleError(f"host {host} unreachable: {exc}", EXIT_UNREACHABLE) from None
    after = os.path.getsize(path) if os.path.exists(path) else 0
    if after != before:
        print(f"changed: [{host}] host key added to {path}")
    else:
        print(f"ok: [{host}] host key already in {path}")
