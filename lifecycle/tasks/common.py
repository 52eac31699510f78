"""What every task does around its core: load, select, run, render, exit."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from invoke.exceptions import Exit
from invoke.tasks import Task, task

from .. import transport
from ..errors import EXIT_UNREACHABLE, InventoryError, LifecycleError, UsageError
from ..host.results import UNREACHABLE, Result
from ..inventory import LOCAL, USER_INVENTORY, Host, Inventory, Project, find_inventory, load_inventory, parse_inventory
from ..report import Reporter, exit_code
from ..selection import select
from . import flags
from .flags import Kind

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
    """An invoke Task with chosen short flags only (auto ones clash with -h, -H and friends)
    and a ``Kind`` for every value flag (see flags.py)."""

    def __init__(self, body: Callable[..., Any], short: dict[str, str] | None = None,
                 kinds: dict[str, Kind] | None = None, **kwargs: Any) -> None:
        self.short = dict(short or {})
        self.kinds = dict(kinds or {})
        kwargs.setdefault("auto_shortflags", False)
        super().__init__(body, **kwargs)
        self._help = dict(self.help)

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        # invoke pops each help text as it uses it, so a second call (help, completion) would lose them all.
        self.help = dict(self._help)
        return list(super().get_arguments(ignore_unknown_help))

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name in self.short:
            opts["names"].append(self.short[name])
        if name in self.kinds and opts.get("kind") is not list:
            # Our Kind checks the value; invoke's own cast (int() from the default) would traceback.
            opts["kind"] = str
        return opts

    def flag_label(self, name: str) -> str:
        """How the user spells a parameter: ``NAME`` for a positional, ``-n/--lines`` for a flag."""
        if name in self.positional:
            return self.kinds[name].metavar if name in self.kinds else name.upper()
        long = "--" + name.replace("_", "-")
        return f"-{self.short[name]}/{long}" if name in self.short else long

    def convert(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with every kinded one checked and converted (UsageError on the first bad one)."""
        out = dict(values)
        for name, kind in self.kinds.items():
            if name in out:
                out[name] = kind.convert(self.flag_label(name), out[name])
        return out


def lc_task(**kwargs: Any) -> Callable[[Callable[..., Any]], LifecycleTask]:
    """``@task`` for this tool: repeatable --tag, explicit short flags, shared help texts and kinds,
    values checked on entry, and the error boundary (one line and an exit code, no traceback)."""
    helps = {k: v for k, v in SELECT_HELP.items()}
    helps.update(kwargs.pop("help", {}))
    kinds = {**flags.COMMON, **kwargs.pop("kinds", {})}

    def decorate(fn: Callable[..., Any]) -> LifecycleTask:
        signature = inspect.signature(fn)
        params = set(signature.parameters)
        made: list[LifecycleTask] = []

        @functools.wraps(fn)
        def checked(*args: Any, **values: Any) -> Any:
            bound = signature.bind(*args, **values)
            if any(bound.arguments.get(p) in ("-h", "--help") for p in made[0].positional):
                # `inv start --help`: invoke's parser hands --help to the NAME positional; answer it.
                from ..cli_help import describe_task, task_help

                doc, description = describe_task(made[0].name, made[0])
                print(task_help(os.path.basename(sys.argv[0]) or "inv", doc, description))
                return None
            bound.arguments.update(made[0].convert(dict(bound.arguments)))
            return fn(*bound.args, **bound.kwargs)

        kwargs.setdefault("iterable", ["tag"])
        made.append(task(klass=LifecycleTask,
                         help={k: v for k, v in helps.items() if k in params},
                         kinds={k: v for k, v in kinds.items() if k in params}, **kwargs)(boundary(checked)))
        return made[0]

    return decorate


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


def given_host(c: Any) -> str | None:
    """The host named with ``-H`` (Fabric's context), if any."""
    return getattr(c, "original_host", None) or getattr(c, "host", None)


def load(reporter: Reporter, c: Any = None) -> Inventory:
    """The inventory.  Under ``-H HOST`` having none at all is fine: the host's own file lists its
    projects, so an empty inventory (at the place one would be looked for) stands in."""
    adhoc = c is not None and bool(given_host(c))
    try:
        path = find_inventory()
    except InventoryError:
        if not adhoc:
            raise
        path = Path(USER_INVENTORY).expanduser()
    if adhoc and not os.path.lexists(path):
        return parse_inventory("", path.absolute())
    inv = load_inventory(path)
    for warning in inv.warnings:
        reporter.warn(f"{inv.source}: {warning}")
    return inv


