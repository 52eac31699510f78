"""Adding discovered projects to inventory.toml (creating it if needed), keeping the user's comments and formatting."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .errors import InventoryError
from .host.fsutil import CONFIG_FILE_LIMIT, UnreadableFile, read_small, write_atomic
from .inventory import BUILTIN_DEFAULTS, LOCAL, Inventory

# Ports a discovered project gets: a block of its own, so no range overlaps another on the host.
RANGE_SIZE = 10
_LOWEST, _HIGHEST = 1024, 65535
NEW_FILE_HEADER = ("jupyter-lifecycle inventory, created by discover: every key is documented in\n"
                   "docs/inventory.md; `jlc config` shows the values in effect.")


@dataclass(frozen=True)
class Planned:
    """A project ``discover`` would add: its name, where it is, and the table written for it."""

    name: str
    path: str
    entry_path: str
    port_range: tuple[int, int]
    reasons: tuple[str, ...]


def project_name(path: str, taken: set[str]) -> str:
    """A kernel-safe, unused project name from a directory name."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).name).strip("-._") or "project"
    if not base[0].isalnum():
        base = "p" + base
    name, n = base, 2
    while name.lower() in {t.lower() for t in taken}:
        name, n = f"{base}-{n}", n + 1
    return name


def _inventory_path(path: str, inventory_dir: Path) -> str:
    """How to write ``path``: relative to the inventory when inside it, else with ~ for home."""
    p = Path(path)
    try:
        return str(p.relative_to(inventory_dir))
    except ValueError:
        pass
    home = Path(os.path.expanduser("~"))
    try:
        return "~/" + str(p.relative_to(home))
    except ValueError:
        return str(p)


def free_ranges(taken: list[tuple[int, int]], count: int, start: int) -> list[tuple[int, int]]:
    """``count`` blocks of RANGE_SIZE ports overlapping nothing in ``taken`` (nor each other).

    Blocks are aligned to RANGE_SIZE, searched upward from ``start``, then from the lowest port.
    """
    out: list[tuple[int, int]] = []
    busy = list(taken)
    first = -(-max(start, _LOWEST) // RANGE_SIZE) * RANGE_SIZE
    lowest = -(-_LOWEST // RANGE_SIZE) * RANGE_SIZE
    for low in [*range(first, _HIGHEST - RANGE_SIZE + 2, RANGE_SIZE), *range(lowest, first, RANGE_SIZE)]:
        if len(out) == count:
            break
        block = (low, low + RANGE_SIZE - 1)
        if all(block[1] < a or b < block[0] for a, b in busy):
            out.append(block)
            busy.append(block)
    if len(out) < count:
        raise InventoryError(f"no free block of {RANGE_SIZE} ports left on host {LOCAL} for the projects found")
    return out


def plan_projects(inv: Inventory | None, target: Path, found: list[dict[str, Any]]) -> list[Planned]:
    """Names and port ranges for the projects found, given what the inventory (if any) holds.

    A discovered project gets a port range of its own: every range already used
    on this host, the default one included (projects that inherit it share it),
    is avoided, so loading the result warns about no overlap.
    """
    projects = inv.projects.values() if inv is not None else []
    default = tuple(inv.defaults["port_range"]) if inv is not None else tuple(BUILTIN_DEFAULTS["port_range"])
    taken = [p.port_range for p in projects if p.host == LOCAL] + [(int(default[0]), int(default[1]))]
    ranges = free_ranges(taken, len(found), int(default[0]))
    names = set(inv.projects) if inv is not None else set()
    planned = []
    for entry, port_range in zip(found, ranges, strict=True):
        name = project_name(entry["path"], names)
        names.add(name)
        planned.append(Planned(name=name, path=entry["path"], entry_path=_inventory_path(entry["path"], target.parent),
                               port_range=port_range, reasons=tuple(entry.get("reasons", ()))))
    return planned


def _tables(doc: Any, planned: list[Planned]) -> None:
    import tomlkit

    if "projects" not in doc:
        doc.append("projects", tomlkit.table(is_super_table=True))
    projects = doc["projects"]
    for p in planned:
        table = tomlkit.table()
        found = f": {', '.join(p.reasons)}" if p.reasons else ""
        table.add(tomlkit.comment(f"found by jupyter-lifecycle discover on {date.today().isoformat()}{found}"))
        table["path"] = p.entry_path
        ports = tomlkit.array()
        ports.extend(list(p.port_range))
        table["port_range"] = ports
        projects.append(p.name, table)


def render(planned: list[Planned]) -> str:
    """The TOML that adding ``planned`` appends (what ``discover`` shows before it writes)."""
    import tomlkit  # deferred: only discover edits TOML

    doc = tomlkit.document()
    _tables(doc, planned)
    return tomlkit.dumps(doc)


def add_projects(target: Path, planned: list[Planned], roots: list[str]) -> bool:
    """Append ``[projects.NAME]`` tables to the inventory at ``target``, creating it if it does not
    exist (then with ``[discover] roots`` set to ``roots``, so the next discover searches there
    again); the user's lines, comments and layout stay as they were.  Written atomically.
    Returns whether the file was created."""
    import tomlkit

    try:
        existing = read_small(target, CONFIG_FILE_LIMIT)
        text = existing.text() if existing is not None else None
    except UnreadableFile as exc:
        raise InventoryError(f"{target}: cannot read: it {exc}") from None
    if text is None:
        doc = tomlkit.document()
        for line in NEW_FILE_HEADER.splitlines():
            doc.add(tomlkit.comment(line))
        doc.add(tomlkit.nl())
        discover = tomlkit.table()
        where = tomlkit.array()
        where.extend([_inventory_path(r, target.parent) for r in roots])
        discover["roots"] = where
        doc.append("discover", discover)
    else:
        doc = tomlkit.parse(text)
    _tables(doc, planned)
    if planned or text is None:
        write_atomic(target, tomlkit.dumps(doc))
    return text is None
