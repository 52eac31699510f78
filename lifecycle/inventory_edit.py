"""Adding projects to inventory.toml while keeping the user's comments and formatting."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

from .host.fsutil import write_atomic
from .inventory import Inventory


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


def add_projects(inv: Inventory, paths: list[str]) -> dict[str, str]:
    """Append ``[projects.NAME]`` tables for ``paths``; returns name -> path added. Written atomically."""
    import tomlkit  # deferred: only discover --write edits TOML

    text = inv.source.read_text()
    doc = tomlkit.parse(text)
    if "projects" not in doc:
        doc.append("projects", tomlkit.table(is_super_table=True))
    projects = doc["projects"]
    taken = set(inv.projects)
    added: dict[str, str] = {}
    for path in paths:
        name = project_name(path, taken)
        taken.add(name)
        table = tomlkit.table()
        table.add(tomlkit.comment(f"added by jupyter-lifecycle discover on {date.today().isoformat()}"))
        table["path"] = _inventory_path(path, inv.source.parent)
        projects.append(name, table)  # type: ignore[union-attr]
        added[name] = path
    if added:
        write_atomic(inv.source, tomlkit.dumps(doc))
    return added
