"""Stopping a project's server: graceful, then forceful, then reap its kernels and their children."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import psutil

from . import jupyter_api
from .context import OpContext, wait_gone
from .fleet import Survey, survey
from .fsutil import remove
from .identify import ServerRef, Tracking, find_server, handle
from .layout import Layout
from .lock import LockTimeout, project_lock
from .procs import Snapshot, is_kernel_proc, kernel_connection_file
from .results import CHANGED, FAILED, OK, SKIPPED, Result
from .runtime import ServerInfo, clean_stale, remove_server_files
from .spec import ProjectSpec
from .tracking import remove_stale, remove_tracking

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


def tree(proc: psutil.Process) -> List[psutil.Process]:
    """A process and everything under it, as handles taken now.

    Taken before anything is signalled: once a kernel dies, what it started
    (a notebook's ``!sleep 600``, a worker pool) is re-parented and can no
    longer be found under it.
    """
    try:
        return [proc] + proc.children(recursive=True)
    except psutil.Error:
        return [proc]


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


def kernel_handles(snapshot: Snapshot, server_pid: int,
                   server: Optional[psutil.Process] = None) -> Tuple[List[psutil.Process], List[str]]:
    """Handles on everything under a server (its kernels and their children), and the kernels'
    connection files.  With a live ``server`` handle its children are read now, so kernels
    started since the snapshot are included."""
    handles: Dict[int, psutil.Process] = {}
    files: List[str] = []
    for proc in snapshot.descendants(server_pid):
        h = handle(proc)
        if h is not None:
            handles[h.pid] = h
        conn = kernel_connection_file(proc.cmdline) if is_kernel_proc(proc) else None
        if conn:
            files.append(conn)
    if server is not None:
        for h in tree(server)[1:]:
            handles.setdefault(h.pid, h)
    return list(handles.values()), files


def orphan_kernels(found: Survey, project: str) -> Tuple[List[psutil.Process], List[str]]:
    """Kernels of ``project`` whose server is gone (a crashed or SIGKILLed server), with
    everything they started, and their connection files."""
    handles: Dict[int, psutil.Process] = {}
    files: List[str] = []
    for kernel in found.orphan_kernels:
        if kernel.project != project:
            continue
        h = handle(kernel.proc)
        if h is None:
            continue
        for p in tree(h):
            handles.setdefault(p.pid, p)
        if kernel.connection_file:
            files.append(kernel.connection_file)
    return list(handles.values()), files


def lock_wait(spec: ProjectSpec) -> float:
    """How long to wait for another run on the project: long enough for it to start or stop a server."""
    return spec.start_timeout + 2 * spec.stop_timeout + 30.0


def stop(spec: ProjectSpec, ctx: OpContext, timeout: Optional[float] = None, skip_busy: bool = False,
         found: Optional[Survey] = None) -> Result:
    """Stop the project's server.  Idempotent: a stopped project is ``ok``.

    Holds the project's lock from the look to the end.  A pid file whose pid is
    dead or belongs to another program is stale: it is removed and that program
    is left alone.  Kernels of the project whose server is already gone are
    reaped.  With ``skip_busy`` a server whose kernels are executing is left
    running and reported as skipped.
    """
    layout = Layout.of(spec)
    found = found or survey([spec])
    if ctx.check:
        return stop_unlocked(spec, layout, ctx, timeout, skip_busy, found)
    try:
        with project_lock(layout, lock_wait(spec), lambda msg: ctx.progress(spec.name, msg)):
            return stop_unlocked(spec, layout, ctx, timeout, skip_busy, found)
    except LockTimeout as exc:
        return ctx.result(spec.name, "stop", FAILED, str(exc))


def look(layout: Layout, found: Survey, name: str) -> Tracking:
    """The project's server as it is now (pid files re-read), with untracked ones attributed by the survey."""
    return find_server(layout, found.snapshot, found.untracked_for(name))


def stop_unlocked(spec: ProjectSpec, layout: Layout, ctx: OpContext, timeout: Optional[float],
                  skip_busy: bool, found: Survey) -> Result:
    """``stop`` for a caller that holds the project's lock (or is in check mode)."""
    tracking = look(layout, found, spec.name)
    notes = [f"stale pid file {p.relative_to(layout.root)}: {why}" for p, why in tracking.stale]
    leftovers, leftover_files = orphan_kernels(found, spec.name)
    server = tracking.server
    if server is None:
        return _clean_up_after(spec, layout, ctx, found, tracking, notes, leftovers, leftover_files)
    pid = server.pid
    if skip_busy:
        kernels = jupyter_api.server_kernels(server.info)
        if kernels is None and server.info is not None and server.info.token:
            # Not answering is not "nothing busy": a loaded machine may just be slow to reply.
            return ctx.result(spec.name, "stop", SKIPPED,
                              f"pid {pid} left running: it did not say whether its kernels are busy (use --force)",
                              facts={"pid": pid, "busy_kernels": None})
        busy = jupyter_api.busy_count(kernels)
        if busy:
            return ctx.result(spec.name, "stop", SKIPPED,
                              f"pid {pid} left running: {busy} kernel{'s' if busy != 1 else ''} busy (use --force)",
                              facts={"pid": pid, "busy_kernels": busy})
    if ctx.check:
        extra = f"; would reap {len(leftovers)} orphan kernel process(es)" if leftovers else ""
        return ctx.result(spec.name, "stop", CHANGED, f"would stop pid {pid}" + extra,
                          facts={"pid": pid, "port": server.port})
    return _take_down_server(spec, layout, ctx, found, server, tracking, timeout, leftovers, leftover_files)


def _clean_up_after(spec: ProjectSpec, layout: Layout, ctx: OpContext, found: Survey, tracking: Tracking,
                    notes: List[str], leftovers: List[psutil.Process], leftover_files: List[str]) -> Result:
    """No server runs: remove stale files, reap kernels the last server left behind."""
    if ctx.check:
        if leftovers:
            notes.append(f"reap {len(leftovers)} orphan kernel process(es) of a server that is gone")
        if notes:
            return ctx.result(spec.name, "stop", CHANGED, "would remove " + "; ".join(notes))
        return ctx.result(spec.name, "stop", OK, "not running")
    problems: List[str] = []
    removed = remove_stale(layout, {p: tracking.raw[p] for p, _ in tracking.stale}, problems)
    clean_stale(layout.runtime_dir, found.snapshot, problems)
    reaped = reap(leftovers)
    _remove_connection_files(layout, leftover_files, problems)
    done = []
    if removed:
        done.append("removed " + "; ".join(notes))
    if reaped:
        done.append(f"reaped {reaped} orphan kernel process{'es' if reaped != 1 else ''} of a server that is gone")
    still = [k.pid for k in wait_gone(leftovers, 0.0)]
    if still:
        return ctx.result(spec.name, "stop", FAILED, "; ".join(done + [f"kernels still alive: {still}"]))
    if problems:
        done.append("warning: " + "; ".join(problems))
    if removed or reaped:
        return ctx.result(spec.name, "stop", CHANGED, "; ".join(done),
                          diff={"before": {"files": removed, "orphan_kernels": reaped},
                                "after": {"files": [], "orphan_kernels": 0}})
    return ctx.result(spec.name, "stop", OK, "; ".join(["not running"] + done))


def _take_down_server(spec: ProjectSpec, layout: Layout, ctx: OpContext, found: Survey, server: ServerRef,
                      tracking: Tracking, timeout: Optional[float], leftovers: List[psutil.Process],
                      leftover_files: List[str]) -> Result:
    pid = server.pid
    proc = handle(server.proc)
    kernels, conn_files = kernel_handles(found.snapshot, pid, proc)
    kernels += [k for k in leftovers if k.pid not in {h.pid for h in kernels}]
    method, reaped = take_down(proc, server.info, kernels, spec.stop_timeout if timeout is None else timeout)
    still = [k.pid for k in wait_gone(kernels, 0.0)]
    if proc is not None and wait_gone([proc], 0.0):
        return ctx.result(spec.name, "stop", FAILED, f"pid {pid} survived SIGKILL")
    problems: List[str] = []
    remove_tracking(layout, pid, problems)
    if tracking.stale:
        remove_stale(layout, {p: tracking.raw[p] for p, _ in tracking.stale}, problems)
    remove_server_files(layout.runtime_dir, pid, problems)
    if server.info is not None:
        remove_server_files(server.info.file.parent, pid, problems)
    _remove_connection_files(layout, conn_files + leftover_files, problems)
    msg = f"stopped pid {pid} ({method})"
    if reaped:
        msg += f"; terminated {reaped} leftover kernel process{'es' if reaped != 1 else ''}"
    if still:
        return ctx.result(spec.name, "stop", FAILED, msg + f"; kernels still alive: {still}")
    if not server.tracked:
        msg += f" (it had no pid file; found by its {server.found_by})"
    if problems:
        msg += "; warning: " + "; ".join(problems)
    return ctx.result(spec.name, "stop", CHANGED, msg,
                      diff={"before": {"state": "running", "pid": pid}, "after": {"state": "stopped"}},
                      facts={"pid": pid, "method": method, "kernels_reaped": reaped})


def _remove_connection_files(layout: Layout, files: List[str], problems: List[str]) -> None:
    for conn in files:
        if layout.contains(conn):
            remove(Path(conn), problems)
