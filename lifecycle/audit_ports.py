"""The audit's port rules, judged on the controller from the inventory (and the host's ephemeral range).

Advice names the exact edit: a free block of ports for the project, found the way
``discover`` finds one (10 ports, aligned, clear of every range on the host).
"""

from __future__ import annotations

from typing import Any

from .errors import InventoryError
from .host.audit import FAIL, PASS, WARN, Verdict
from .inventory import Inventory, Project
from .inventory_edit import free_ranges

LOWEST, HIGHEST = 1024, 65535


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _suggest(inv: Inventory, project: Project, ephemeral: tuple[int, int] | None) -> str:
    taken = [p.port_range for p in inv.projects.values() if p.host == project.host and p.name != project.name]
    taken.append(tuple(inv.defaults["port_range"]))  # type: ignore[arg-type]
    if ephemeral is not None:
        taken.append(ephemeral)
    try:
        low, high = free_ranges(taken, 1, int(inv.defaults["port_range"][0]))[0]
    except InventoryError:
        return f"give {project.name} a port range of its own in {inv.source}"
    return f"in {inv.source}, [projects.{project.name}]: port_range = [{low}, {high}]"


def port_span(inv: Inventory, project: Project, ephemeral: tuple[int, int] | None) -> Verdict:
    low, high = project.port_range
    if not (LOWEST <= low <= high <= HIGHEST):
        return Verdict(FAIL, f"[{low}, {high}] is outside {LOWEST}-{HIGHEST}", advice=_suggest(inv, project, ephemeral))
    if ephemeral is None:
        return Verdict(PASS, f"[{low}, {high}] (the host's ephemeral port range is unknown)")
    if _overlap((low, high), ephemeral):
        return Verdict(WARN, f"[{low}, {high}] lies in the host's ephemeral port range {ephemeral[0]}-{ephemeral[1]}: "
                             "outgoing connections may take its ports at any time",
                       advice=_suggest(inv, project, ephemeral))
    return Verdict(PASS, f"[{low}, {high}], clear of the host's ephemeral range {ephemeral[0]}-{ephemeral[1]}")


def port_overlap(inv: Inventory, project: Project, ephemeral: tuple[int, int] | None) -> Verdict:
    pool = tuple(inv.defaults["port_range"])
    mine = project.port_range
    clash = sorted(p.name for p in inv.projects.values()
                   if p.host == project.host and p.name != project.name and _overlap(mine, p.port_range)
                   and not (mine == pool and p.port_range == pool))
    if clash:
        return Verdict(FAIL, f"[{mine[0]}, {mine[1]}] overlaps the range of {', '.join(clash)} on host {project.host}",
                       advice=_suggest(inv, project, ephemeral))
    sharing = [p.name for p in inv.projects.values()
               if p.host == project.host and p.name != project.name and p.port_range == mine]
    if sharing:
        return Verdict(PASS, f"shares the default range [{mine[0]}, {mine[1]}] with {len(sharing)} project(s) "
                             "(a pool: ports are allocated under a lock)")
    return Verdict(PASS, f"[{mine[0]}, {mine[1]}] is this project's alone on host {project.host}")


def port_rules(inv: Inventory, project: Project, ephemeral: Any) -> dict[str, dict[str, Any]]:
    """The rows of the inventory rules for one project (``ephemeral``: what its host reported)."""
    span = (int(ephemeral[0]), int(ephemeral[1])) if isinstance(ephemeral, list) and len(ephemeral) == 2 else None
    return {"port-span": port_span(inv, project, span).to_dict("port-span"),
            "port-overlap": port_overlap(inv, project, span).to_dict("port-overlap")}
