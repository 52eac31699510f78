"""Why a server is gone: its exit status when this process is its parent, else what its log says.

Only a parent can read a process's exit status.  The supervisor is the parent of the servers it
(re)started, and records their status exactly (``killed by signal 9 (SIGKILL)``).  For a server
started by anyone else the reason comes from the last lines of its log: Jupyter writes
``received signal 15, stopping`` for a signal it handles, ``Shutting down N kernels`` when it shuts
down on its own (File > Shut Down, ``/api/shutdown``, its own idle shutdown), a traceback when it
crashes, and nothing at all when it is killed outright (SIGKILL, the OOM killer).

Clean, as systemd's ``Restart=on-failure`` counts it: exit code 0, or SIGTERM, SIGINT, SIGHUP, SIGPIPE.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

CLEAN_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE}
LOG_LINES = 10
_SIGNAL_LINE = re.compile(r"received signal (\d+), stopping")
_SHUTDOWN_LINE = re.compile(r"Shutting down \d+ (kernel|extension|terminal)")
_TOKEN = re.compile(r"(token=)[0-9A-Za-z_\-]{8,}")


@dataclass
class Exit:
    reason: str
    clean: bool
    code: Optional[int] = None
    signal: Optional[int] = None
    log: List[str] = field(default_factory=list)

    def to_dict(self, at: str, pid: Optional[int]) -> Dict[str, Any]:
        return {"at": at, "pid": pid, "reason": self.reason, "clean": self.clean, "code": self.code,
                "signal": self.signal, "log": self.log}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def from_status(status: int, log: List[str]) -> Exit:
    """From ``os.waitpid``'s status (this process was the server's parent)."""
    tail = _private(log)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return Exit(f"killed by signal {sig} ({signal_name(sig)})", sig in CLEAN_SIGNALS, signal=sig, log=tail)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    if code == 0:
        return Exit("exited with code 0" + _how_from_log(log), True, code=0, log=tail)
    return Exit(f"exited with code {code}" + _crash_line(log), False, code=code, log=tail)


def from_log(log: List[str], stale_why: str = "") -> Exit:
    """From the end of its log, for a server this process did not start."""
    tail = _private(log)
    if "reboot" in stale_why or "another machine" in stale_why:
        return Exit("the machine restarted while it ran", False, log=tail)
    for line in reversed(log[-LOG_LINES * 3:]):
        m = _SIGNAL_LINE.search(line)
        if m:
            sig = int(m.group(1))
            return Exit(f"stopped by {signal_name(sig)} from outside the tool", sig in CLEAN_SIGNALS,
                        signal=sig, log=tail)
    crash = _crash_line(log)
    if crash:
        return Exit("crashed" + crash, False, log=tail)
    if any(_SHUTDOWN_LINE.search(line) for line in log[-LOG_LINES * 3:]):
        return Exit("shut down from inside (File > Shut Down, /api/shutdown, or its own idle shutdown)", True,
                    log=tail)
    return Exit("gone without a word in its log (killed: SIGKILL, the OOM killer, ...)", False, log=tail)


def _how_from_log(log: List[str]) -> str:
    return " (shut down from inside)" if any(_SHUTDOWN_LINE.search(x) for x in log[-LOG_LINES * 3:]) else ""


def _crash_line(log: List[str]) -> str:
    """``: ValueError: ...`` when the log ends in a Python traceback."""
    recent = log[-LOG_LINES * 3:]
    for i, line in enumerate(recent):
        if line.startswith("Traceback (most recent call last)"):
            after = [x for x in recent[i + 1:] if x and not x.startswith((" ", "\t"))]
            return f": {_private(after[-1:])[0][:200]}" if after else ": a Python traceback"
    return ""


def _private(lines: List[str]) -> List[str]:
    """The log's last lines with tokens hidden (the state file is shown by status)."""
    return [_TOKEN.sub(r"\1<hidden>", line) for line in lines[-LOG_LINES:]]
