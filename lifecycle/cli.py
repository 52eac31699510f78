"""The installed ``jupyter-lifecycle`` / ``jlc`` command: Fabric's program with our tasks bundled.

Fabric (and paramiko under it) costs about 170 ms to import. A command line
that uses none of Fabric's own flags runs on plain invoke's Program with the
same tasks; remote projects still go over SSH (imported when needed).

On top of invoke's parser this program: answers ``help``, ``TASK --help`` and
``-h`` the way people type them; shows and accepts only the core options that
mean something here (invoke's run()-related ones, ``--dry`` first, would look
like they work and do nothing, or worse); suggests the task or flag meant when
one is mistyped; and checks every task's flag values before any task runs.
"""

from __future__ import annotations

import difflib
import os
import re
import signal
import sys
from typing import Any

from invoke.exceptions import Exit, ParseError
from invoke.parser.argument import Argument
from invoke.program import Program

from . import __version__
from .cli_help import FlagDoc, TaskDoc, describe_task, program_help, task_help, task_list
from .errors import EXIT_USAGE, LifecycleError, UsageError
from .tasks import namespace
from .tasks.common import LifecycleTask
from .tasks.flags import SECONDS

# Core flags only Fabric's program knows: using one is what makes us import Fabric.
FABRIC_FLAGS = {"-H", "--hosts", "-i", "--identity", "-S", "--ssh-config", "-t", "--connect-timeout",
                "--prompt-for-login-password", "--prompt-for-passphrase", "--list-agent-keys"}
HELP_FLAGS = ("-h", "--help")

# The core options this program shows, by long name: (metavar, help).
OPTIONS: dict[str, tuple[str | None, str]] = {
    "help": ("TASK", "this help, or the help of TASK"),
    "version": (None, "print the version and exit"),
    "list": (None, "list the tasks"),
    "print-completion-script": ("SHELL", "print a tab-completion script for bash, zsh or fish"),
}
REMOTE_OPTIONS: dict[str, tuple[str | None, str]] = {
    "hosts": ("HOST", "run the task against this host: an inventory host, or any ssh destination that has an "
                      "inventory of its own (a comma list runs each in turn)"),
    "identity": ("FILE", "SSH private key for a host outside the inventory (repeatable)"),
    "ssh-config": ("FILE", "ssh config file for a host outside the inventory"),
    "connect-timeout": ("SECONDS", "connection timeout for a host outside the inventory"),
}
SHORT = {"help": "-h", "version": "-V", "list": "-l", "hosts": "-H", "identity": "-i", "ssh-config": "-S",
         "connect-timeout": "-t"}
# Accepted without being shown: the completion script calls it.
HIDDEN = {"complete"}
# Everything else invoke or Fabric would accept is refused, with the reason.
_RUN_FLAG = "is invoke's option for shell commands run by tasks; this tool's tasks run none, so it would do nothing"
REFUSED_WHY = {
    "dry": "would not make anything dry here: the task would really run. To see what would change, use --check",
    "config": "names an invoke config file; this tool reads inventory.toml ($JLC_INVENTORY)",
    "debug": "is invoke's parser debugging (set INVOKE_DEBUG=1 if you need it)",
    "list-depth": "does not apply: the tasks form one flat list",
    "list-format": "does not apply: the tasks form one flat list",
    "prompt-for-login-password": "is not supported: remote hosts are reached with keys or the ssh agent",
    "prompt-for-passphrase": "is not supported: unlock your key in the ssh agent instead",
    "list-agent-keys": "is not this tool's business: use ssh-add -l",
    "write-pyc": "does nothing useful here",
}


def _long(arg: Argument) -> str:
    return str(max(arg.names, key=len))


def _flag(name: str) -> str:
    return ("-" if len(name) == 1 else "--") + name


def _given(arg: Argument) -> bool:
    return bool(arg.got_value)


