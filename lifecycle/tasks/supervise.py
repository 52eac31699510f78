"""supervise: a foreground loop that keeps the selected projects up and lean (host/supervise.py each round).

It stays in the foreground so that any service manager can run it (systemd, launchd, tmux, a
container's init).  SIGTERM and SIGINT end it after the current round; the servers keep running.
One supervisor per inventory: a second one refuses, through a lock in the state dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .. import transport
from ..errors import LifecycleError
from ..host.fsutil import open_lock_file
from ..host.ports import state_dir
from ..host.results import FAILED, UNREACHABLE, Result
from ..inventory import Inventory, Project
from ..report import Reporter, exit_code
from .common import choose, context_host, lc_task, load
from .flags import SECONDS

DEFAULT_INTERVAL = 10.0


def lock_path(inventory: Path) -> Path:
    digest = hashlib.sha256(str(inventory.resolve()).encode()).hexdigest()[:16]
    return state_dir() / "locks" / f"supervise-{digest}.lock"


@contextlib.contextmanager
def sole_supervisor(inventory: Path) -> Iterator[None]:
    """Hold the inventory's supervisor lock, or refuse: two supervisors would race each other."""
    path = lock_path(inventory)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise LifecycleError(f"another supervisor{who} already runs for {inventory}; "
                                 "stop it first (one supervisor per inventory)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


class _Stop:
    """SIGTERM/SIGINT: finish the round, then leave (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()


class _Printer:
    """Result lines as they happen (or one JSON object per line with --json); unreachable hosts once."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.reporter = Reporter("supervise", as_json=as_json)
        self.down: dict[str, str] = {}

    def event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "result":
            return
        if self.as_json:
            self.reporter.json_line(Result.from_dict(event["result"]))
        else:
            self.reporter.event(event)

    def hosts(self, responses: dict[str, dict[str, Any]]) -> list[Result]:
        out = []
        for host, resp in responses.items():
            if "unreachable" in resp:
                why = str(resp["unreachable"])
                if self.down.get(host) != why:
                    self.down[host] = why
                    r = Result(host=host, project=None, action="supervise", status=UNREACHABLE, msg=why)
                    self.event({"event": "result", "result": r.to_dict()})
                    out.append(r)
            elif host in self.down:
                del self.down[host]
                self.say(f"host {host} reachable again")
        return out

    def say(self, text: str) -> None:
        # stderr, with or without --json: stdout carries only the results.
        print(text, file=sys.stderr, flush=True)


def _projects(c: Any, only: str | None, tag: list[str] | None, host: str | None,
              reporter: Reporter) -> tuple[Inventory, list[Project]]:
    inv, forced = context_host(c, load(reporter, c))
    return inv, choose(inv, only, tag, forced or host)


@lc_task(kinds={"interval": SECONDS}, help={
    "interval": f"seconds between rounds (default {DEFAULT_INTERVAL:g})",
    "once": "run one round and exit (for cron, or to see what it would do now)",
    "json": "one JSON object per line for each action, instead of result lines",
})
def supervise(c: Any, interval: float | None = None, once: bool = False, only: str | None = None,
              tag: Any = None, host: str | None = None, json: bool = False) -> None:
    """Restart crashed servers (restart policy), cull idle ones, rotate big logs; until SIGTERM or Ctrl-C."""
    seconds = interval if interval is not None else DEFAULT_INTERVAL
    printer = _Printer(json)
    inv, projects = _projects(c, only, tag, host, printer.reporter)
    with sole_supervisor(inv.source), _Stop() as stop:
        hosts = sorted({p.host for p in projects})
        what = f"supervising {len(projects)} project{'s' if len(projects) != 1 else ''} on {', '.join(hosts)}"
        printer.say(f"{what}: one round" if once else
                    f"{what} every {seconds:g}s (SIGTERM or Ctrl-C ends it; servers keep running)")
        mtime = _mtime(inv.source)
        failed: list[Result] = []
        while True:
            began = time.monotonic()
            responses = transport.run(inv, "supervise", projects, {}, printer.event)
            results = printer.hosts(responses)
            for resp in responses.values():
                results += [Result.from_dict(d) for d in resp.get("results", [])]
            failed = [r for r in results if r.status in (FAILED, UNREACHABLE)]
            if once or stop.event.is_set():
                break
            stop.event.wait(max(0.0, seconds - (time.monotonic() - began)))
            if stop.event.is_set():
                break
            if _mtime(inv.source) != mtime:
                mtime = _mtime(inv.source)
                inv, projects = _reload(c, only, tag, host, printer, inv, projects)
        if not once:
            printer.say("supervisor stopped; servers left running")
    if once and failed:
        code = exit_code(failed)
        if code:
            from invoke.exceptions import Exit

            raise Exit(code=code)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _reload(c: Any, only: str | None, tag: list[str] | None, host: str | None, printer: _Printer,
            inv: Inventory, projects: list[Project]) -> tuple[Inventory, list[Project]]:
    """The inventory changed: use the new one, or keep the old one if the new one is broken."""
    try:
        new_inv, new_projects = _projects(c, only, tag, host, printer.reporter)
    except LifecycleError as exc:
        printer.say(f"warning: {exc.message}; still using the previous inventory")
        return inv, projects
    printer.say(f"inventory reloaded: {len(new_projects)} project(s)")
    return new_inv, new_projects
