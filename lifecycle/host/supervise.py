"""One round of supervision on this host: restart what died, cull what idles, rotate what grew.

``jlc supervise`` calls this every interval (in-process for this machine, one request per remote
host).  Each round is cheap when nothing needs doing: per project it reads the pid file and its
metadata and checks that very process still exists with the recorded create time (no process
scan); a project with a cull policy costs two API reads; a log one ``stat``.  Only a project that
needs something gets the full process survey, the project's lock and positive identification
(``identify.find_server``) before anything is started, stopped or frozen.

Restarts follow the project's ``restart`` policy and never fight the user: a project the user
stopped (or that was culled) is left alone; the lock is only tried, so a user's run in progress
makes the supervisor look again next round; a started server is found running under the lock.
Deaths are recorded in the project's run state (``runstate``) with their reason (``exits``); a
server that dies within ``STABLE_AFTER`` of its restart counts as a failure, and failures back off
exponentially; more than ``restart_max`` attempts inside ``restart_window`` and it gives up.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

import psutil

from . import cull, exits, logrotate, runstate
from .clock import Clock, human, iso, now
from .context import OpContext
from .fleet import Survey, survey
from .fsutil import tail_lines
from .identify import CREATE_TIME_SLACK, handle
from .layout import Layout
from .lock import LockTimeout, project_lock
from .results import CHANGED, FAILED, OK, Result
from .runtime import read_info
from .spec import ProjectSpec
from .start import start_unlocked
from .stop import look
from .tracking import read_meta, read_pid_file, remove_stale

# A server that dies sooner than this after a restart counts as a failed restart (backoff grows).
STABLE_AFTER = 60.0
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0
_LOG_TAIL = 30

# Servers this process started: only their parent can read their exit status.
_children: Dict[int, str] = {}


def backoff(failures: int) -> float:
    """Seconds to wait before the next attempt after ``failures`` consecutive failures."""
    return 0.0 if failures <= 0 else min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)


def collect_exits() -> Dict[int, int]:
    """Reap the servers this process started that have exited: pid -> wait status."""
    out: Dict[int, int] = {}
    for pid in list(_children):
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Reaped by someone else (subprocess's own clean-up): the log has to tell.
            _children.pop(pid, None)
            continue
        if got:
            out[pid] = status
            _children.pop(pid, None)
    return out


class _Surveys:
    """At most one process scan per round, and only when some project needs one."""

    def __init__(self, known: List[ProjectSpec]) -> None:
        self.known = known
        self._found: Optional[Survey] = None

    def get(self) -> Survey:
        if self._found is None:
            self._found = survey(self.known)
        return self._found


def supervise(specs: List[ProjectSpec], known: List[ProjectSpec], ctx: OpContext,
              clock: Clock = now) -> List[Result]:
    """One round for ``specs``.  Returns (and emits) a result per action taken; none when all is well."""
    statuses = collect_exits()
    surveys = _Surveys(known)
    results: List[Result] = []
    for spec in specs:
        try:
            done = _one(spec, ctx, statuses, surveys, clock)
        except Exception as exc:  # one project's trouble must not stop the supervision of the others
            done = [ctx.result(spec.name, "supervise", FAILED, f"{type(exc).__name__}: {exc}")]
        for r in done:
            ctx.emit({"event": "result", "result": r.to_dict()})
        results += done
    return results


def _one(spec: ProjectSpec, ctx: OpContext, statuses: Dict[int, int], surveys: _Surveys,
         clock: Clock) -> List[Result]:
    layout = Layout.of(spec)
    if not layout.root.is_dir():
        return []
    logrotate.recover(layout.log_file)
    pid = quick_alive(layout)
    if pid is not None:
        out = _cull_if_due(spec, layout, ctx, pid, surveys, clock)
        if not any(r.action == "cull" and r.changed for r in out):
            out += _rotate_if_due(spec, layout, ctx, surveys)
        return out
    if spec.restart == "no":
        return []
    state = runstate.read(layout)
    if not _needs_look(layout, spec, state, clock):
        return []
    try:
        with project_lock(layout, 0.0):
            return _restart_locked(spec, layout, ctx, statuses, surveys.get(), clock)
    except LockTimeout:
        return []  # a user's run is working on the project: look again next round


def quick_alive(layout: Layout) -> Optional[int]:
    """The pid of the project's server if our own record of it still names a live process; else None.

    Only ever a reason to do nothing: any action first identifies the server under the lock.
    """
    pf = read_pid_file(layout.pid_file)
    if pf is None or pf.pid is None:
        return None
    meta = read_meta(layout)
    if not meta or meta.get("pid") != pf.pid:
        return None
    try:
        proc = psutil.Process(pf.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(proc.create_time() - float(meta["create_time"])) >= CREATE_TIME_SLACK:
            return None
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None
    return pf.pid


def _needs_look(layout: Layout, spec: ProjectSpec, state: runstate.RunState, clock: Clock) -> bool:
    if state.wanted == runstate.STOPPED or state.gave_up:
        return False
    if state.pending:
        return state.next_try is None or clock() >= state.next_try
    if any(p.exists() for p in layout.pid_files):
        return True  # a pid file whose process is not (quickly) alive: died, or needs a closer look
    return spec.restart == "always"


def _restart_locked(spec: ProjectSpec, layout: Layout, ctx: OpContext, statuses: Dict[int, int],
                    found: Survey, clock: Clock) -> List[Result]:
    tracking = look(layout, found, spec.name)
    if tracking.server is not None:
        return []  # running after all: a user's start, or a server the pid file tracks in its own way
    state = runstate.read(layout)
    if state.wanted == runstate.STOPPED or state.gave_up:
        return []
    at = clock()
    if tracking.stale:
        pid = next((pf.pid for pf in (read_pid_file(p) for p, _ in tracking.stale) if pf and pf.pid), None)
        log = tail_lines(layout.log_file, _LOG_TAIL)
        why = tracking.stale[0][1]
        ex = exits.from_status(statuses[pid], log) if pid in statuses else exits.from_log(log, why)
        restart_it = spec.restart == "always" or not ex.clean
        short = state.last_restart is not None and at - state.last_restart < STABLE_AFTER
        problems: List[str] = []
        # The death is recorded once: its pid file goes now (its kernels are left, as start leaves them).
        remove_stale(layout, {p: tracking.raw[p] for p, _ in tracking.stale}, problems)

        def died(st: runstate.RunState) -> None:
            st.last_exit = ex.to_dict(iso(at), pid)
            if restart_it:
                st.failures = st.failures + 1 if short else 0
                st.pending = f"pid {pid} {ex.reason}"
                st.next_try = at + backoff(st.failures) if st.failures else None

        state = runstate.update(layout, died, problems)
        what = f"pid {pid} {ex.reason}"
        if not restart_it:
            return [ctx.result(spec.name, "supervise", OK, f"{what}; restart = {spec.restart} leaves it stopped")]
        if state.next_try is not None and at < state.next_try:
            return [ctx.result(spec.name, "supervise", FAILED,
                               f"{what}; next restart in {human(state.next_try - at)} "
                               f"(backoff: {state.failures} quick failure{'s' if state.failures != 1 else ''})")]
        reason = what
    elif state.pending:
        reason = state.pending
    elif spec.restart == "always":
        reason = "not running (restart = always)"
    else:
        return []
    return [_attempt(spec, layout, ctx, found, state, reason, at)]


def _attempt(spec: ProjectSpec, layout: Layout, ctx: OpContext, found: Survey, state: runstate.RunState,
             reason: str, at: float) -> Result:
    window = [t for t in state.recent if at - t < spec.restart_window]
    if len(window) >= spec.restart_max:
        msg = (f"gave up after {len(window)} restarts in {human(spec.restart_window)}; last: {reason}")

        def give_up(st: runstate.RunState) -> None:
            st.gave_up = {"at": iso(at), "msg": msg}
            st.pending, st.next_try, st.recent = None, None, window

        runstate.update(layout, give_up)
        return ctx.result(spec.name, "supervise", FAILED, f"{msg} (jlc start {spec.name} resumes)")
    started = start_unlocked(spec, layout, ctx, None, found)
    ok = started.status in (CHANGED, OK)
    first = (started.msg or "").splitlines()[0] if started.msg else ""
    log = tail_lines(layout.log_file, _LOG_TAIL) if not ok else []

    def attempted(st: runstate.RunState) -> None:
        st.restarts += 1
        st.last_restart = at
        st.recent = window + [at]
        if ok:
            st.pending, st.next_try = None, None
        else:
            st.failures += 1
            st.next_try = at + backoff(st.failures)
            st.pending = f"restart failed: {first}"
            failure = exits.Exit(f"start failed: {first}", False, log=log[-exits.LOG_LINES:])
            st.last_exit = failure.to_dict(iso(at), None)

    state = runstate.update(layout, attempted)
    if ok:
        pid = started.facts.get("pid")
        if isinstance(pid, int):
            _children[pid] = spec.name
        return ctx.result(spec.name, "restart", CHANGED, f"{reason}: {started.msg} (restart {state.restarts})",
                          diff=started.diff, facts={**started.facts, "restarts": state.restarts},
                          secret=started.secret)
    wait = human((state.next_try or at) - at)
    return ctx.result(spec.name, "restart", FAILED,
                      f"restart {state.restarts} failed: {first}; next try in {wait} (jlc logs {spec.name})",
                      facts={"restarts": state.restarts})


def _cull_if_due(spec: ProjectSpec, layout: Layout, ctx: OpContext, pid: int, surveys: _Surveys,
                 clock: Clock) -> List[Result]:
    if spec.idle_timeout is None and spec.kernel_idle_timeout is None:
        return []
    info = read_info(layout.runtime_dir / f"jpserver-{pid}.json")
    if info is None or not info.token or not cull.due(spec, info, clock):
        return []
    done = cull.cull(spec, ctx, surveys.get(), spec.idle_timeout, spec.kernel_idle_timeout, clock)
    return [r for r in done if r.status in (CHANGED, FAILED)]


def _rotate_if_due(spec: ProjectSpec, layout: Layout, ctx: OpContext, surveys: _Surveys) -> List[Result]:
    try:
        size = layout.log_file.stat().st_size
    except OSError:
        return []
    if size <= spec.log_max_size:
        return []
    try:
        with project_lock(layout, 0.0):
            server = look(layout, surveys.get(), spec.name).server
            writers: Dict[int, psutil.Process] = {}
            h = handle(server.proc) if server is not None else None
            if h is not None:
                writers[h.pid] = h
            for p in logrotate.holders(layout.log_file):
                writers.setdefault(p.pid, p)
            if ctx.check:
                return [ctx.result(spec.name, "rotate", CHANGED, f"would rotate {layout.log_file.name} ({size} bytes)")]
            rotated, msg = logrotate.rotate_live(layout.log_file, spec.log_keep, list(writers.values()),
                                                 spec.log_max_size)
    except LockTimeout:
        return []
    if not rotated:
        return [ctx.result(spec.name, "rotate", FAILED, msg)] if "left for later" in msg else []
    return [ctx.result(spec.name, "rotate", CHANGED, f"{layout.log_file.name} over {_size(spec.log_max_size)}: {msg}")]


def _size(n: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n} bytes"
