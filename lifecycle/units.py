"""Human units in the inventory and on the command line: durations (``90s``, ``2h30m``) and sizes (``10M``)."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$")
_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MAX_SIZE = 1024**4
# A year: longer is a typo, and far larger values overflow the clocks they are added to.
MAX_DURATION = 366 * 86400
# Words that switch a timeout off (a project overriding a default that culls).
OFF = ("off", "never", "none")


class UnitError(ValueError):
    """The value is not in the expected unit; the message says what is expected."""


def parse_duration(value: object, allow_off: bool = False) -> float | None:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` or combinations (``"1h30m"``).

    With ``allow_off``, ``"off"`` (or ``"never"``, ``"none"``) gives None. Zero and negatives are errors.
    """
    expected = 'a duration such as "90s", "30m", "2h", "1d" or "1h30m"' + (' (or "off")' if allow_off else "")
    if isinstance(value, bool):
        raise UnitError(expected)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if allow_off and text in OFF:
            return None
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            compact = text.replace(" ", "")
            parts = _DURATION_PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise UnitError(expected)
            seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
    else:
        raise UnitError(expected)
    if not seconds > 0:
        raise UnitError(expected + ", greater than zero")
    if seconds > MAX_DURATION:
        raise UnitError(expected + ", at most 366d")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"512K"``, ``"10M"``, ``"10MB"``, ``"1G"`` (powers of 1024, as logrotate)."""
    expected = "a size such as \"512K\", \"10M\" or \"1G\" (or a number of bytes)"
    if isinstance(value, bool):
        raise UnitError(expected)
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        m = _SIZE.match(value.strip().lower())
        if not m:
            raise UnitError(expected)
        scaled = float(m.group(1)) * _BYTES[m.group(2)]
        if not scaled <= MAX_SIZE:  # also inf, from a number of thousands of digits
            raise UnitError(expected + ", at most 1T")
        size = int(scaled)
    else:
        raise UnitError(expected)
    if size <= 0:
        raise UnitError(expected + ", greater than zero")
    if size > MAX_SIZE:
        raise UnitError(expected + ", at most 1T")
    return size

