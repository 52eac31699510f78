"""Carrying host-layer requests to hosts: in-process for ``local``.

Every request is plain JSON-able data and every response is one JSON-able
document, so a remote transport can run the same ``lifecycle.host`` entry
point over SSH and nothing above this module changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import UsageError
from .host import api
from .host.spec import ProjectSpec
from .inventory import LOCAL, Inventory, Project
from .specs import project_spec

Emit = Callable[[dict[str, Any]], None]


def build_request(op: str, host: str, specs: list[ProjectSpec], options: dict[str, Any],
                  known: list[ProjectSpec] | None = None) -> dict[str, Any]:
    """``known`` is every project on that host, so servers of unselected projects are attributed."""
    return {"version": api.PROTOCOL, "op": op, "host": host, "projects": [s.to_dict() for s in specs],
            "known": [s.to_dict() for s in known or []], "options": options}


def call_local(request: dict[str, Any], emit: Emit) -> dict[str, Any]:
    return api.handle(request, emit)


def by_host(projects: list[Project]) -> dict[str, list[Project]]:
    groups: dict[str, list[Project]] = {}
    for p in projects:
        groups.setdefault(p.host, []).append(p)
    return groups


def run(inv: Inventory, op: str, projects: list[Project], options: dict[str, Any],
        emit: Emit) -> dict[str, dict[str, Any]]:
    """Run ``op`` for the projects on their hosts; responses keyed by host name."""
    groups = by_host(projects)
    remote = sorted(h for h in groups if h != LOCAL)
    if remote:
        raise UsageError(f"remote hosts are not supported by this version yet: {', '.join(remote)} "
                         f"(narrow with --host local)")
    responses: dict[str, dict[str, Any]] = {}
    for host, members in groups.items():
        known = [project_spec(p) for p in inv.projects.values() if p.host == host]
        request = build_request(op, host, [project_spec(p) for p in members], options, known)
        responses[host] = call_local(request, emit)
    return responses
