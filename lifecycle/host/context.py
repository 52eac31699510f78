"""What every host operation receives: the host's name, check mode, and an event sink."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

import psutil

from .procs import process_is_gone
from .results import Result

Emit = Callable[[Dict[str, Any]], None]


def _ignore(_event: Dict[str, Any]) -> None:
    return None


@dataclass
class OpContext:
    host: str = "local"
    check: bool = False
    emit: Emit = field(default=_ignore)

    def progress(self, project: str, msg: str) -> None:
        self.emit({"event": "progress", "project": project, "msg": msg})

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
