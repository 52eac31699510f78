"""Restarting a project's server: stop and start under one hold of the project's lock."""

from __future__ import annotations

from typing import Callable, List, Optional

from .context import OpContext
from .fleet import Survey
from .layout import Layout
from .lock import LockTimeout, project_lock
from .ports import port_free
from .results import CHANGED, FAILED, OK, Result
from .spec import ProjectSpec
from .start import start_unlocked
from .stop import lock_wait, stop_unlocked


def restart(spec: ProjectSpec, ctx: OpContext, found: Survey, rescan: Callable[[], Survey],
            port: Optional[int] = None, timeout: Optional[float] = None) -> List[Result]:
    """Stop the project's server (if any), then start it; no other run can start one in between.

    ``rescan`` gives a fresh survey for the start, since the stop changed the world.
    In check mode it reports what the stop and the start would each do.
    """
    layout = Layout.of(spec)
    if ctx.check:
        return _would(spec, layout, ctx, found, port, timeout)
    try:
        with project_lock(layout, lock_wait(spec), lambda msg: ctx.progress(spec.name, msg)):
            # Shown now: the start that follows may take a while.
            stopped = ctx.done(stop_unlocked(spec, layout, ctx, timeout, False, found))
            if stopped.failed:
                return [stopped]
            ctx.begin(spec.name, "start")
            return [stopped, start_unlocked(spec, layout, ctx, port, rescan())]
    except LockTimeout as exc:
        return [ctx.result(spec.name, "restart", FAILED, str(exc))]


def _would(spec: ProjectSpec, layout: Layout, ctx: OpContext, found: Survey, port: Optional[int],
           timeout: Optional[float]) -> List[Result]:
    stopped = stop_unlocked(spec, layout, ctx, timeout, False, found)
    freed = stopped.facts.get("port") if stopped.status == CHANGED else None
    if not layout.venv_python.exists():
        return [stopped, ctx.result(spec.name, "start", FAILED,
                                    f"no venv at {layout.venv}: run bootstrap {spec.name} first")]
    low, high = spec.port_range
    candidates = [port] if port is not None else ([freed] if freed else []) + list(range(low, high + 1))
    chosen = next((p for p in candidates if p == freed or port_free(spec.ip, p)), None)
    if chosen is None:
        return [stopped, ctx.result(spec.name, "start", FAILED,
                                    "no free port" if port is None else f"port {port} is in use")]
    status = CHANGED if stopped.status in (OK, CHANGED) else stopped.status
    return [stopped, ctx.result(spec.name, "start", status, f"would start on port {chosen}")]
