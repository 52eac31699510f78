"""Time as the host sees it: Jupyter's timestamps, and idle times written for people (``2h14m``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Optional

Clock = Callable[[], float]


def now() -> float:
    return time.time()


def parse_iso(value: object) -> Optional[float]:
    """Epoch seconds from Jupyter's ISO 8601 (``2026-11-26T02:19:00.123456Z``); None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"  # Python 3.9's fromisoformat does not read "Z"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def human(seconds: float) -> str:
    """``45s``, ``31m``, ``31m05s``, ``2h14m``, ``3d02h``."""
    secs = max(0, int(seconds))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m" + (f"{secs % 60:02d}s" if secs % 60 else "")
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"
