"""What every host operation receives: the host's name, check mode, and an event sink."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import psutil

from .procs import process_is_gone
from .results import Result

Emit = Callable[[Dict[str, Any]], None]


def _ignore(_event: Dict[str, Any]) -> None:
    return None


@dataclass
class OpContext:
    """``op`` names the request's operation (the step every project begins with).

    Events: ``step`` when a project's step begins, ``progress`` while it runs,
    ``result`` when it ends; the controller prints each result as it comes and,
    on Ctrl-C, names the steps that had begun and not ended.
    """

    host: str = "local"
    check: bool = False
    emit: Emit = field(default=_ignore)
    op: str = ""
    # Results already emitted, by id (held, so an id cannot be reused meanwhile).
    _sent: Dict[int, Result] = field(default_factory=dict, repr=False)

    def progress(self, project: str, msg: str) -> None:
        self.emit({"event": "progress", "host": self.host, "project": project, "msg": msg})

    def begin(self, project: str, action: str) -> None:
        self.emit({"event": "step", "host": self.host, "project": project, "action": action})

    def done(self, result: Result) -> Result:
        """Emit a finished step's result now, so it is shown as it happens; only once per result."""
        if id(result) not in self._sent:
            self._sent[id(result)] = result
            self.emit({"event": "result", "result": result.to_dict()})
        return result

    def result(self, project: Optional[str], action: str, status: str, msg: str = "",
               **extra: Any) -> Result:
        return Result(host=self.host, project=project, action=action, status=status, msg=msg, **extra)


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> List[psutil.Process]:
    """Wait until the processes exit (zombies count as gone); return the survivors.

    A timeout that is not a finite, non-negative number (nan from a bad request)
    would make the deadline unreachable: it counts as no wait at all, so a stop
    escalates to SIGKILL instead of waiting forever on a stopped process.
    """
    pending = list(procs)
    if not (timeout >= 0 and math.isfinite(timeout)):
        timeout = 0.0
    deadline = time.monotonic() + timeout
    delay = 0.02
    while pending:
        pending = [p for p in pending if not process_is_gone(p)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    return pending


@contextlib.contextmanager
def interrupt_held() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it.

    A KeyboardInterrupt inside ``Popen()`` (the child already exec'd, the parent still waiting on
    its status pipe: a wide window on a loaded machine) loses the child: nobody could stop it.
    Signals only reach the main thread, so elsewhere there is nothing to hold.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: List[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        # None: a handler from outside Python; Python's own is the sensible one to put back.
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        if caught:
            raise KeyboardInterrupt
