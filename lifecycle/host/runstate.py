"""The project's run state beside its pid file: what its user wants, and what the supervisor did.

``.logs/jupyter.state.json`` (0600) records whether the user last asked for the server to run
(``start``, ``restart``) or not (``stop``, or a cull), how often the supervisor restarted it, its
last exit and why, and whether the supervisor gave up.  The pid file stays a bare integer for
the original tools; this file is ours alone.

Writers are the user's runs (outside the project lock: ``stop`` marks the project stopped
*before* it waits for the lock, so a supervisor that holds it cannot restart a server the user
is stopping) and the supervisor (under the project lock).  Every change is a read-modify-write
under an ``flock`` on the state file itself, so neither loses the other's fields.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .fsutil import STATE_FILE_LIMIT, SmallFile, UnreadableFile, open_lock_file, private_dir
from .layout import Layout

RUNNING = "running"
STOPPED = "stopped"


@dataclass
class RunState:
    # "running" / "stopped": the user's last word (None: never said).  "by" is what said it.
    wanted: Optional[str] = None
    wanted_by: Optional[str] = None
    wanted_at: Optional[float] = None
    # Supervisor restarts since the user last started the project.
    restarts: int = 0
    last_restart: Optional[float] = None
    # Restart attempts inside the policy's window (epoch seconds), for the cap.
    recent: List[float] = field(default_factory=list)
    # Consecutive failures (a start that failed, or a run shorter than the stable time): the backoff.
    failures: int = 0
    next_try: Optional[float] = None
    # Why a restart is owed (the server died and policy asks for one), until a start succeeds.
    pending: Optional[str] = None
    # {"at", "pid", "reason", "clean", "code", "signal", "log"}
    last_exit: Optional[Dict[str, Any]] = None
    # {"at", "msg"}: the supervisor stopped trying; a user start clears it.
    gave_up: Optional[Dict[str, Any]] = None
    # {"at", "idle"}: stopped by cull.
    culled: Optional[Dict[str, Any]] = None

    @classmethod
    def from_dict(cls, data: Any) -> "RunState":
        """Known keys with a value of the right type; anything else is dropped (a damaged or foreign file)."""
        if not isinstance(data, dict):
            return cls()
        kept = {k: v for k, v in data.items() if k in _TYPES and _TYPES[k](v)}
        if "recent" in kept:
            kept["recent"] = [float(t) for t in kept["recent"]]
        return cls(**kept)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _optional(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or test(v)


_TYPES: Dict[str, Callable[[Any], bool]] = {
    "wanted": _optional(lambda v: v in (RUNNING, STOPPED)),
    "wanted_by": _optional(lambda v: isinstance(v, str)),
    "wanted_at": _optional(_number),
    "restarts": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "last_restart": _optional(_number),
    "recent": lambda v: isinstance(v, list) and len(v) <= 10000 and all(_number(t) for t in v),
    "failures": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10000,
    "next_try": _optional(_number),
    "pending": _optional(lambda v: isinstance(v, str)),
    "last_exit": _optional(lambda v: isinstance(v, dict)),
    "gave_up": _optional(lambda v: isinstance(v, dict)),
    "culled": _optional(lambda v: isinstance(v, dict)),
}


def path_of(layout: Layout) -> Path:
    return layout.logs_dir / "jupyter.state.json"


def _parse(raw: bytes) -> RunState:
    if not raw.strip():
        return RunState()
    try:
        return RunState.from_dict(SmallFile(Path(), raw, 0.0).json())
    except (UnreadableFile, TypeError):
        return RunState()  # damaged: start afresh rather than fail every round


def read(layout: Layout) -> RunState:
    """The state as last written; a missing, unreadable, oversized or damaged file is the empty state."""
    try:
        # Non-blocking and no symlinks: a FIFO or a link planted here must not stall or redirect us.
        fd = os.open(str(path_of(layout)), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return RunState()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return RunState()
        fcntl.flock(fd, fcntl.LOCK_SH)
        return _parse(_read_all(fd))
    except OSError:
        return RunState()
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    """At most STATE_FILE_LIMIT bytes; a larger file is not ours to trust (empty state)."""
    data = os.pread(fd, STATE_FILE_LIMIT + 1, 0)
    return b"" if len(data) > STATE_FILE_LIMIT else data


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[int]:
    private_dir(layout.logs_dir)
    fd = open_lock_file(path_of(layout))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def update(layout: Layout, change: Callable[[RunState], None], problems: Optional[List[str]] = None) -> RunState:
    """Apply ``change`` to the state under the file's lock and write it back in place.

    A project whose ``.logs`` cannot be written (read-only or full disk) keeps its old state;
    the reason goes to ``problems``.  Returns the state as changed (written or not).
    """
    try:
        with _locked(layout) as fd:
            state = _parse(_read_all(fd))
            change(state)
            data = (json.dumps(state.to_dict(), indent=2) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return state
    except OSError as exc:
        if problems is not None:
            why = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            problems.append(f"could not record the run state in {layout.logs_dir}: {why}")
        state = read(layout)
        change(state)
        return state


def want(layout: Layout, wanted: str, by: str, problems: Optional[List[str]] = None,
         **extra: Any) -> RunState:
    """Record the user's (or cull's) word.  A user's start is a fresh run: counters and give-ups reset."""

    def change(state: RunState) -> None:
        state.wanted, state.wanted_by, state.wanted_at = wanted, by, time.time()
        state.pending = None
        state.next_try = None
        state.gave_up = None
        if wanted == RUNNING:
            state.restarts, state.recent, state.failures, state.last_restart = 0, [], 0, None
            state.culled = None
        for key, value in extra.items():
            setattr(state, key, value)

    return update(layout, change, problems)


