"""Stopping a project's server: graceful, then forceful, then reap its kernels."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import psutil

from . import jupyter_api
from .context import OpContext, wait_gone
from .fsutil import remove
from .layout import Layout
from .procs import Snapshot, is_kernel, kernel_connection_file, take_snapshot
from .results import CHANGED, FAILED, OK, SKIPPED, Result
from .runtime import ServerInfo, clean_stale, remove_server_files
from .spec import ProjectSpec
from .tracking import find_server, handle, remove_tracking

# Kernels get this long after SIGTERM before SIGKILL: they hold no state we
# could save by waiting longer once their server is gone.
KERNEL_GRACE = 3.0


def shutdown_process(server: psutil.Process, info: Optional[ServerInfo], timeout: float) -> str:
    """Stop one server process; returns how ("api", "SIGTERM", "SIGKILL").

    The caller obtained ``server`` through positive identification; psutil
    re-checks its create time before each signal, so a recycled pid is safe.
    """
    method = "SIGTERM"
    if info is not None and info.token and jupyter_api.shutdown(info.api_base, info.token):
        method = "api"
    else:
        try:
            server.terminate()
        except psutil.NoSuchProcess:
            return method
    if wait_gone([server], timeout):
        try:
            server.kill()
        except psutil.NoSuchProcess:
            pass
        wait_gone([server], 5.0)
        method = "SIGKILL"
    return method


def take_down(server: Optional[psutil.Process], info: Optional[ServerInfo], kernels: List[psutil.Process],
              timeout: float) -> Tuple[str, int]:
    """Stop an identified server (None: it is already gone), then reap what ran under it.

    Returns how the server was stopped and how many leftover processes had to be terminated.
    """
    method = shutdown_process(server, info, timeout) if server is not None else "gone"
    return method, reap(kernels)


def reap(procs: List[psutil.Process]) -> int:
    """Terminate the given (identified) processes that are still alive; count them."""
    alive = wait_gone(procs, 0.0)
    for proc in alive:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    for proc in wait_gone(alive, KERNEL_GRACE):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    wait_gone(alive, 2.0)
    return len(alive)


def kernel_handles(snapshot: Snapshot, server_pid: int) -> Tuple[List[psutil.Process], List[str]]:
    """Handles on the kernel processes under a server, and their connection files."""
    handles: List[psutil.Process] = []
    files: List[str] = []
    for proc in snapshot.descendants(server_pid):
        h = handle(proc)
        if h is None:
            continue
        handles.append(h)
        conn = kernel_connection_file(proc.cmdline) if is_kernel(proc.cmdline) else None
        if conn:
            files.append(conn)
    return handles, files


def stop(spec: ProjectSpec, ctx: OpContext, timeout: Optional[float] = None, skip_busy: bool = False,
         snapshot: Optional[Snapshot] = None) -> Result:
    """Stop the project's server.  Idempotent: a stopped project is ``ok``.

    A pid file whose pid is dead or belongs to another program is stale: it is
    removed and that program is left alone.  With ``skip_busy`` a server whose
    kernels are executing is left running and reported as skipped.
    """
    layout = Layout.of(spec)
    snapshot = snapshot or take_snapshot()
    tracking = find_server(layout, snapshot)
    notes = [f"stale pid file {p.relative_to(layout.root)}: {why}" for p, why in tracking.stale]
    server = tracking.server
    if server is None:
        if ctx.check:
            if notes:
                return ctx.result(spec.name, "stop", CHANGED, "would remove " + "; ".join(notes))
            return ctx.result(spec.name, "stop", OK, "not running")
        removed = remove_tracking(layout) if tracking.stale else []
        clean_stale(layout.runtime_dir, snapshot)
        if removed:
            return ctx.result(spec.name, "stop", CHANGED, "removed " + "; ".join(notes),
                              diff={"before": {"files": removed}, "after": {"files": []}})
        return ctx.result(spec.name, "stop", OK, "not running")
    pid = server.pid
    if skip_busy:
        busy = jupyter_api.busy_count(jupyter_api.server_kernels(server.info))
        if busy:
            return ctx.result(spec.name, "stop", SKIPPED,
                              f"pid {pid} left running: {busy} kernel{'s' if busy != 1 else ''} busy (use --force)",
                              facts={"pid": pid, "busy_kernels": busy})
    if ctx.check:
        return ctx.result(spec.name, "stop", CHANGED, f"would stop pid {pid}",
                          facts={"pid": pid, "port": server.port})
    proc = handle(server.proc)
    kernels, conn_files = kernel_handles(snapshot, pid)
    method, reaped = take_down(proc, server.info, kernels, spec.stop_timeout if timeout is None else timeout)
    still = [k.pid for k in wait_gone(kernels, 0.0)]
    if proc is not None and wait_gone([proc], 0.0):
        return ctx.result(spec.name, "stop", FAILED, f"pid {pid} survived SIGKILL")
    remove_tracking(layout, pid)
    if tracking.stale:
        remove_tracking(layout)
    remove_server_files(layout.runtime_dir, pid)
    for conn in conn_files:
        if layout.contains(conn):
            remove(Path(conn))
    msg = f"stopped pid {pid} ({method})"
    if reaped:
        msg += f"; terminated {reaped} leftover kernel process{'es' if reaped != 1 else ''}"
    if still:
        return ctx.result(spec.name, "stop", FAILED, msg + f"; kernels still alive: {still}")
    if not server.tracked:
        msg += " (it had no pid file)"
    return ctx.result(spec.name, "stop", CHANGED, msg,
                      diff={"before": {"state": "running", "pid": pid}, "after": {"state": "stopped"}},
                      facts={"pid": pid, "method": method, "kernels_reaped": reaped})
