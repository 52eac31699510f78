"""The installed ``jupyter-lifecycle`` / ``jlc`` command: Fabric's program with our tasks bundled."""

from __future__ import annotations

import os
import sys

from fabric import Config, Executor
from fabric.main import Fab
from invoke.exceptions import Exit, ParseError

from . import __version__
from .errors import EXIT_USAGE
from .tasks import namespace


class LifecycleProgram(Fab):  # type: ignore[misc]
    """Usage errors exit 2 here (invoke's default is 1, which we reserve for failed steps)."""

    def print_version(self) -> None:
        from importlib.metadata import version

        print(f"jupyter-lifecycle {__version__} (invoke {version('invoke')}, fabric {version('fabric')})")

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise Exit(f"error: {exc}", code=EXIT_USAGE) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"error: {exc}", code=EXIT_USAGE) from None


def make_program() -> LifecycleProgram:
    return LifecycleProgram(
        name="jupyter-lifecycle",
        binary="jupyter-lifecycle",
        binary_names=["jupyter-lifecycle", "jlc"],
        version=__version__,
        namespace=namespace,
        executor_class=Executor,
        config_class=Config,
    )


def main() -> None:
    try:
        make_program().run()
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
