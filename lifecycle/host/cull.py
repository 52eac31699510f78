"""Idle cull from outside the server, by Jupyter's own notion of activity.

A server is idle when none of its kernels is busy, nothing happened for the timeout (its
``last_activity``: API requests, kernel messages, terminals) and, unless ``cull_connected``,
no browser holds a kernel connection open.  A kernel is idle when it is not busy, its own
``last_activity`` is older than the kernel timeout and, unless ``cull_connected``, it has no
open connection.  A busy kernel is never culled and keeps its server, whatever the timeout.

Every look passes ``no_track_activity``: our probes never reset the clocks they read.  A server
is culled with the ordinary stop (graceful, kernels reaped) under the project's lock, after a
second look under that lock; a kernel is shut down through the server's API (the server stays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import jupyter_api, runstate
from .clock import Clock, human, iso, now, parse_iso
from .context import OpContext
from .fleet import Survey
from .identify import ServerRef
from .layout import Layout
from .lock import LockTimeout, project_lock
from .results import CHANGED, FAILED, OK, SKIPPED, Result
from .runtime import ServerInfo
from .spec import ProjectSpec
from .stop import lock_wait, look, stop_unlocked


@dataclass
class Activity:
    """What a server says about its own activity, read without moving its clock."""

    last_activity: Optional[float]
    connections: int
    kernels: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def busy(self) -> int:
        return jupyter_api.busy_count(self.kernels)


def probe(info: ServerInfo) -> Optional[Activity]:
    """The server's activity now; None when its API does not answer."""
    status = jupyter_api.activity(info.api_base, info.token)
    kernels = jupyter_api.kernels(info.api_base, info.token)
    if status is None or kernels is None:
        return None
    stamps = [parse_iso(status.get("last_activity"))]
    # Terminal activity is in /api/status on current servers; older ones only report it per terminal.
    stamps += [parse_iso(t.get("last_activity")) for t in jupyter_api.terminals(info.api_base, info.token)]
    known = [s for s in stamps if s is not None]
    connections = status.get("connections")
    return Activity(last_activity=max(known) if known else None,
                    connections=connections if isinstance(connections, int) else 0, kernels=kernels)


def timeouts(spec: ProjectSpec, idle: Optional[float], kernels_only: bool) -> Tuple[Optional[float], Optional[float]]:
    """(server timeout, kernel timeout) for a run: the project's policy, ``--idle`` overriding the
    server's (or, with ``--kernels``, the kernels'; the server is then left alone)."""
    if kernels_only:
        return None, idle if idle is not None else spec.kernel_idle_timeout
    return (idle if idle is not None else spec.idle_timeout), spec.kernel_idle_timeout


def server_verdict(act: Activity, timeout: float, cull_connected: bool, at: float) -> Tuple[bool, str, float]:
    """Whether the server is idle past ``timeout``, why (for the result line), and for how long.  Pure."""
    if act.busy:
        return False, f"{act.busy} kernel{'s' if act.busy != 1 else ''} busy: kept", 0.0
    if act.last_activity is None:
        return False, "its last activity cannot be read: kept", 0.0
    idle = max(0.0, at - act.last_activity)
    if act.connections and not cull_connected:
        return False, (f"idle {human(idle)} but {act.connections} open connection"
                       f"{'s' if act.connections != 1 else ''} (a browser tab): kept (cull_connected = false)"), idle
    if idle < timeout:
        return False, f"active {human(idle)} ago (culled after {human(timeout)} idle)", idle
    return True, f"idle {human(idle)}", idle


def kernel_verdict(kernel: Dict[str, Any], timeout: float, cull_connected: bool, at: float) -> Tuple[bool, float]:
    """Whether one kernel is idle past ``timeout``, and for how long it has been idle.  Pure."""
    last = parse_iso(kernel.get("last_activity"))
    if kernel.get("execution_state") == "busy" or last is None:
        return False, 0.0
    # Not busy: idle, or "starting" for a kernel no client ever talked to (a forgotten one: culled like
    # Jupyter's own culler does), or dead.  A kernel really starting has a fresh last_activity.
    connections = kernel.get("connections")
    if isinstance(connections, int) and connections > 0 and not cull_connected:
        return False, at - last
    return at - last >= timeout, at - last


def due(spec: ProjectSpec, info: ServerInfo, clock: Clock = now) -> bool:
    """Whether the project's policy would cull its server or a kernel now: the supervisor's cheap
    look each round (two API reads, no process scan); ``cull`` then looks again before acting."""
    if spec.idle_timeout is None and spec.kernel_idle_timeout is None:
        return False
    act = probe(info)
    if act is None:
        return False
    at = clock()
    if spec.idle_timeout is not None and server_verdict(act, spec.idle_timeout, spec.cull_connected, at)[0]:
        return True
    timeout = spec.kernel_idle_timeout
    return timeout is not None and any(kernel_verdict(k, timeout, spec.cull_connected, at)[0] for k in act.kernels)


