"""What each task flag's value may be: its kind for the help text and the check that admits it.

Invoke infers a flag's type from its default, casts with a bare ``int()`` (a
traceback on ``abc``) and accepts anything for flags without a default. Every
value flag of this tool names a ``Kind`` instead; the program checks all of
them before any task runs, and each task converts them again on entry, so
``inv`` and direct calls get the same one-line errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

# Inventory port ranges are bounded the same way (lifecycle/inventory.py).
PORT_LOW, PORT_HIGH = 1024, 65535
# A longer wait than a day is a typo, and huge values overflow the timers they reach.
MAX_SECONDS = 86400.0


class BadValue(ValueError):
    """A value outside its kind: the message says what was expected."""


@dataclass(frozen=True)
class Kind:
    """A flag value's name in the help (``--port=INT``) and how to admit it."""

    metavar: str
    parse: Callable[[Any], Any] | None = None

    def convert(self, flag: str, value: Any) -> Any:
        """The value, checked and converted; ``UsageError`` naming ``flag`` when it does not fit."""
        if value is None or self.parse is None:
            return value
        if isinstance(value, list):  # a repeatable flag: each value on its own
            return [self.convert(flag, v) for v in value]
        try:
            return self.parse(value)
        except BadValue as exc:
            raise UsageError(f"{flag}: {exc}, got {_shown(value)}") from None


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    want = f"a whole number from {low} to {high}" if high is not None else f"a whole number, at least {low}"

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise BadValue(f"expected {want}")
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            # int() would take '1_000' and ' 5', and raise on 5,000 digits: digits only, and few.
            if not (text.lstrip("+-").isdigit() and text.isascii() and len(text) <= 12):
                raise BadValue(f"expected {want}")
            number = int(text)
        if number < low or (high is not None and number > high):
            raise BadValue(f"expected {want}")
        return number

    return parse


def seconds(value: Any) -> float:
    want = f"expected a positive number of seconds (at most {MAX_SECONDS:g})"
    if isinstance(value, bool):
        raise BadValue(want)
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (ValueError, OverflowError):
        raise BadValue(want) from None
    if not math.isfinite(number) or number <= 0 or number > MAX_SECONDS:
        raise BadValue(want)
    return number


def seconds_or_off(value: Any) -> float:
    """Like ``seconds``, and 0 too: for settings where 0 means "never" (open's --keepalive, --reconnect)."""
    if not isinstance(value, bool) and str(value).strip() in ("0", "0.0"):
        return 0.0
    try:
        return seconds(value)
    except BadValue:
        raise BadValue(f"expected 0 (off) or a positive number of seconds (at most {MAX_SECONDS:g})") from None


def text(what: str) -> Callable[[Any], str]:
    """A string flag that must say something: an empty one usually is an unset shell variable."""

    def parse(value: Any) -> str:
        if not str(value).strip():
            raise BadValue(f"expected {what}, not an empty string (an unset variable?)")
        return str(value)

    return parse


def target(value: Any) -> str:
    """which's TARGET: a port, a pid or a path; ``port:N`` and ``pid:N`` force the reading."""
    given = str(value)
    if not given.strip():
        raise BadValue("expected a port, a pid or a path, not an empty string (an unset variable?)")
    prefix, sep, rest = given.partition(":")
    if sep and prefix in ("port", "pid"):
        high = 65535 if prefix == "port" else PID_MAX
        try:
            integer(1, high)(rest)
        except BadValue:
            raise BadValue(f"expected a {prefix} number from 1 to {high} after '{prefix}:'") from None
    return given


def server_target(value: Any) -> str:
    """stop-server's TARGET: a port or a pid, as a number or spelled ``port:N`` / ``pid:N``."""
    given = str(value).strip()
    prefix, sep, rest = given.partition(":")
    if not sep:
        prefix, rest = "pid", given  # a bare number: a port or a pid, the host decides
    high = 65535 if prefix == "port" else PID_MAX
    try:
        if prefix not in ("port", "pid"):
            raise BadValue("")
        integer(1, high)(rest)
    except BadValue:
        raise BadValue("expected a server's port or pid: N, port:N (1-65535) or pid:N") from None
    return given


def duration(value: Any) -> float:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` or plain seconds (lifecycle/units.py, as the inventory)."""
    from ..units import UnitError, parse_duration

    try:
        seconds = parse_duration(str(value).strip() if not isinstance(value, (int, float)) else value)
    except UnitError as exc:
        raise BadValue(f"expected {exc}") from None
    if seconds is None or not math.isfinite(seconds):
        raise BadValue("expected a duration")
    return seconds


def every(value: Any) -> float:
    """``--watch`` alone (invoke gives True) is every 2 seconds; with a value, that many (at least 0.2)."""
    if value is True:
        return 2.0
    number = seconds(value)
    if number < 0.2:
        raise BadValue("expected a refresh interval of at least 0.2 seconds")
    return number


def choice(*words: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in words:
            raise BadValue("expected " + ", ".join(words[:-1]) + " or " + words[-1])
        return str(value)

    return parse


# Linux's PID_MAX_LIMIT; other systems stay below it.
PID_MAX = 4194304
PORT = Kind("INT", integer(PORT_LOW, PORT_HIGH))
SECONDS = Kind("SECONDS", seconds)
DURATION = Kind("DURATION", duration)
WATCH = Kind("SECONDS", every)
SERVICE_ACTION = Kind("ACTION", choice("install", "uninstall", "status"))
SECONDS_OR_OFF = Kind("SECONDS", seconds_or_off)
COUNT = Kind("INT", integer(1))
LINES = Kind("INT", integer(0))
# Selection values are checked by lifecycle/selection.py, which can say what exists instead.
PATTERN = Kind("PATTERN")
NAME = Kind("NAME")
TAG = Kind("TAG")
HOST = Kind("HOST")
DIR = Kind("DIR", text("a directory"))
FILE = Kind("FILE", text("a file path"))
TARGET = Kind("TARGET", target)
SERVER = Kind("TARGET", server_target)

# Flags every task that has them shares.
COMMON: dict[str, Kind] = {"name": NAME, "only": PATTERN, "tag": TAG, "host": HOST}