def restore(layout: Layout, before: RunState) -> None:
    """Put back what the user's word replaced (a stop that left the server running: busy kernels)."""

    def change(state: RunState) -> None:
        state.wanted, state.wanted_by, state.wanted_at = before.wanted, before.wanted_by, before.wanted_at
        state.pending, state.next_try, state.gave_up = before.pending, before.next_try, before.gave_up

    update(layout, change)


def exists(layout: Layout) -> bool:
    return path_of(layout).exists()


# What a user's operation says about the wanted state (the supervisor's own starts do not pass here).
_STARTS = ("start", "start-all", "restart")
_STOPS = ("stop", "stop-all")


def before_user_op(op: str, layouts: Dict[str, Layout]) -> Dict[str, RunState]:
    """A stop is recorded before it waits for the project's lock, so that a supervisor holding the
    lock (about to restart a crashed server) finds the project stopped once the user's stop is done."""
    if op not in _STOPS:
        return {}
    return {name: _swap(layout) for name, layout in layouts.items() if layout.root.is_dir()}


def _swap(layout: Layout) -> RunState:
    before = read(layout)
    want(layout, STOPPED, "stop")
    return before


def after_user_op(op: str, layouts: Dict[str, Layout], outcomes: Dict[str, List[Tuple[str, str]]],
                  before: Dict[str, RunState]) -> None:
    """Record a successful start (a fresh run: the supervisor's counters reset), and undo the mark of
    a stop that left the server running (busy kernels).  ``outcomes``: per project, (action, status)."""
    for name, layout in layouts.items():
        done = outcomes.get(name, [])
        if op in _STOPS and name in before and ("stop", "skipped") in done:
            restore(layout, before[name])
        elif op in _STARTS and any(a == "start" and s in ("ok", "changed") for a, s in done):
            stopped_after = done and done[-1][0] == "stop" and done[-1][1] in ("ok", "changed")
            # start --foreground ends with the server stopped by the user's Ctrl-C.
            want(layout, STOPPED if stopped_after else RUNNING, "stop" if stopped_after else op)
