"""Stopping one Jupyter server named by its port or pid, whichever project it lies in, or none."""

from __future__ import annotations

from typing import List, Optional

from .context import OpContext
from .fleet import ServerEntry, Survey, owned_by_me
from .orphans import stop_untracked
from .ports import listeners
from .procs import port_from_cmdline
from .results import CHANGED, FAILED, Result


def _port_of(entry: ServerEntry) -> Optional[int]:
    info = entry.view.info
    return info.port if info is not None and info.port else port_from_cmdline(entry.view.proc.cmdline)


def _matches(target: str, found: Survey) -> List[ServerEntry]:
    prefix, sep, rest = target.partition(":")
    kind, value = (prefix, rest) if sep and prefix in ("port", "pid") else ("", target)
    if not value.isdigit():
        return []
    number = int(value)
    hits: List[ServerEntry] = []
    if kind in ("", "pid"):
        hits += [s for s in found.servers if s.pid == number]
    if kind in ("", "port"):
        on_port = {pid for pid in listeners().get(number, []) if pid is not None}
        hits += [s for s in found.servers if s.pid in on_port or _port_of(s) == number]
    unique = {s.pid: s for s in hits}
    return list(unique.values())


def stop_server(target: str, found: Survey, ctx: OpContext, timeout: float) -> Result:
    """Stop the Jupyter server listening on port N, or with pid N (``port:N`` / ``pid:N`` to say which).

    Like ``jupyter server stop``, for any server of this user, with the same
    positive identification, graceful shutdown and kernel reaping as ``stop``.
    A server a project's pid file tracks is that project's: stop the project.
    Idempotent only in the sense that a server already gone is reported, not faked.
    """
    matches = _matches(target, found)
    if not matches:
        return ctx.result(None, "stop-server", FAILED, f"no Jupyter server matches {target!r} on this host "
                          "(a port it listens on, or its pid)")
    if len(matches) > 1:
        pids = ", ".join(str(m.pid) for m in matches)
        return ctx.result(None, "stop-server", FAILED, f"{target!r} matches several servers (pids {pids}): "
                          f"say port:{target} or pid:{target}")
    entry = matches[0]
    pid = entry.pid
    if entry.tracked_by is not None:
        return ctx.result(entry.tracked_by, "stop-server", FAILED,
                          f"server pid {pid} is project {entry.tracked_by}'s: use `stop {entry.tracked_by}`")
    if not owned_by_me(entry.view.proc):
        return ctx.result(entry.project, "stop-server", FAILED, f"server pid {pid} belongs to another user")
    if ctx.check:
        port = _port_of(entry)
        return ctx.result(entry.project, "stop-server", CHANGED,
                          f"would stop untracked server pid {pid}" + (f" on port {port}" if port else ""),
                          facts={"pid": pid, "port": port})
    return stop_untracked(entry, found, ctx, timeout, "stop-server")
