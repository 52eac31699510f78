"""The one error type the controller raises: its message is ready for the user."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 4


class LifecycleError(Exception):
    """A problem to report in one line, with the exit status it deserves."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InventoryError(LifecycleError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class UsageError(LifecycleError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)
