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
                  known: list[ProjectSpec] | None = None, peers: list[ProjectSpec] | None = None) -> dict[str, Any]:
    """``known`` is every project on that host, so servers of unselected projects are attributed;
    ``peers`` the other hosts' projects, for a host that is one machine with another (host/fleet.py)."""
    return {"version": api.PROTOCOL, "op": op, "host": host, "projects": [s.to_dict() for s in specs],
            "known": [s.to_dict() for s in known or []], "peers": [s.to_dict() for s in peers or []],
            "options": options}


def known_and_peers(inv: Inventory, hosts: list[str]) -> tuple[list[ProjectSpec], list[ProjectSpec]]:
    """The projects of ``hosts`` (one machine), and every other project of the inventory."""
    known = [project_spec(p) for p in inv.projects.values() if p.host in hosts]
    peers = [project_spec(p) for p in inv.projects.values() if p.host not in hosts]
    return known, peers


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


def machine_wide(op: str, options: dict[str, Any]) -> bool:
    """Whether ``op`` acts on processes outside the selected projects (servers and kernels of no project)."""
    if op == "orphans":
        return bool(options.get("kill"))
    return op == "stop-all" and bool(options.get("include_unmanaged"))


def _in_parallel(inv: Inventory, hosts: list[str], fn: Callable[[str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if len(hosts) == 1:
        # No pool: Ctrl-C reaches the work directly (logs -f, start --foreground).
        return {hosts[0]: fn(hosts[0])}
    with ThreadPoolExecutor(max_workers=min(forks(inv, hosts), len(hosts))) as pool:
        return dict(zip(hosts, pool.map(fn, hosts), strict=True))


def machines(inv: Inventory, hosts: list[str]) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """For each host, the hosts of ``hosts`` that are the same machine (in host order); and the
    answers of the hosts that could not be asked (``{"unreachable": reason}``).

    Asked (one small request per host) before a machine-wide kill, so that a machine reached under
    several names knows all their projects and only one of its names deals with what is no project's.
    A host that does not say is a machine of its own.
    """
    answers = _in_parallel(inv, hosts, lambda h: call(inv, h, build_request("machine", h, [], {}), lambda e: None))
    ids = {h: a.get("machine") if isinstance(a.get("machine"), str) and a.get("machine") else f"?{h}"
           for h, a in answers.items()}
    down = {h: a for h, a in answers.items() if "unreachable" in a}
    return {h: [o for o in hosts if ids[o] == ids[h]] for h in hosts}, down


def run(inv: Inventory, op: str, projects: list[Project], options: dict[str, Any], emit: Emit,
        watch: bool = False, hosts: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``op`` for the projects on their hosts, hosts in parallel; responses keyed by host name.

    ``hosts`` adds hosts asked with no project selected (which asks a machine, not its projects).
    """
    groups = by_host(projects)
    for h in hosts or []:
        groups.setdefault(h, [])
    ordered = sorted(groups, key=lambda h: (h != LOCAL, h))
    mates: dict[str, list[str]] = {h: [h] for h in ordered}
    down: dict[str, dict[str, Any]] = {}
    if machine_wide(op, options) and len(ordered) > 1:
        mates, down = machines(inv, ordered)

    def one(host: str) -> dict[str, Any]:
        if host in down:
            return down[host]  # it just failed to answer: not tried (and waited for) twice
        known, peers = known_and_peers(inv, mates[host])
        # One name per machine deals with what belongs to no project: the first in host order.
        opts = options if mates[host][0] == host else {**options, "unmanaged": False}
        request = build_request(op, host, [project_spec(p) for p in groups[host]], opts, known, peers)
        return call(inv, host, request, emit, watch=watch)

    return _in_parallel(inv, ordered, one)
