"""cull: stop idle servers and shut down idle kernels, by Jupyter's own activity (host/cull.py)."""

from __future__ import annotations

from typing import Any

from .common import lc_task, run_action
from .flags import DURATION


@lc_task(kinds={"idle": DURATION}, help={
    "idle": "cull what has been idle this long (90s, 30m, 2h, 1d), instead of idle_timeout "
            "(with --kernels: instead of kernel_idle_timeout)",
    "kernels": "cull idle kernels only; leave every server running",
})
def cull(c: Any, idle: float | None = None, kernels: bool = False, only: str | None = None, tag: Any = None,
         host: str | None = None, check: bool = False, json: bool = False) -> None:
    """Stop servers idle past idle_timeout and shut down kernels idle past kernel_idle_timeout; busy ones stay."""
    run_action(c, "cull", only, tag, host, {"idle": idle, "kernels": kernels, "check": check}, json)