def choose(inv: Inventory, pattern: str | None, tag: list[str] | None, host: str | None) -> list[Project]:
    return select(inv, pattern, tag or (), host, cwd=Path.cwd())


@dataclass
class Run:
    """A read-only operation's outcome: who asked, what was selected, what each host answered."""

    reporter: Reporter
    inv: Inventory
    projects: list[Project]
    responses: dict[str, dict[str, Any]]

    @property
    def unreachable(self) -> dict[str, str]:
        return {h: str(r["unreachable"]) for h, r in self.responses.items() if "unreachable" in r}

    @property
    def answered(self) -> dict[str, dict[str, Any]]:
        return {h: r for h, r in self.responses.items() if "unreachable" not in r}

    def warn_unreachable(self) -> None:
        for host, why in self.unreachable.items():
            self.reporter.warn(f"host {host} unreachable: {why}")

    def exit_code(self) -> int:
        return EXIT_UNREACHABLE if self.unreachable else 0


def context_host(c: Any, inv: Inventory) -> tuple[Inventory, str | None]:
    """Under ``fab -H X`` / ``jlc -H X`` a task runs against that one host.

    X may be an inventory host's name or address; any other host is reached
    as given, and its projects come from its own inventory file.
    """
    given = given_host(c)
    if not given:
        return inv, None
    for name, h in inv.hosts.items():
        if given in (name, h.address):
            if any(p.host == name for p in inv.projects.values()):
                return inv, name
            return _with_remote_projects(inv, name, h.inventory)
    # Fabric's -i, -S and -t reach us through the context; they apply to such ad-hoc hosts.
    connect_kwargs = getattr(c, "connect_kwargs", None) or {}
    key_files = connect_kwargs.get("key_filename") or []
    timeout = connect_kwargs.get("timeout")
    # Fabric took `user@` and `:port` off the -H value (original_host keeps the rest): they are on c.
    port = getattr(c, "port", None)
    adhoc = Host(name=given, address=given, user=None if "@" in given else getattr(c, "user", None),
                 port=port if isinstance(port, int) and not isinstance(port, bool) else None,
                 identity=key_files[0] if key_files else None, more_identities=tuple(key_files[1:]),
                 ssh_config=getattr(getattr(c, "config", None), "_runtime_ssh_path", None),
                 connect_timeout=float(timeout) if timeout else Host.connect_timeout,
                 python=os.environ.get("JLC_REMOTE_PYTHON", "python3"), adhoc=True)
    return _with_remote_projects(replace(inv, hosts={**inv.hosts, given: adhoc}), given, None)


def _with_remote_projects(inv: Inventory, host: str, path: str | None) -> tuple[Inventory, str]:
    """Add the projects listed in the host's own inventory file (``path``, else its default)."""
    answer = transport.call(inv, host, {"version": 1, "op": "read-inventory", "host": host,
                                        "options": {"path": path}}, lambda e: None)
    if "unreachable" in answer:
        raise LifecycleError(f"host {host} unreachable: {answer['unreachable']}", EXIT_UNREACHABLE)
    if answer.get("text") is None:
        here = f"in {inv.source}" if os.path.lexists(inv.source) else f"here (no inventory at {inv.source})"
        raise UsageError(f"{host} has no projects {here}, and no inventory of its own at "
                         f"{answer.get('path')} ({answer.get('why') or 'missing'})")
    theirs = parse_inventory(str(answer["text"]), Path(str(answer["path"])), remote=host)
    clashes = sorted(set(theirs.projects) & set(inv.projects))
    if clashes:
        raise UsageError(f"projects of {host} clash with names in {inv.source}: {', '.join(clashes)}")
    return replace(inv, projects={**inv.projects, **theirs.projects}), host


def prepare(c: Any, task: str, pattern: str | None, tag: list[str] | None, host: str | None, as_json: bool,
            show_token: bool = False) -> tuple[Reporter, Inventory, list[Project]]:
    """Load the inventory, honour -H, select projects."""
    reporter = Reporter(task, as_json=as_json, show_token=show_token)
    inv, forced = with_context_host(c, reporter)
    if forced is not None:
        if host and host != forced:
            raise UsageError(f"--host {host} contradicts -H {forced}")
        host = forced
    return reporter, inv, choose(inv, pattern, tag, host)


