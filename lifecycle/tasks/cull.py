"""cull: stop idle servers and shut down idle kernels, by Jupyter's own activity (host/cull.py)."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..units import UnitError, parse_duration
from .common import boundary, lc_task, run_action


def duration_flag(value: Any, flag: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except UnitError as exc:
        raise UsageError(f"--{flag} expects {exc}, got {value!r}") from None


@lc_task(help={
    "idle": "cull what has been idle this long (90s, 30m, 2h, 1d), instead of idle_timeout "
            "(with --kernels: instead of kernel_idle_timeout)",
    "kernels": "cull idle kernels only; leave every server running",
})
@boundary
def cull(c: Any, idle: str | None = None, kernels: bool = False, only: str | None = None, tag: Any = None,
         host: str | None = None, check: bool = False, json: bool = False) -> None:
    """Stop servers idle past idle_timeout and shut down kernels idle past kernel_idle_timeout; busy ones stay."""
    seconds = duration_flag(idle, "idle")
    run_action(c, "cull", only, tag, host, {"idle": seconds, "kernels": kernels, "check": check}, json)
