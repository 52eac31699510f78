"""``jlc tunnels`` and ``jlc close``: which tunnel records a pattern selects, and closing their tunnels."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from . import tunnel_registry as registry
from .errors import UsageError
from .host.results import CHANGED, FAILED, OK, Result

Emit = Callable[[dict[str, Any]], None]


def _matching(names: list[str], pattern: str | None) -> set[str]:
    """Project names as ``select`` reads a pattern (names, globs, 'a,b', '!neg'), over tunnels.

    Unlike projects, a name with no tunnel is not an error: closing what is not
    open is done already. An empty pattern still is (an unset variable).
    """
    if pattern is None:
        return set(names)
    terms = [t.strip() for t in pattern.split(",") if t.strip()]
    if not terms or any(t == "!" for t in terms):
        raise UsageError(f"empty tunnel pattern {pattern!r} (an unset variable?); give a project name, a glob "
                         f"such as 'gpu-*', or '*' for every tunnel")
    positive = [t for t in terms if not t.startswith("!")]
    negative = [t[1:].strip() for t in terms if t.startswith("!")]
    chosen = {n for n in names if any(fnmatch.fnmatchcase(n, t) for t in positive)} if positive else set(names)
    return {n for n in chosen if not any(fnmatch.fnmatchcase(n, t) for t in negative)}


def chosen_records(pattern: str | None, host: str | None) -> list[registry.TunnelRecord]:
    """The records whose project matches ``pattern`` (and whose host is in ``host``, a comma list).

    A record whose process is gone, or whose pid now belongs to another
    process, is marked ``gone``.
    """
    found = registry.records()
    names = _matching([r.project for r in found], pattern)
    hosts = {h.strip() for h in (host or "").split(",") if h.strip()}
    chosen = [r for r in found if r.project in names and (not hosts or r.host in hosts)]
    for record in chosen:
        if registry.process_of(record) is None:
            record.state, record.note = "gone", "its process has ended"
    return chosen


def forget_gone(records: list[registry.TunnelRecord]) -> None:
    for record in records:
        if record.state == "gone":
            registry.discard(record)


def close_tunnels(records: list[registry.TunnelRecord], check: bool, emit: Emit) -> list[Result]:
    """Close each record's tunnel: its process, identified by pid, create time and command line, gets
    SIGTERM, then SIGKILL.  A process carrying several tunnels (one foreground ``open`` of several
    projects) ends them all; the message names the others."""
    results: list[Result] = []
    done: dict[int, str] = {}
    everyone = registry.records()
    for record in records:
        where = f"tunnel 127.0.0.1:{record.local_port} -> {record.host}:{record.remote_port}"
        proc = registry.process_of(record)
        if proc is None:
            if not check:
                registry.discard(record)
            result = Result(record.host, record.project, "close", OK,
                            f"{where} was not running (stale record {'would be ' if check else ''}removed)")
        elif check:
            result = Result(record.host, record.project, "close", CHANGED,
                            f"would close {where} (pid {record.pid})", facts={"pid": record.pid})
        else:
            how = done.get(record.pid) or registry.stop_process(proc)
            done[record.pid] = how
            if how == "still running":
                result = Result(record.host, record.project, "close", FAILED,
                                f"{where}: pid {record.pid} did not exit after SIGKILL")
            else:
                registry.discard(record)  # the process removes it itself unless it was killed
                others = sorted(r.project for r in everyone if r.pid == record.pid and r.key != record.key)
                also = f"; that process also carried {', '.join(others)}" if others else ""
                result = Result(record.host, record.project, "close", CHANGED,
                                f"closed {where} (pid {record.pid}, {how}){also}",
                                facts={"pid": record.pid, "method": how})
        emit({"event": "result", "result": result.to_dict()})
        results.append(result)
    return results
