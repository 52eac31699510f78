"""Tasks over the whole inventory: status, ports, orphans, which, stop-all, start-all, config, discover."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from invoke.exceptions import Exit

from .. import inventory_edit
from ..config_doc import config_document
from ..errors import UsageError
from ..host import discover as host_discover
from ..inventory import LOCAL
from ..report import Reporter, config_toml, orphans_table, ports_table, redact, which_text
from .common import Run, lc_task, load, prepare, query, run_action
from .flags import COUNT, DIR, SECONDS, TARGET


def _done(run: Run) -> None:
    """Warn about unreachable hosts (the JSON carries them) and exit 4 if there were any."""
    if not run.reporter.as_json:
        run.warn_unreachable()
    if run.exit_code():
        raise Exit(code=run.exit_code())


@lc_task(help={"show_token": "show URLs with their tokens (for your eyes only)"})
def status(c: Any, only: str | None = None, tag: Any = None, host: str | None = None,
           json: bool = False, show_token: bool = False) -> None:
    """One table of every project: state, pid, port, URL, uptime, kernels, memory."""
    run = query(c, "status", only, tag, host, {"show_token": show_token}, json, show_token)
    doc: dict[str, Any] = {"version": 1, "projects": [], "unmanaged": []}
    # Two inventory hosts may be one machine (an ssh alias of this box): a server is then seen by
    # both, and it is unmanaged only if no host counts it as a project's, and listed once.
    managed = {(resp.get("machine"), r["pid"]) for resp in run.answered.values() for r in resp["projects"]
               if r["pid"] is not None}
    seen = set(managed)
    for resp in run.answered.values():
        doc["projects"].extend(resp["projects"])
        for row in resp["unmanaged"]:
            key = (resp.get("machine"), row["pid"])
            if not resp.get("machine") or key not in seen:
                seen.add(key)
                doc["unmanaged"].append(row)
    for h, why in run.unreachable.items():
        doc["projects"].extend(
            {"name": p.name, "host": h, "path": p.path, "state": "unreachable", "pid": None, "port": None,
             "url": None, "started": None, "kernels": None, "busy_kernels": None, "rss_bytes": None,
             "tracked": None, "note": why} for p in run.projects if p.host == h)
    doc["projects"].sort(key=lambda r: (r["host"] != LOCAL, r["host"], r["name"]))
    run.reporter.status(doc)
    _done(run)


@lc_task(help={"show_token": "show tokens and passwords set in env and args (hidden otherwise)"})
def config(c: Any, only: str | None = None, tag: Any = None, host: str | None = None, json: bool = False,
           show_token: bool = False) -> None:
    """The resolved inventory (defaults applied) as TOML, and the file it came from."""
    reporter, inv, projects = prepare(c, "config", only, tag, host, json)
    doc = config_document(inv, [p.name for p in projects], show_token)
    if json:
        reporter.json(doc)
    else:
        print(config_toml(doc, show_token), end="")


@lc_task()
def ports(c: Any, only: str | None = None, tag: Any = None, host: str | None = None, json: bool = False) -> None:
    """Every port of every project's range: free, jupyter (project, pid) or other; and servers outside them."""
    run = query(c, "ports", only, tag, host, {}, json)
    rows = [row for resp in run.answered.values() for row in resp["ports"]]
    if json:
        run.reporter.json({"version": 1, "ports": rows, "unreachable": run.unreachable})
    else:
        print(ports_table(rows))
    _done(run)


@lc_task(kinds={"timeout": SECONDS}, help={
    "kill": "stop the orphans of projects (graceful, then forceful) and terminate orphan kernels",
    "include_unmanaged": "with --kill, also stop servers that lie in no project",
    "timeout": "with --kill, seconds from the graceful request to SIGKILL (default 10)",
    "check": "with --kill, say what would be stopped and stop nothing",
})
def orphans(c: Any, kill: bool = False, include_unmanaged: bool = False, timeout: float | None = None,
            only: str | None = None, tag: Any = None, host: str | None = None, check: bool = False,
            json: bool = False) -> None:
    """Jupyter servers no pid file tracks, and kernels whose server is gone."""
    stray = [flag for flag, given in (("--check", check), ("--include-unmanaged", include_unmanaged),
                                      ("--timeout", timeout is not None)) if given]
    if stray and not kill:
        raise UsageError(f"{', '.join(stray)} only {'applies' if len(stray) == 1 else 'apply'} with --kill: "
                         "orphans without --kill only lists them and changes nothing")
    narrowed = bool(only or tag)
    if kill:
        run_action(c, "orphans", only, tag, host,
                   {"kill": True, "include_unmanaged": include_unmanaged, "timeout": timeout, "check": check},
                   json, label="orphan")
        return
    run = query(c, "orphans", only, tag, host, {}, json)
    names = {p.name for p in run.projects}
    rows = [row for resp in run.answered.values() for row in resp["orphans"]
            if not narrowed or row["project"] in names]
    for row in rows:
        row["cmdline"] = redact(row["cmdline"])
    if json:
        run.reporter.json({"version": 1, "orphans": rows, "unreachable": run.unreachable})
    elif rows:
        # On a terminal the command is cut to what is left of its width; piped, it stays whole for grep.
        columns = shutil.get_terminal_size((0, 0)).columns if sys.stdout.isatty() else 0
        print(orphans_table(rows, max(70, columns - 60) if columns else None))
    else:
        print("no orphans")
    _done(run)


