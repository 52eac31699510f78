"""The installed ``jupyter-lifecycle`` / ``jlc`` command: Fabric's program with our tasks bundled.

Fabric (and paramiko under it) costs about 170 ms to import. A command line
that uses none of Fabric's own flags runs on plain invoke's Program with the
same tasks; remote projects still go over SSH (imported when needed).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from . import __version__
from .errors import EXIT_USAGE
from .tasks import namespace

# Core flags only Fabric's program knows (and help, which lists them).
FABRIC_FLAGS = {"-H", "--hosts", "-i", "--identity", "-S", "--ssh-config", "-t", "--connect-timeout",
                "--prompt-for-login-password", "--prompt-for-passphrase", "--list-agent-keys", "-h", "--help"}


class _Behaviour:
    """What both programs share: our version line, and usage errors exiting 2 (1 means a failed step)."""

    def print_version(self) -> None:
        from importlib.metadata import version

        print(f"jupyter-lifecycle {__version__} (invoke {version('invoke')}, fabric {version('fabric')})")

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)  # type: ignore[misc]
        except ParseError as exc:
            raise Exit(f"error: {exc}", code=EXIT_USAGE) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()  # type: ignore[misc]
        except ParseError as exc:
            raise Exit(f"error: {exc}", code=EXIT_USAGE) from None


class QuickProgram(_Behaviour, Program):
    pass


_NAMES: dict[str, Any] = dict(name="jupyter-lifecycle", binary="jupyter-lifecycle",
                              binary_names=["jupyter-lifecycle", "jlc"], version=__version__, namespace=namespace)


def make_program(argv: list[str] | None = None) -> Program:
    args = sys.argv[1:] if argv is None else argv
    if not any(a.split("=", 1)[0] in FABRIC_FLAGS or (a.startswith("-H") and len(a) > 2) for a in args):
        return QuickProgram(**_NAMES)
    from fabric import Config, Executor
    from fabric.main import Fab

    class LifecycleProgram(_Behaviour, Fab):  # type: ignore[misc]
        pass

    return LifecycleProgram(executor_class=Executor, config_class=Config, **_NAMES)  # type: ignore[no-any-return]


def main() -> None:
    try:
        make_program().run()
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
