"""Per-project tasks: bootstrap, start, stop, restart, logs."""

from __future__ import annotations

import sys
import webbrowser
from typing import Any

from invoke.exceptions import Exit

from .. import transport
from ..errors import UsageError
from ..report import redact
from .common import Run, lc_task, prepare, run_action
from .flags import LINES, PORT, SECONDS

_PORT = "use exactly this port (fails clearly if it is taken)"
_TOKEN = "print the login URL with its token (in --json: token_url)"


@lc_task()
def bootstrap(c: Any, name: str, tag: Any = None, host: str | None = None,
              check: bool = False, json: bool = False) -> None:
    """Create the venv, install requirements, register the kernel, isolate Jupyter dirs."""
    run_action(c, "bootstrap", name, tag, host, {"check": check}, json)


@lc_task(kinds={"port": PORT}, help={
    "port": _PORT,
    "foreground": "stay attached and stream the log (tokens hidden; the login URL is printed once); "
                  "Ctrl-C stops the server cleanly",
    "no_open": "do not open a browser (it is only opened when interactive, for one project)",
    "show_token": _TOKEN,
})
def start(c: Any, name: str, port: int | None = None, foreground: bool = False, no_open: bool = False,
          tag: Any = None, host: str | None = None, check: bool = False, json: bool = False,
          show_token: bool = False) -> None:
    """Start the Jupyter server in the background and wait until it answers."""
    if foreground and (json or check):
        raise UsageError("--foreground cannot be combined with --json or --check")
    results = run_action(c, "start", name, tag, host,
                         {"check": check, "port": port, "foreground": foreground}, json, show_token,
                         single="--foreground" if foreground else ("--port" if port else None),
                         local_only="--foreground" if foreground else None, show_login=foreground)
    started = [r for r in results if r.action == "start" and r.secret.get("token_url")]
    if (len(started) == 1 and not foreground and not no_open and not json and not check
            and started[0].host == "local" and sys.stdout.isatty() and sys.stdin.isatty()):
        webbrowser.open(started[0].secret["token_url"])


@lc_task(kinds={"timeout": SECONDS},
         help={"timeout": "seconds from the graceful request to SIGKILL (default: the project's stop_timeout)"})
def stop(c: Any, name: str, timeout: float | None = None, tag: Any = None, host: str | None = None,
         check: bool = False, json: bool = False) -> None:
    """Stop the server: graceful shutdown, SIGKILL after the timeout, leftover kernels reaped."""
    run_action(c, "stop", name, tag, host, {"check": check, "timeout": timeout}, json)


@lc_task(kinds={"port": PORT, "timeout": SECONDS},
         help={"port": _PORT, "timeout": "stop timeout in seconds", "show_token": _TOKEN})
def restart(c: Any, name: str, port: int | None = None, timeout: float | None = None, tag: Any = None,
            host: str | None = None, check: bool = False, json: bool = False, show_token: bool = False) -> None:
    """Stop, then start."""
    run_action(c, "restart", name, tag, host, {"check": check, "port": port, "timeout": timeout}, json,
               show_token, single="--port" if port else None)


@lc_task(short={"follow": "f", "lines": "n"}, kinds={"lines": LINES},
         help={"follow": "keep printing new lines until Ctrl-C", "lines": "how many lines to show (default 50)",
               "show_token": "do not hide tokens in the log text"})
def logs(c: Any, name: str, follow: bool = False, lines: int = 50, tag: Any = None,
         host: str | None = None, json: bool = False, show_token: bool = False) -> None:
    """Show the last lines of the server log, or follow it."""
    if follow and json:
        raise UsageError("--follow cannot be combined with --json")
    reporter, inv, projects = prepare(c, "logs", name, tag, host, json, show_token)
    reporter.prefix_logs(len(projects) > 1)
    run = Run(reporter, inv, projects, transport.run(inv, "logs", projects, {"follow": follow, "lines": lines},
                                                      reporter.event, watch=follow))
    if not json:
        run.warn_unreachable()
    if follow:
        if run.exit_code():
            raise Exit(code=run.exit_code())
        return
    entries = [e for resp in run.answered.values() for e in resp["logs"]]
    if not show_token:
        for entry in entries:
            entry["lines"] = [redact(line) for line in entry["lines"]]
    if json:
        reporter.json({"version": 1, "logs": entries, "unreachable": run.unreachable})
        entries = []
    for entry in entries:
        if len(entries) > 1:
            print(f"==> {entry['project']}: {entry['path']} <==")
        if entry.get("missing"):
            print(f"(project {entry['project']} missing: {entry['missing']})", file=sys.stderr)
        elif not entry["exists"]:
            print(f"(no log yet at {entry['path']})", file=sys.stderr)
        for line in entry["lines"]:
            print(line)
    if run.exit_code():
        raise Exit(code=run.exit_code())