@lc_task(kinds={"target": TARGET}, help={
    "target": "a port, a pid, or a path (force the kind with port:N or pid:N)",
    "host": "ask this inventory host instead of this machine",
    "show_token": "include the server's login URL with its token (yours only)",
})
def which(c: Any, target: str, host: str | None = None, json: bool = False, show_token: bool = False) -> None:
    """Who owns a port, a pid or a path: project, server, URL, uptime; or that nothing does."""
    run = query(c, "which", None, None, host or (None if getattr(c, "host", None) else LOCAL),
                {"target": target, "show_token": show_token}, json, show_token)
    if run.unreachable:
        _done(run)
    doc = next(iter(run.answered.values()))
    if "error" in doc:
        raise UsageError(doc["error"])
    if not show_token:
        doc.pop("token_url", None)  # a host layer that gave it anyway
    if json:
        run.reporter.json(doc)
    else:
        print(which_text(doc))


_ALL_HELP = {
    "forks": "how many servers to work on at once (default 8)",
    "timeout": "seconds from the graceful request to SIGKILL (default: each project's stop_timeout)",
}


@lc_task(kinds={"timeout": SECONDS, "forks": COUNT}, help={**_ALL_HELP,
               "force": "also stop servers whose kernels are busy (they are skipped otherwise)",
               "include_unmanaged": "also stop Jupyter servers that lie in no project"})
def stop_all(c: Any, force: bool = False, include_unmanaged: bool = False, timeout: float | None = None,
             forks: int = 8, only: str | None = None, tag: Any = None, host: str | None = None,
             check: bool = False, json: bool = False) -> None:
    """Stop every selected project's server in parallel, plus their orphans; busy ones need --force."""
    options = {"force": force, "include_unmanaged": include_unmanaged, "check": check,
               "timeout": timeout, "workers": forks}
    run_action(c, "stop-all", only, tag, host, options, json, label="stop")


@lc_task(kinds={"forks": COUNT}, help={
    "forks": _ALL_HELP["forks"],
    "show_token": "print each login URL with its token (in --json: token_url)",
})
def start_all(c: Any, forks: int = 8, only: str | None = None, tag: Any = None, host: str | None = None,
              check: bool = False, json: bool = False, show_token: bool = False) -> None:
    """Start every selected project in parallel."""
    options = {"check": check, "workers": forks}
    run_action(c, "start-all", only, tag, host, options, json, show_token, label="start")


@lc_task(iterable=["root", "tag"], kinds={"root": DIR, "depth": COUNT}, help={
    "root": "a directory to search (repeatable; default: [discover] roots, else the inventory's directory)",
    "depth": "how many directory levels to descend (default 4)",
    "write": "add the projects found to inventory.toml (comments and formatting kept)",
})
def discover(c: Any, root: Any = None, depth: int = 4, write: bool = False, check: bool = False,
             json: bool = False) -> None:
    """Find Jupyter projects on disk that are not in the inventory yet."""
    if getattr(c, "host", None):
        raise UsageError("discover searches this machine only; run it on the host itself")
    reporter = Reporter("discover", as_json=json)
    inv = load(reporter)
    roots = list(root or inv.discover_roots or [str(inv.source.parent)])
    roots = [r if os.path.isabs(os.path.expanduser(r)) else str(inv.source.parent / r) for r in roots]
    found = host_discover.discover(roots, depth=depth)
    known = {p.path for p in inv.projects.values() if p.host == LOCAL}
    new = [f for f in found if f["path"] not in known]
    added = inventory_edit.add_projects(inv, [f["path"] for f in new]) if write and not check else {}
    names = {path: name for name, path in added.items()}
    if json:
        reporter.json({"version": 1, "roots": roots, "found": found,
                       "new": [{**f, "name": names.get(f["path"])} for f in new], "written": bool(added)})
        return
    if not new:
        print(f"nothing new under {', '.join(roots)} ({len(found)} project(s) found, all in the inventory)")
        return
    verb = "added" if added else "not in the inventory"
    for f in new:
        label = f"{names[f['path']]}: " if f["path"] in names else ""
        print(f"{verb}: {label}{f['path']} ({', '.join(f['reasons'])})")
    if not added:
        print("run with --write to add them to " + str(inv.source))
