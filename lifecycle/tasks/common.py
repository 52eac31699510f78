"""What every task does around its core: load, select, run, render, exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.exceptions import Exit
from invoke.tasks import Task, task

from .. import transport
from ..errors import LifecycleError, UsageError
from ..host.results import Result
from ..inventory import Inventory, Project, load_inventory
from ..report import Reporter, exit_code
from ..selection import select

F = TypeVar("F", bound=Callable[..., Any])

# Help for the flags many tasks share.
SELECT_HELP = {
    "name": "project name, glob ('lab-*'), list ('a,b'), negation ('!old'), or '.' for the cwd's project",
    "only": "narrow to projects matching this name pattern (same syntax as NAME)",
    "tag": "only projects with this tag (repeatable: any of them)",
    "host": "only projects on this inventory host ('local' for this machine)",
    "json": "print one JSON document on stdout and nothing else there",
    "check": "report what would change and change nothing",
}


class LifecycleTask(Task):  # type: ignore[type-arg]
    """An invoke Task with chosen short flags only (auto ones clash with -h, -H and friends)."""

    def __init__(self, body: Callable[..., Any], short: dict[str, str] | None = None, **kwargs: Any) -> None:
        self.short = dict(short or {})
        kwargs.setdefault("auto_shortflags", False)
        super().__init__(body, **kwargs)

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name in self.short:
            opts["names"].append(self.short[name])
        return opts


def lc_task(**kwargs: Any) -> Callable[[Callable[..., Any]], LifecycleTask]:
    """``@task`` for this tool: repeatable --tag, explicit short flags, shared help texts."""
    helps = {k: v for k, v in SELECT_HELP.items()}
    helps.update(kwargs.pop("help", {}))

    def decorate(fn: Callable[..., Any]) -> LifecycleTask:
        import inspect

        params = set(inspect.signature(fn).parameters)
        kwargs.setdefault("iterable", ["tag"])
        return task(klass=LifecycleTask,  # type: ignore[no-any-return]
                    help={k: v for k, v in helps.items() if k in params}, **kwargs)(fn)

    return decorate


def number(value: Any, flag: str, kind: type = int, low: float = 0) -> Any:
    """Flags without a default arrive as strings (invoke infers types from defaults)."""
    if value is None:
        return None
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"--{flag} expects a number, got {value!r}") from None
    if result < low:
        raise UsageError(f"--{flag} must be at least {low:g}, got {value}")
    return result


def boundary(fn: F) -> F:
    """Turn LifecycleError into a one-line message and exit code, with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LifecycleError as exc:
            raise Exit(f"error: {exc.message}", code=exc.code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def refuse_remote_context(c: Any) -> None:
    if getattr(c, "host", None):
        raise UsageError("running tasks on a remote host (-H) is not supported by this version yet")


def load(reporter: Reporter | None = None) -> Inventory:
    inv = load_inventory()
    for warning in inv.warnings:
        if reporter is not None:
            reporter.warn(f"{inv.source}: {warning}")
        else:
            print(f"warning: {inv.source}: {warning}", file=sys.stderr)
    return inv


def choose(inv: Inventory, pattern: str | None, tag: list[str] | None, host: str | None) -> list[Project]:
    return select(inv, pattern, tag or (), host, cwd=Path.cwd())


def run_action(c: Any, task: str, name: str | None, tag: list[str] | None, host: str | None,
               options: dict[str, Any], as_json: bool, show_token: bool = False,
               single: str | None = None, label: str | None = None) -> list[Result]:
    """Select projects, run a changing operation, print lines and recap; exit non-zero on failure.

    ``single`` names a flag that only makes sense for one project; more is a usage error.
    """
    refuse_remote_context(c)
    reporter = Reporter(label or task, as_json=as_json, show_token=show_token)
    inv = load(reporter)
    projects = choose(inv, name, tag, host)
    if single and len(projects) != 1:
        raise UsageError(f"{single} works on one project; {name!r} selects {len(projects)}: "
                         + ", ".join(p.name for p in projects))
    responses = transport.run(inv, task, projects, options, reporter.event)
    results = [Result.from_dict(d) for resp in responses.values() for d in resp["results"]]
    finish(reporter, results)
    return results


def finish(reporter: Reporter, results: list[Result]) -> None:
    """Print the recap (or the actions document) and exit with the right status."""
    reporter.actions(results)
    code = exit_code(results)
    if code:
        raise Exit(code=code)


def query(task: str, pattern: str | None, tag: list[str] | None, host: str | None, options: dict[str, Any],
          as_json: bool, show_token: bool = False) -> tuple[Reporter, list[Project], dict[str, dict[str, Any]]]:
    """Select projects and run a read-only operation on their hosts; responses keyed by host."""
    reporter = Reporter(task, as_json=as_json, show_token=show_token)
    inv = load(reporter)
    projects = choose(inv, pattern, tag, host)
    return reporter, projects, transport.run(inv, task, projects, options, reporter.event)
