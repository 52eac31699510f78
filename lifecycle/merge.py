"""Answers of several inventory hosts that are one machine, merged so each thing on it is listed once.

Two host names can reach one machine (an ssh alias of this box, one box under two names): each
answers for the whole machine, so its servers, kernels and ports come back once per name.  Each
answer carries the machine's boot id (``machine``); rows with the same key on the same machine are
one row, the one from the host the inventory puts its project on (else one that names a project,
else the first host's).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from .inventory import Inventory


def _rank(inv: Inventory, host: str, row: dict[str, Any]) -> int:
    project = row.get("project")
    if project is None:
        return 2
    owner = inv.projects.get(str(project))
    return 0 if owner is not None and owner.host == host else 1


def machine_of(answer: dict[str, Any], host: str) -> str:
    """The answer's machine, or the host's own name when it did not say (an older host layer)."""
    machine = answer.get("machine")
    return machine if isinstance(machine, str) and machine else f"host:{host}"


def rows_once(inv: Inventory, answers: dict[str, dict[str, Any]], member: str,
              key: Callable[[dict[str, Any]], Hashable],
              combine: Callable[[dict[str, Any], dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every answer's ``member`` rows, each (machine, key) once, in the hosts' order.

    ``combine(kept, dropped)`` lets the kept row take what only the dropped one knew.
    """
    kept: dict[tuple[str, Hashable], tuple[int, dict[str, Any]]] = {}
    for host, answer in answers.items():
        for row in answer.get(member) or []:
            k = (machine_of(answer, host), key(row))
            rank = _rank(inv, host, row)
            if k not in kept:
                kept[k] = (rank, row)
                continue
            best_rank, best = kept[k]
            winner, loser = (row, best) if rank < best_rank else (best, row)
            if combine is not None:
                combine(winner, loser)
            kept[k] = (min(rank, best_rank), winner)
    return [row for _, row in kept.values()]


def answers_once(inv: Inventory, answers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One answer per machine (``which`` asks each host about the same target)."""
    best: dict[str, tuple[int, str]] = {}
    for host, answer in answers.items():
        machine = machine_of(answer, host)
        rank = _rank(inv, host, answer) if "error" not in answer else 3
        if machine not in best or rank < best[machine][0]:
            best[machine] = (rank, host)
    chosen = {host for _, host in best.values()}
    return {h: a for h, a in answers.items() if h in chosen}
