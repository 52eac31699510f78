"""Orphans: servers no pid file tracks and kernels whose server is gone; listing and killing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from .context import OpContext, wait_gone
from .fleet import ServerEntry, Survey, owned_by_me
from .fsutil import remove
from .identify import handle
from .procs import Proc, rss_bytes
from .results import CHANGED, FAILED, SKIPPED, Result
from .runtime import remove_server_files
from .servers import inside
from .start import iso
from .stop import kernel_handles, reap, take_down, tree


def _row(host: str, proc: Proc, kind: str, project: Optional[str], found: Survey) -> Dict[str, Any]:
    under = [p.pid for p in found.snapshot.descendants(proc.pid)]
    return {"host": host, "pid": proc.pid, "kind": kind, "project": project, "cmdline": proc.command,
            "rss_bytes": rss_bytes([proc.pid] + under), "started": iso(proc.create_time),
            "mine": owned_by_me(proc)}


def stop_untracked(entry: ServerEntry, found: Survey, ctx: OpContext, timeout: float, action: str) -> Result:
    """Stop a server no pid file tracks, the way ``stop`` stops a project's: API or SIGTERM,
    SIGKILL after ``timeout``, everything under it reaped, its runtime files removed.
    The caller checked that the server is this user's and that stopping it was asked for."""
    proc = entry.view.proc
    problems: List[str] = []
    h = handle(proc)
    kernels, conn_files = kernel_handles(found.snapshot, proc.pid, h)
    method, reaped = take_down(h, entry.view.info, kernels, timeout)
    if h is not None and wait_gone([h], 0.0):
        return ctx.result(entry.project, action, FAILED, f"server pid {proc.pid} survived SIGKILL")
    if entry.view.runtime_dir:
        remove_server_files(Path(entry.view.runtime_dir), proc.pid, problems)
    roots = list(found.roots().values())
    for conn in conn_files:
        if any(inside(conn, root) for root in roots) or (
                entry.view.runtime_dir and inside(conn, entry.view.runtime_dir)):
            remove(Path(conn), problems)
    port = entry.view.info.port if entry.view.info is not None else None
    msg = (f"stopped untracked server pid {proc.pid}" + (f" on port {port}" if port else "") + f" ({method})"
           + (f"; terminated {reaped} kernel process(es)" if reaped else "")
           + (f"; warning: {'; '.join(problems)}" if problems else ""))
    return ctx.result(entry.project, action, CHANGED, msg,
                      diff={"before": {"state": "running", "pid": proc.pid}, "after": {"state": "stopped"}},
                      facts={"pid": proc.pid, "kind": "server", "method": method, "port": port})


def orphan_rows(found: Survey, host: str) -> List[Dict[str, Any]]:
    rows = [_row(host, s.view.proc, "server", s.project, found) for s in found.orphan_servers()]
    rows += [_row(host, k.proc, k.kind, k.project, found) for k in found.orphan_kernels]
    order = {"server": 0, "kernel": 1, "process": 2}
    return sorted(rows, key=lambda r: (order.get(r["kind"], 3), r["project"] is None, r["project"] or "", r["pid"]))


def kill_orphans(found: Survey, ctx: OpContext, include_unmanaged: bool = False, timeout: float = 10.0,
                 projects: Optional[Set[str]] = None, sweep_of_projects: bool = False,
                 unmanaged: bool = True) -> List[Result]:
    """Stop orphan servers (graceful, then forceful, kernels reaped) and orphan kernels.

    Only orphans of ``projects`` (all when None) are touched; unmanaged servers
    only with ``include_unmanaged``; never another user's processes.  As part of
    stop-all (``sweep_of_projects``) orphans that belong to no project are
    neither reported nor touched unless ``include_unmanaged``.  Without
    ``unmanaged`` whatever belongs to no project is neither reported nor
    touched: another host name of this machine, in the same command, sees to it.
    """
    results: List[Result] = []

    def add(result: Result) -> None:
        results.append(ctx.done(result))  # each shown as it is done: a stop can take its timeout

    roots = list(found.roots().values())
    for entry in found.orphan_servers():
        proc = entry.view.proc
        if projects is not None and entry.project is not None and entry.project not in projects:
            continue
        if entry.project is None and not unmanaged:
            continue
        if entry.project is None and not include_unmanaged:
            if not sweep_of_projects:
                add(ctx.result(None, "orphan", SKIPPED,
                               f"unmanaged server pid {proc.pid} left alone (use --include-unmanaged)"))
            continue
        if not owned_by_me(proc):
            add(ctx.result(entry.project, "orphan", SKIPPED, f"pid {proc.pid} belongs to another user"))
            continue
        if ctx.check:
            add(ctx.result(entry.project, "orphan", CHANGED, f"would stop untracked server pid {proc.pid}"))
            continue
        add(stop_untracked(entry, found, ctx, timeout, "orphan"))
    for kernel in found.orphan_kernels:
        proc = kernel.proc
        what = "orphan kernel" if kernel.kind == "kernel" else "process left by a kernel,"
        if projects is not None and kernel.project is not None and kernel.project not in projects:
            continue
        if kernel.project is None and not unmanaged:
            continue
        if kernel.project is None and not include_unmanaged and (sweep_of_projects or kernel.kind != "kernel"):
            # A process outside every project is known only by its environment: not ours to end unasked.
            if not sweep_of_projects:
                add(ctx.result(None, "orphan", SKIPPED,
                               f"{what} pid {proc.pid} outside every project left alone "
                               "(use --include-unmanaged)"))
            continue
        if not owned_by_me(proc):
            add(ctx.result(kernel.project, "orphan", SKIPPED,
                           f"{what} pid {proc.pid} belongs to another user"))
            continue
        if ctx.check:
            add(ctx.result(kernel.project, "orphan", CHANGED, f"would terminate {what} pid {proc.pid}"))
            continue
        h = handle(proc)
        status, msg = CHANGED, f"{what} pid {proc.pid} already gone"
        if h is not None:
            # With whatever it started: those would outlive it, re-parented and harder to find.
            procs = tree(h)
            reaped = reap(procs)
            if wait_gone(procs, 0.0):
                status, msg = FAILED, f"{what} pid {proc.pid} survived SIGKILL"
            else:
                msg = f"terminated {what} pid {proc.pid}" + (f" and {reaped - 1} process(es) under it"
                                                              if reaped > 1 else "")
        if kernel.connection_file and any(inside(kernel.connection_file, root) for root in roots):
            remove(Path(kernel.connection_file))
        add(ctx.result(kernel.project, "orphan", status, msg,
                       facts={"pid": proc.pid, "kind": kernel.kind}))
    return results