def with_context_host(c: Any, reporter: Reporter) -> tuple[Inventory, str | None]:
    """The inventory (none needed under -H) with the -H host and its projects; the -H host if any."""
    base = load(reporter, c)
    inv, forced = context_host(c, base)
    if forced is not None and not any(p.host == forced for p in base.projects.values()):
        # Its projects exist only for -H: the commands we suggest (jlc open NAME) need it too.
        reporter.via[forced] = dash_h(inv.hosts[forced])
    return inv, forced


def dash_h(target: Host) -> list[str]:
    """The options that reach ``target`` again: ``-H NAME``, and for an ad-hoc host the -S and -i it came with."""
    if not target.adhoc:
        return ["-H", target.name]
    # Fabric took `user@` and `:port` off the -H value; they go back on, or the words reach another sshd.
    name = target.name
    if target.user and "@" not in name:
        name = f"{target.user}@{name}"
    if target.port and not name.endswith(f":{target.port}"):
        name = f"{name}:{target.port}"
    words = ["-H", name]
    if target.ssh_config:
        words += ["-S", target.ssh_config]
    for key in (target.identity, *target.more_identities):
        if key:
            words += ["-i", key]
    return words


def query(c: Any, task: str, pattern: str | None, tag: list[str] | None, host: str | None,
          options: dict[str, Any], as_json: bool, show_token: bool = False, watch: bool = False) -> Run:
    """Select projects and run a read-only operation on their hosts."""
    reporter, inv, projects = prepare(c, task, pattern, tag, host, as_json, show_token)
    responses = transport.run(inv, task, projects, options, reporter.event, watch=watch)
    return Run(reporter, inv, projects, responses)


def run_action(c: Any, task: str, name: str | None, tag: list[str] | None, host: str | None,
               options: dict[str, Any], as_json: bool, show_token: bool = False,
               single: str | None = None, label: str | None = None,
               local_only: str | None = None, show_login: bool = False,
               per_project: Callable[[Inventory, list[Project]], dict[str, Any]] | None = None) -> list[Result]:
    """Select projects, run a changing operation, print lines and recap; exit non-zero on failure.

    ``single`` names a flag that only makes sense for one project; more is a usage error.
    ``show_login`` prints a start's login URL (with its token) even without ``show_token``.
    ``per_project`` adds options computed from the selection (adopt's rendered scripts).
    An unreachable host gives each of its projects an ``unreachable`` result.
    """
    reporter, inv, projects = prepare(c, label or task, name, tag, host, as_json, show_token)
    if per_project is not None:
        options = {**options, **per_project(inv, projects)}
    reporter.show_login = reporter.show_login or show_login
    if single and len(projects) != 1:
        raise UsageError(f"{single} works on one project; {name!r} selects {len(projects)}: "
                         + ", ".join(p.name for p in projects))
    remote = [p.name for p in projects if p.host != LOCAL]
    if local_only and remote:
        raise UsageError(f"{local_only} needs a project on this machine; {', '.join(remote)} "
                         f"{'is' if len(remote) == 1 else 'are'} remote (start it, then follow with logs -f)")
    try:
        responses = transport.run(inv, task, projects, options, reporter.event)
    except KeyboardInterrupt:
        reporter.interrupted()  # which steps were cut, and the recap (or JSON document) so far
        raise
    results: list[Result] = []
    for host, resp in responses.items():
        if "unreachable" in resp:
            for p in projects:
                if p.host == host:
                    r = Result(host=host, project=p.name, action=label or task, status=UNREACHABLE,
                               msg=str(resp["unreachable"]))
                    reporter.event({"event": "result", "result": r.to_dict()})
                    results.append(r)
        else:
            if "error" in resp:
                raise LifecycleError(f"host {host}: {resp['error']}")
            results.extend(Result.from_dict(d) for d in resp["results"])
    finish(reporter, results)
    return results


def finish(reporter: Reporter, results: list[Result]) -> None:
    """Print the recap (or the actions document) and exit with the right status."""
    reporter.actions(results)
    code = exit_code(results)
    if code:
        raise Exit(code=code)
