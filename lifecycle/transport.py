"""Carrying host-layer requests to hosts: in-process for ``local``, one SSH exec for the others.

Every request is plain JSON-able data and every response one JSON-able
document, so local and remote runs go through the same host-layer code.
Hosts are worked on in parallel (a bounded pool); a host that cannot be
reached answers ``{"unreachable": reason}`` and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .host import api
from .host.spec import ProjectSpec
from .inventory import LOCAL, Inventory, Project
from .specs import project_spec

Emit = Callable[[dict[str, Any]], None]
DEFAULT_FORKS = 5


def build_request(op: str, host: str, specs: list[ProjectSpec], options: dict[str, Any],
                  known: list[ProjectSpec] | None = None) -> dict[str, Any]:
    """``known`` is every project on that host, so servers of unselected projects are attributed."""
    return {"version": api.PROTOCOL, "op": op, "host": host, "projects": [s.to_dict() for s in specs],
            "known": [s.to_dict() for s in known or []], "options": options}


def call(inv: Inventory, host: str, request: dict[str, Any], emit: Emit, watch: bool = False) -> dict[str, Any]:
    """One request to one host; an unreachable host becomes ``{"unreachable": reason}``."""
    if host == LOCAL:
        return api.handle(request, emit)
    from .errors_ssh import HostUnreachable
    from .remote_run import run_remote

    try:
        return run_remote(inv.hosts[host], request, emit, watch=watch)
    except HostUnreachable as exc:
        return {"version": api.PROTOCOL, "unreachable": str(exc)}


def by_host(projects: list[Project]) -> dict[str, list[Project]]:
    groups: dict[str, list[Project]] = {}
    for p in projects:
        groups.setdefault(p.host, []).append(p)
    return groups


def forks(inv: Inventory, hosts: list[str]) -> int:
    configured = [inv.hosts[h].forks for h in hosts if h in inv.hosts]
    return max(configured) if configured else DEFAULT_FORKS


def run(inv: Inventory, op: str, projects: list[Project], options: dict[str, Any], emit: Emit,
        watch: bool = False) -> dict[str, dict[str, Any]]:
    """Run ``op`` for the projects on their hosts, hosts in parallel; responses keyed by host name."""
    groups = by_host(projects)

    def one(host: str) -> dict[str, Any]:
        known = [project_spec(p) for p in inv.projects.values() if p.host == host]
        request = build_request(op, host, [project_spec(p) for p in groups[host]], options, known)
        return call(inv, host, request, emit, watch=watch)

    hosts = sorted(groups, key=lambda h: (h != LOCAL, h))
    if len(hosts) == 1:
        # No pool: Ctrl-C reaches the work directly (logs -f, start --foreground).
        return {hosts[0]: one(hosts[0])}
    with ThreadPoolExecutor(max_workers=min(forks(inv, hosts), len(hosts))) as pool:
        return dict(zip(hosts, pool.map(one, hosts), strict=True))
