"""Choosing projects: a name, glob patterns, '!negations', '.', --tag and --host.

A tool that stops and kills processes must never widen a selection by
accident, so every part of a selection has to mean something: an empty
pattern (an unset shell variable), a name or tag that does not exist, a glob
or a negation that matches nothing are usage errors that say what exists,
never "everything".
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError
from .inventory import LOCAL, Inventory, Project

GLOB_CHARS = "*?["


def _by_cwd(inv: Inventory, cwd: Path) -> Project:
    # Resolved and compared component-wise: the cwd the OS reports has symlinks resolved, the
    # inventory's path may not; and /x/p1 must not hold /x/p10.
    here = os.path.realpath(cwd)
    best: Project | None = None
    best_root = ""
    for p in inv.projects.values():
        if p.host != LOCAL:
            continue
        root = os.path.realpath(p.path)
        if os.path.commonpath([here, root]) == root and len(root) > len(best_root):
            best, best_root = p, root
    if best is None:
        raise UsageError(f"'.' means the project holding the current directory, and {here} is in none; "
                         f"projects: {', '.join(inv.projects) or '(none)'}")
    return best


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """'; did you mean: a, b?' for the candidates close to ``word`` (same letters in another case first)."""
    pool = list(candidates)
    same = [c for c in pool if c.lower() == word.lower() and c != word]
    close = same + [c for c in difflib.get_close_matches(word, pool, n=3, cutoff=0.6) if c not in same]
    return f"; did you mean: {', '.join(close[:3])}?" if close else ""


def _listing(inv: Inventory) -> str:
    return f"projects: {', '.join(inv.projects) or '(none)'}"


def _term(inv: Inventory, term: str, cwd: Path) -> set[str]:
    """The names one term of a pattern matches (for '!x', the names it excludes); never empty."""
    negated = term.startswith("!")
    body = term[1:].strip() if negated else term
    if not body:
        raise UsageError(f"{term!r} in a pattern: '!' needs a name or glob after it")
    if body == ".":
        return {_by_cwd(inv, cwd).name}
    matched = {name for name in inv.projects if fnmatch.fnmatchcase(name, body)}
    if matched:
        return matched
    why = (f"{body!r} matches no project" if any(c in body for c in GLOB_CHARS)
           else f"no project named {body!r}{did_you_mean(body, inv.projects)}")
    lead = f"{term!r} excludes nothing: " if negated else ""
    raise UsageError(f"{lead}{why}; {_listing(inv)}")


def _pattern(inv: Inventory, pattern: str, cwd: Path) -> set[str]:
    terms = [t.strip() for t in pattern.split(",") if t.strip()]
    if not terms:
        raise UsageError(f"empty project pattern {pattern!r} (an unset variable?); give a name, a glob "
                         f"such as 'lab-*', or '*' for every project; {_listing(inv)}")
    positive: set[str] = set()
    negative: set[str] = set()
    for term in terms:
        (negative if term.startswith("!") else positive).update(_term(inv, term, cwd))
    if not any(not t.startswith("!") for t in terms):
        positive = set(inv.projects)  # only negations: all but those
    return positive - negative


def _check_tags(inv: Inventory, tags: set[str]) -> None:
    known = sorted({t for p in inv.projects.values() for t in p.tags})
    for tag in sorted(tags):
        if not tag.strip():
            raise UsageError("empty --tag (an unset variable?); tags: " + (", ".join(known) or "(none)"))
        if tag not in known:
            raise UsageError(f"no project has tag {tag!r}{did_you_mean(tag, known)}; tags: "
                             + (", ".join(known) or "(none)"))


def hosts_of(inv: Inventory, hosts: str) -> set[str]:
    """The hosts a --host value names ('a,b': both); each must be in the inventory."""
    known = [LOCAL, *inv.hosts]
    wanted = {h.strip() for h in hosts.split(",") if h.strip()}
    if not wanted:
        raise UsageError(f"empty --host {hosts!r} (an unset variable?); hosts: {', '.join(known)}")
    for h in sorted(wanted):
        if h not in known:
            raise UsageError(f"no host {h!r} in the inventory{did_you_mean(h, known)}; hosts: {', '.join(known)}")
    return wanted


def one_host(inv: Inventory, value: str, task: str) -> str:
    """A --host value for a task that works on one host: a list is refused, not cut to its first name."""
    names = sorted(hosts_of(inv, value))
    if len(names) > 1:
        raise UsageError(f"{task} works on one host, and --host {value!r} names {len(names)}; "
                         "run it once per host")
    return names[0]


def select(inv: Inventory, pattern: str | None = None, tags: Iterable[str] = (),
           hosts: str | None = None, cwd: Path | None = None) -> list[Project]:
    """The projects matching every criterion given, in name order.

    ``pattern`` is comma-separated terms: a name, a glob ('lab-*'), '.', or a
    negation ('!old'); only negations means "all but". ``None`` (the flag was
    not given) means every project. Each term, tag and host must match
    something, and so must the whole selection: otherwise a UsageError says
    what exists.
    """
    names = _pattern(inv, pattern, cwd or Path.cwd()) if pattern is not None else set(inv.projects)
    chosen = [p for p in inv.projects.values() if p.name in names]
    tag_set = set(tags)
    if tag_set:
        _check_tags(inv, tag_set)
        chosen = [p for p in chosen if tag_set & set(p.tags)]
    if hosts is not None:
        wanted = hosts_of(inv, hosts)
        chosen = [p for p in chosen if p.host in wanted]
    if not chosen:
        asked = ", ".join(filter(None, [
            f"name {pattern!r}" if pattern is not None else "",
            f"tag {sorted(tag_set)}" if tag_set else "",
            f"host {hosts!r}" if hosts is not None else "",
        ])) or "no criteria"
        all_tags = sorted({t for p in inv.projects.values() for t in p.tags})
        raise UsageError(
            f"no project matches {asked}; {_listing(inv)}"
            + (f"; tags: {', '.join(all_tags)}" if all_tags else "")
            + f"; hosts: {', '.join([LOCAL, *inv.hosts])}"
        )
    return sorted(chosen, key=lambda p: p.name)
