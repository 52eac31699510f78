"""status --watch: the status table again every interval, with CPU % from the change between two looks.

Each frame is one ``status`` request per host (the same looks as ``jlc status``, nothing more),
so the view costs what a status does, once per interval.  On a terminal the frame is redrawn in
place; otherwise one table per interval is printed.  Ctrl-C ends it with exit status 130.
"""

from __future__ import annotations

import time
from typing import Any

from invoke.exceptions import Exit

from .. import transport
from ..inventory import Inventory, Project
from ..report import LiveScreen, Reporter, live_frame
from .common import Run

Key = tuple[str, str]


def cpu_percent(doc: dict[str, Any], sampled: dict[str, float], before: dict[Key, tuple[int, float, float]],
                ) -> dict[Key, float | None]:
    """Per project, CPU % of its server and everything under it since the previous frame.

    ``before`` maps (host, project) to (pid, cpu seconds, sampled at) and is updated in place; a new
    pid (a restart) starts over, so no frame ever shows another process's time.
    """
    out: dict[Key, float | None] = {}
    for row in doc["projects"]:
        key = (row["host"], row["name"])
        cpu, at = row.get("cpu_seconds"), sampled.get(row["host"])
        prev = before.get(key)
        out[key] = None
        if cpu is None or at is None or row.get("pid") is None:
            before.pop(key, None)
            continue
        if prev is not None and prev[0] == row["pid"] and at > prev[2]:
            out[key] = max(0.0, (cpu - prev[1]) / (at - prev[2]) * 100.0)
        before[key] = (row["pid"], cpu, at)
    return out


def watch(reporter: Reporter, inv: Inventory, projects: list[Project], interval: float, show_token: bool) -> None:
    from .fleet import status_document

    screen = LiveScreen(reporter.out)
    before: dict[Key, tuple[int, float, float]] = {}
    try:
        with screen:
            while True:
                began = time.monotonic()
                responses = transport.run(inv, "status", projects, {"show_token": show_token}, lambda e: None)
                run = Run(reporter, inv, projects, responses)
                doc = status_document(run)
                sampled = {h: float(r.get("sampled") or time.time()) for h, r in run.answered.items()}
                cpu = cpu_percent(doc, sampled, before)
                screen.draw(live_frame(doc, cpu, interval, screen.width(), show_token))
                time.sleep(max(0.0, interval - (time.monotonic() - began)))
    except KeyboardInterrupt:
        raise Exit(code=130) from None