class _Behaviour:
    """What both programs share (see the module docstring)."""

    collection: Any
    parser: Any
    core: Any
    tasks: Any
    argv: list[str]

    # -- core options -------------------------------------------------------
    def core_args(self) -> list[Argument]:
        args = []
        for arg in super().core_args():  # type: ignore[misc]
            long = _long(arg)
            help_text = (OPTIONS.get(long) or REMOTE_OPTIONS.get(long) or (None, arg.help))[1]
            kind = arg.kind
            if long == "list":
                kind = bool  # no namespaces to list here: an optional value would only swallow a task name
            elif kind is int:
                kind = str  # checked by us: invoke's int() on 'abc' is a traceback
            args.append(Argument(names=arg.names, kind=kind, default=False if long == "list" else arg.default,
                                 help=help_text, optional=arg.optional and long != "list"))
        return args

    def _check_core(self) -> None:
        """Refuse the core options that mean nothing here; convert the ones we check ourselves."""
        seen: set[int] = set()
        for arg in self.core[0].args.values():
            if id(arg) in seen:
                continue
            seen.add(id(arg))
            long = _long(arg)
            if long in OPTIONS or long in REMOTE_OPTIONS or long in HIDDEN or not _given(arg):
                continue
            why = REFUSED_WHY.get(long, _RUN_FLAG)
            shown = "/".join(_flag(n) for n in sorted(arg.names, key=len))
            raise UsageError(f"{shown} {why}")
        if "connect-timeout" in self.core[0].args:
            timeout = self.core[0].args["connect-timeout"]
            if _given(timeout) and not isinstance(timeout.value, float):
                timeout.set_value(SECONDS.convert("-t/--connect-timeout", timeout.value), cast=False)

    # -- parsing ------------------------------------------------------------
    def parse_core_args(self) -> None:
        super().parse_core_args()  # type: ignore[misc]
        try:
            self._check_core()
        except LifecycleError as exc:
            raise Exit(f"error: {exc.message}", code=exc.code) from None

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)  # type: ignore[misc]
        except ParseError as exc:
            raise Exit(f"error: {self._explain(exc)}", code=EXIT_USAGE) from None

    def parse_tasks(self) -> None:
        try:
            self._answer_help(list(self.core.unparsed))
            try:
                super().parse_tasks()  # type: ignore[misc]
            except ParseError as exc:
                raise UsageError(self._explain(exc)) from None
            self._check_core()
            # Every task's values before any task runs: 'stop a start b --port x' stops nothing.
            for ctx in self.tasks:
                task = self.collection[ctx.name]
                if isinstance(task, LifecycleTask):
                    task.convert({arg.name: arg.value for arg in ctx.args.values() if _given(arg)})
        except LifecycleError as exc:
            raise Exit(f"error: {exc.message}", code=exc.code) from None

    def _answer_help(self, tokens: list[str]) -> None:
        """``help``, ``help TASK`` and ``TASK ... --help`` (before invoke eats --help as a NAME)."""
        if not tokens:
            return
        first = tokens[0]
        if first == "help":
            if len(tokens) > 2:
                raise UsageError(f"help takes one task name, got {' '.join(tokens[1:])}")
            if len(tokens) == 2:
                self._task_or_fail(tokens[1])
                self.print_task_help(tokens[1])
            else:
                self.print_help()
            raise Exit
        if first.startswith("-"):
            return  # an unknown core option: invoke's parser says so, and _explain words it
        self._task_or_fail(first)
        self._no_value_for_switches(tokens)
        if any(t in HELP_FLAGS for t in tokens):
            asking = [t for t in tokens[: [i for i, t in enumerate(tokens) if t in HELP_FLAGS][0]]
                      if t in self.collection.task_names]
            self.print_task_help(asking[-1] if asking else first)
            raise Exit

    def _no_value_for_switches(self, tokens: list[str]) -> None:
        """``--json=x``: invoke splits it and then complains about a stray 'x'; say what is wrong."""
        current = None
        for token in tokens:
            if token in self.collection.task_names:
                current = self.collection[token]
            elif current is not None and token.startswith("--") and "=" in token:
                flag = token.split("=", 1)[0]
                if any(flag == _flag(n) for a in current.get_arguments() if a.kind is bool for n in a.names):
                    raise UsageError(f"{flag} is an on/off flag and takes no value (got {token!r})")

    def parse_cleanup(self) -> None:
        wanted = self.core[0].args["help"].value
        try:
            if isinstance(wanted, str):
                self._task_or_fail(wanted)
        except LifecycleError as exc:
            raise Exit(f"error: {exc.message}", code=exc.code) from None
        super().parse_cleanup()  # type: ignore[misc]

    def _task_or_fail(self, name: str) -> None:
        if name in self.collection.task_names:
            return
        close = difflib.get_close_matches(name, list(self.collection.task_names), n=3, cutoff=0.6)
        hint = f"did you mean: {', '.join(close)}?" if close else f"tasks: {', '.join(self._task_order())}"
        raise UsageError(f"unknown task {name!r}; {hint} (help: {self.display_name} help)")

    def _explain(self, exc: ParseError) -> str:
        """invoke's parse errors, reworded for a person (and with a suggestion where one fits)."""
        message = str(exc)
        ctx = getattr(exc, "context", None)
        task_name = getattr(ctx, "name", None)
        task = self.collection[task_name] if task_name and task_name in self.collection.task_names else None
        see = f"; see {self.display_name} {task_name} --help" if task_name else f"; see {self.display_name} --help"
        m = re.fullmatch(r"No idea what '(.*)' is!", message)
        if m:
            token = m.group(1)
            if token.startswith("-"):
                known = sorted(ctx.flags.keys()) if task_name and ctx is not None else [
                    _flag(n) for n in (*OPTIONS, *REMOTE_OPTIONS)]
                close = difflib.get_close_matches(token.split("=")[0], known, n=3, cutoff=0.7)
                where = f"{task_name} has no option {token}" if task_name else f"unknown option {token}"
                hint = f"; did you mean: {', '.join(close)}?" if close else ""
                if not task_name and token.split("=")[0] in {_flag(n) for t in self.collection.task_names
                                                              for n in self._task_flags(t)}:
                    hint = "; task options go after the task name"
                return where + hint + see
            if task is not None:
                positionals = [a for a in ctx.positional_args] if ctx is not None else []
                if positionals:
                    label = task.flag_label(positionals[0].name)
                    return (f"{task_name} takes one {label}; unexpected {token!r} (to select several projects, "
                            f"give one pattern such as 'a,b' or 'lab-*')" + see)
                return f"{task_name} takes no argument; unexpected {token!r}" + see
            return f"unknown task {token!r}" + see
        m = re.fullmatch(r"'(.*)' did not receive required positional arguments: (.*)", message)
        if m and task is not None:
            names = re.findall(r"'([^']+)'", m.group(2))
            wants = ", ".join(task.flag_label(n.replace("-", "_")) for n in names)
            return f"{task_name} needs {wants}" + see
        m = re.fullmatch(r"Flag <Argument: ([\w-]+).*> needed value and was not given one!", message)
        if m:
            name = m.group(1)
            kind = task.kinds.get(name.replace("-", "_")) if task is not None else None
            label = task.flag_label(name.replace("-", "_")) if task is not None else _flag(name)
            return f"{label} needs a value" + (f" ({kind.metavar})" if kind else "") + see
        m = re.fullmatch(r"Flag <Argument: ([\w-]+).*> doesn't take any value!", message)
        if m:
            name = m.group(1)
            label = task.flag_label(name.replace("-", "_")) if task is not None else _flag(name)
            return f"{label} is an on/off flag and takes no value" + see
        return message

    def _task_flags(self, name: str) -> list[str]:
        return [a.name.replace("_", "-") for a in self.collection[name].get_arguments()]

    # -- help ---------------------------------------------------------------
    @property
    def display_name(self) -> str:
        called = os.path.basename(self.argv[0]) if self.argv else ""
        if called in ("jlc", "jupyter-lifecycle"):
            return called
        return "python -m lifecycle" if called == "__main__.py" else "jlc"

    def _task_order(self) -> list[str]:
        return list(self.collection.task_names)

    def _task_doc(self, name: str) -> tuple[TaskDoc, str]:
        return describe_task(name, self.collection[name])

    def _option_docs(self, table: dict[str, tuple[str | None, str]]) -> list[FlagDoc]:
        return [FlagDoc(names=tuple(n for n in (SHORT.get(long), _flag(long)) if n), metavar=metavar, help=text,
                        optional_value=long == "help") for long, (metavar, text) in table.items()]

    def print_help(self) -> None:
        tasks = [self._task_doc(n)[0] for n in self._task_order()]
        print(program_help(self.display_name, tasks, self._option_docs(OPTIONS), self._option_docs(REMOTE_OPTIONS)))

    def print_task_help(self, name: str) -> None:
        doc, description = self._task_doc(name)
        print(task_help(self.display_name, doc, description))

    def list_tasks(self) -> None:
        print("\n".join(task_list(self.display_name, [self._task_doc(n)[0] for n in self._task_order()])))

    def print_version(self) -> None:
        from importlib.metadata import version

        print(f"jupyter-lifecycle {__version__} (invoke {version('invoke')}, fabric {version('fabric')})")


class QuickProgram(_Behaviour, Program):
    pass


_NAMES: dict[str, Any] = dict(name="jupyter-lifecycle", binary="jupyter-lifecycle",
                              binary_names=["jupyter-lifecycle", "jlc"], version=__version__, namespace=namespace)


def uses_fabric(args: list[str]) -> bool:
    body = args[: args.index("--")] if "--" in args else args
    return any(a.split("=", 1)[0] in FABRIC_FLAGS or (a[:2] in ("-H", "-i", "-S", "-t") and len(a) > 2
                                                       and not a.startswith("--")) for a in body)


def make_program(argv: list[str] | None = None) -> Program:
    args = sys.argv[1:] if argv is None else argv
    if not uses_fabric(args):
        return QuickProgram(**_NAMES)
    from fabric import Config, Executor
    from fabric.main import Fab

    class LifecycleProgram(_Behaviour, Fab):  # type: ignore[misc]
        pass

    return LifecycleProgram(executor_class=Executor, config_class=Config, **_NAMES)  # type: ignore[no-any-return]


def quiet_broken_pipe() -> None:
    """Output piped into ``head`` and the like: end quietly when the reader goes, as Unix tools do."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def main() -> None:
    try:
        make_program().run()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