def cull(spec: ProjectSpec, ctx: OpContext, found: Survey, server_timeout: Optional[float],
         kernel_timeout: Optional[float], clock: Clock = now) -> List[Result]:
    """Cull the project's server if idle past ``server_timeout``, else its kernels idle past
    ``kernel_timeout`` (None: that kind is not culled).  Idempotent: nothing idle is ``ok``."""
    tracking = found.tracking.get(spec.name)
    server = tracking.server if tracking is not None else None
    if server_timeout is None and kernel_timeout is None:
        return [ctx.result(spec.name, "cull", SKIPPED,
                           "no idle policy (set idle_timeout or kernel_idle_timeout, or pass --idle)")]
    if server is None:
        return [ctx.result(spec.name, "cull", OK, "not running")]
    info = server.info
    if info is None or not info.token:
        return [ctx.result(spec.name, "cull", SKIPPED,
                           f"pid {server.pid} wrote no runtime file with a token: its activity cannot be read")]
    act = probe(info)
    if act is None:
        return [ctx.result(spec.name, "cull", SKIPPED, f"pid {server.pid} does not answer its API: left alone")]
    results: List[Result] = []
    if server_timeout is not None:
        idle, why, _ = server_verdict(act, server_timeout, spec.cull_connected, clock())
        if idle:
            return [_cull_server(spec, ctx, found, server, server_timeout, clock)]
        results.append(ctx.result(spec.name, "cull", OK, why, facts={"pid": server.pid}))
    if kernel_timeout is not None:
        results += _cull_kernels(spec, ctx, info, act, kernel_timeout, clock)
    return results


def _cull_server(spec: ProjectSpec, ctx: OpContext, found: Survey, seen: ServerRef, timeout: float,
                 clock: Clock) -> Result:
    layout = Layout.of(spec)
    if ctx.check:
        act = probe(seen.info) if seen.info is not None else None
        idle = human(clock() - act.last_activity) if act is not None and act.last_activity is not None else "?"
        return ctx.result(spec.name, "cull", CHANGED, f"would cull pid {seen.pid}, idle {idle}",
                          facts={"pid": seen.pid})
    try:
        with project_lock(layout, lock_wait(spec), lambda msg: ctx.progress(spec.name, msg)):
            return _cull_locked(spec, layout, ctx, found, timeout, clock)
    except LockTimeout as exc:
        return ctx.result(spec.name, "cull", FAILED, str(exc))


def _cull_locked(spec: ProjectSpec, layout: Layout, ctx: OpContext, found: Survey, timeout: float,
                 clock: Clock) -> Result:
    # Look again under the lock: a user may have started work (or stopped the server) meanwhile.
    server = look(layout, found, spec.name).server
    if server is None or server.info is None:
        return ctx.result(spec.name, "cull", OK, "not running")
    act = probe(server.info)
    if act is None:
        return ctx.result(spec.name, "cull", SKIPPED, f"pid {server.pid} does not answer its API: left alone")
    idle, why, idle_for = server_verdict(act, timeout, spec.cull_connected, clock())
    if not idle:
        return ctx.result(spec.name, "cull", OK, why, facts={"pid": server.pid})
    stopped = stop_unlocked(spec, layout, ctx, None, True, found)
    if stopped.status != CHANGED:
        return ctx.result(spec.name, "cull", stopped.status, stopped.msg, facts=stopped.facts)
    problems: List[str] = []
    # Culled is stopped by the tool: a supervisor must not bring it back; ``start`` does.
    runstate.want(layout, runstate.STOPPED, "cull", problems, culled={"at": iso(clock()), "idle": human(idle_for)})
    msg = f"culled, {why} ({stopped.msg})"
    if problems:
        msg += "; warning: " + "; ".join(problems)
    return ctx.result(spec.name, "cull", CHANGED, msg, diff=stopped.diff,
                      facts={**stopped.facts, "idle_seconds": int(idle_for)})


def _cull_kernels(spec: ProjectSpec, ctx: OpContext, info: ServerInfo, act: Activity, timeout: float,
                  clock: Clock) -> List[Result]:
    results: List[Result] = []
    for kernel in act.kernels:
        kid = str(kernel.get("id", ""))
        label = f"kernel {kid[:8]} ({kernel.get('name', '?')})"
        cull_it, idle_for = kernel_verdict(kernel, timeout, spec.cull_connected, clock())
        if not cull_it:
            continue
        if ctx.check:
            results.append(ctx.result(spec.name, "kernel", CHANGED,
                                      f"would shut down {label}, idle {human(idle_for)}", facts={"kernel": kid}))
            continue
        # Look once more just before: the kernel may have started executing since the first look.
        current = jupyter_api.kernel(info.api_base, info.token, kid)
        if current is None:
            continue  # gone meanwhile
        cull_it, idle_for = kernel_verdict(current, timeout, spec.cull_connected, clock())
        if not cull_it:
            continue
        if jupyter_api.shutdown_kernel(info.api_base, info.token, kid):
            results.append(ctx.result(spec.name, "kernel", CHANGED, f"shut down {label}, idle {human(idle_for)}",
                                      diff={"before": {"kernel": kid, "state": "idle"}, "after": {"kernel": None}},
                                      facts={"kernel": kid, "idle_seconds": int(idle_for)}))
        else:
            results.append(ctx.result(spec.name, "kernel", FAILED, f"the server refused to shut down {label}",
                                      facts={"kernel": kid}))
    if not results:
        n = len(act.kernels)
        what = f"{n} kernel{'s' if n != 1 else ''}, none idle past {human(timeout)}" if n else "no kernels"
        results.append(ctx.result(spec.name, "kernel", OK, what))
    return results
