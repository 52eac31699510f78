"""The command line's help text: the task list, one task's usage and flags, the program's own options.

Invoke's help shows every flag as ``--name=STRING``, positionals as flags, and
its own run()-related core options; this renders what the user of this tool
types instead. Pure functions over plain records, so the text is testable
without a program.
"""

from __future__ import annotations

import inspect
import shutil
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlagDoc:
    """One parameter as the user spells it."""

    names: tuple[str, ...]          # e.g. ("-n", "--lines"); for a positional, its metavar alone
    metavar: str | None = None      # None for an on/off flag
    help: str = ""
    positional: bool = False
    repeatable: bool = False
    optional_value: bool = False    # --help[=TASK]

    @property
    def spec(self) -> str:
        """``-n INT, --lines=INT`` (the left column of the options list)."""
        if self.positional:
            return self.names[0]
        parts = []
        for name in sorted(self.names, key=len):
            if self.metavar is None:
                parts.append(name)
            elif name.startswith("--"):
                parts.append(f"{name}[={self.metavar}]" if self.optional_value else f"{name}={self.metavar}")
            else:
                parts.append(f"{name} [{self.metavar}]" if self.optional_value else f"{name} {self.metavar}")
        return ", ".join(parts)

    @property
    def usage(self) -> str:
        """``NAME``, ``[--port=INT]``, ``[--tag=TAG ...]`` (a term of the usage line)."""
        if self.positional:
            return self.names[0]
        long = max(self.names, key=len)
        value = f"={self.metavar}" if self.metavar else ""
        return f"[{long}{value}{' ...' if self.repeatable else ''}]"


@dataclass(frozen=True)
class TaskDoc:
    name: str
    summary: str                    # the docstring's first paragraph
    params: tuple[FlagDoc, ...]

    @property
    def stub(self) -> str:
        """``start NAME``: the task and its positionals, for the task list."""
        return " ".join([self.name] + [p.names[0] for p in self.params if p.positional])


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def columns(rows: Sequence[tuple[str, str]], indent: int = 2, width: int | None = None,
            left: int | None = None) -> list[str]:
    """Two columns, the right one wrapped; a left cell too wide for the column gets its own line."""
    width = width or _width()
    left = left or min(max((len(a) for a, _ in rows), default=0), 34)
    out = []
    for a, b in rows:
        wrapped = textwrap.wrap(b, width=max(20, width - indent - left - 3)) or [""]
        pad = " " * (indent + left + 3)
        if len(a) > left:
            out.append(" " * indent + a)
            out.extend(pad + line for line in wrapped)
        else:
            out.append(" " * indent + a.ljust(left) + "   " + wrapped[0])
            out.extend(pad + line for line in wrapped[1:])
    return [line.rstrip() for line in out]


def wrap_usage(prefix: str, terms: Iterable[str], width: int | None = None) -> list[str]:
    """``Usage: jlc start NAME [--port=INT] ...`` wrapped under its own start."""
    width = width or _width()
    lines = [prefix]
    indent = " " * min(len(prefix) + 1, 24)
    for term in terms:
        if len(lines[-1]) + 1 + len(term) > width and lines[-1].strip():
            lines.append(indent + term)
        else:
            lines[-1] += " " + term
    return lines


def task_help(binary: str, task: TaskDoc, description: str) -> str:
    lines = wrap_usage(f"Usage: {binary} {task.name}", [p.usage for p in task.params])
    lines += ["", *description.strip().splitlines(), ""]
    positionals = [p for p in task.params if p.positional]
    flags = [p for p in task.params if not p.positional]
    if positionals:
        lines += ["Arguments:", *columns([(p.spec, p.help) for p in positionals]), ""]
    if flags:
        lines += ["Options:", *columns([(p.spec, p.help + (" (repeatable)" if p.repeatable and "repeat" not in p.help
                                                            else "")) for p in flags]), ""]
    lines.append(f"Every task and flag in detail: docs/tasks.md. All tasks: {binary} help")
    return "\n".join(lines)


def program_help(binary: str, tasks: Sequence[TaskDoc], options: Sequence[FlagDoc],
                 remote: Sequence[FlagDoc]) -> str:
    lines = [f"Usage: {binary} [-H HOST] TASK [ARGUMENTS] [OPTIONS]", "",
             "Own the whole life of your JupyterLab servers: every project of inventory.toml, on this",
             "machine and on your dev boxes over SSH.", ""]
    lines += task_list(binary, tasks)
    left = min(max(len(o.spec) for o in [*options, *remote]), 34)
    lines += ["", "Options:", *columns([(o.spec, o.help) for o in options], left=left)]
    lines += ["", "Remote hosts (before the task name; see docs/remote.md):",
              *columns([(o.spec, o.help) for o in remote], left=left)]
    lines += ["", f"A task's arguments and options: {binary} help TASK, or {binary} TASK --help.",
              "Every task in detail: docs/tasks.md."]
    return "\n".join(lines)


def task_list(binary: str, tasks: Sequence[TaskDoc]) -> list[str]:
    rows = [(t.stub, t.summary) for t in tasks] + [("help [TASK]", "This list, or one task's arguments and options.")]
    return ["Tasks:", *columns(rows), "",
            *textwrap.wrap("NAME is a project, a glob ('lab-*'), a list ('a,b'), a negation ('!old') or '.' "
                           "(the project holding the current directory).", width=_width())]


def describe_task(name: str, task: Any) -> tuple[TaskDoc, str]:
    """A task's parameters as the user spells them, and its docstring (an invoke Task, read duck-typed)."""
    kinds = getattr(task, "kinds", {})
    params = []
    for arg in task.get_arguments():
        kind = kinds.get(arg.name)
        metavar = None if arg.kind is bool else (kind.metavar if kind else "VALUE")
        names = ((kind.metavar if kind else arg.name.upper()),) if arg.positional else tuple(
            ("-" if len(n) == 1 else "--") + n for n in arg.names)
        params.append(FlagDoc(names=names, metavar=metavar, help=arg.help or "", positional=arg.positional,
                              repeatable=arg.kind is list))
    params.sort(key=lambda p: not p.positional)  # stable: signature order otherwise
    doc = inspect.getdoc(task) or ""
    return TaskDoc(name=name, summary=doc.split("\n\n")[0].replace("\n", " "), params=tuple(params)), doc
