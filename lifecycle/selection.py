"""Choosing projects: a name, glob patterns, '!negations', '.', --tag and --host."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError
from .inventory import LOCAL, Inventory, Project


def _by_cwd(inv: Inventory, cwd: Path) -> Project:
    here = str(cwd.absolute())
    best: Project | None = None
    for p in inv.projects.values():
        if p.host == LOCAL and (here == p.path or here.startswith(p.path.rstrip("/") + "/")):
            if best is None or len(p.path) > len(best.path):
                best = p
    if best is None:
        raise UsageError(f"'.' means the project holding the current directory, and {here} is in none; "
                         f"projects: {', '.join(inv.projects) or '(none)'}")
    return best


def select(inv: Inventory, pattern: str | None = None, tags: Iterable[str] = (),
           hosts: str | None = None, cwd: Path | None = None) -> list[Project]:
    """The projects matching every criterion given, in name order.

    ``pattern`` is comma-separated terms: a name, a glob ('lab-*'), '.', or a
    negation ('!old').  Only negations means "all but".  An empty result is a
    UsageError naming what exists.
    """
    projects = list(inv.projects.values())
    chosen: list[Project]
    if pattern is not None and pattern.strip():
        terms = [t.strip() for t in pattern.split(",") if t.strip()]
        positive = [t for t in terms if not t.startswith("!")]
        negative = [t[1:] for t in terms if t.startswith("!")]
        if positive:
            names: set[str] = set()
            for term in positive:
                if term == ".":
                    names.add(_by_cwd(inv, cwd or Path.cwd()).name)
                else:
                    names.update(p.name for p in projects if fnmatch.fnmatchcase(p.name, term))
            chosen = [p for p in projects if p.name in names]
        else:
            chosen = list(projects)
        chosen = [p for p in chosen if not any(fnmatch.fnmatchcase(p.name, n) for n in negative)]
    else:
        chosen = list(projects)
    tag_set = set(tags)
    if tag_set:
        chosen = [p for p in chosen if tag_set & set(p.tags)]
    if hosts:
        wanted = {h.strip() for h in hosts.split(",") if h.strip()}
        chosen = [p for p in chosen if p.host in wanted]
    if not chosen:
        asked = ", ".join(filter(None, [
            f"name {pattern!r}" if pattern else "",
            f"tag {sorted(tag_set)}" if tag_set else "",
            f"host {hosts!r}" if hosts else "",
        ])) or "no criteria"
        all_tags = sorted({t for p in projects for t in p.tags})
        raise UsageError(
            f"no project matches {asked}; projects: {', '.join(inv.projects) or '(none)'}"
            + (f"; tags: {', '.join(all_tags)}" if all_tags else "")
            + f"; hosts: {', '.join([LOCAL, *inv.hosts])}"
        )
    return sorted(chosen, key=lambda p: p.name)
