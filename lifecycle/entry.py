"""Where the installed commands and ``python -m lifecycle`` begin: a Ctrl-C at any moment is one line, exit 130.

Nothing is imported at module level: most of a run's first 100 ms is importing
invoke and the tasks, and a Ctrl-C then must not print a traceback either.
(A Ctrl-C while the interpreter itself is starting, in its first few
milliseconds, is Python's to handle, before any code of ours runs.)
"""

from __future__ import annotations

EXIT_INTERRUPTED = 130


def main() -> None:
    import sys

    # A Ctrl-C that lands in a weakref callback or a finalizer (the import system runs some) is
    # "ignored" by Python, which prints a traceback and carries on: make it an interrupt like any other.
    previous = sys.unraisablehook

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            _interrupted(say=True)
        previous(info)

    sys.unraisablehook = unraisable
    try:
        from .cli import main as run

        run()
    except KeyboardInterrupt:
        _interrupted(say=True)
    except SystemExit as exc:
        if _caused_by_interrupt(exc):
            # invoke turns a Ctrl-C outside our tasks into a silent exit 1; our task boundary into
            # "interrupted" and 130 (already printed).
            _interrupted(say=exc.code != EXIT_INTERRUPTED)
        raise


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: BaseException | None = exc.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _interrupted(say: bool) -> None:
    import os
    import signal
    import sys

    # A second Ctrl-C while we say goodbye must not become a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream, text in ((sys.stdout, ""), (sys.stderr, "interrupted\n" if say else "")):
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass
    # os._exit, not sys.exit: CPython 3.11 ends with a SIGINT kill of itself, whatever the exit code,
    # when the interrupt landed inside exec()'d code (dataclass or namedtuple creation, at import),
    # and worker threads still waiting on a server must not hold the exit.
    os._exit(EXIT_INTERRUPTED)
