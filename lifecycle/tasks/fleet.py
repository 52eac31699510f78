"""Tasks over the whole inventory: status, ports, orphans, which, stop-all, start-all, config, discover."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit

from .. import inventory_edit, transport
from ..config_doc import config_document
from ..errors import InventoryError, UsageError
from ..host import discover as host_discover
from ..inventory import LOCAL, USER_INVENTORY, Inventory, find_inventory, load_inventory
from ..merge import answers_once, machine_of, rows_once
from ..report import Reporter, config_toml, orphans_table, ports_table, redact, which_text, with_reach
from ..selection import hosts_of
from .common import Run, lc_task, prepare, query, run_action, with_context_host
from .flags import COUNT, DIR, FILE, SECONDS, TARGET, WATCH


def _done(run: Run) -> None:
    """Warn about unreachable hosts (the JSON carries them) and exit 4 if there were any."""
    if not run.reporter.as_json:
        run.warn_unreachable()
    if run.exit_code():
        raise Exit(code=run.exit_code())


@lc_task(optional=["watch"], kinds={"watch": WATCH}, help={
    "show_token": "show URLs with their tokens (for your eyes only)",
    "watch": "redraw the table every SECONDS (default 2) with CPU %, until Ctrl-C; on a terminal in place",
})
def status(c: Any, only: str | None = None, tag: Any = None, host: str | None = None,
           json: bool = False, show_token: bool = False, watch: float | None = None) -> None:
    """One table of every project: state, pid, port, URL, uptime, kernels, memory, restarts."""
    if watch is not None:
        if json:
            raise UsageError("--watch draws a table for people; it cannot be combined with --json")
        from .live import watch as live_watch

        reporter, inv, projects = prepare(c, "status", only, tag, host, False, show_token)
        live_watch(reporter, inv, projects, float(watch), show_token)
        return
    run = query(c, "status", only, tag, host, {"show_token": show_token}, json, show_token)
    doc = status_document(run)
    run.reporter.status(doc)
    _done(run)


def status_document(run: Run) -> dict[str, Any]:
    """The status document from every host's answer (unreachable hosts' projects as rows)."""
    doc: dict[str, Any] = {"version": 1, "projects": [], "unmanaged": []}
    # Two inventory hosts may be one machine (an ssh alias of this box): a server is then seen by
    # both, and it is unmanaged only if no host counts it as a project's, and listed once.
    managed = {(machine_of(resp, h), r["pid"]) for h, resp in run.answered.items() for r in resp["projects"]
               if r["pid"] is not None}
    unclaimed = {h: {**resp, "unmanaged": [r for r in resp["unmanaged"]
                                           if (machine_of(resp, h), r["pid"]) not in managed]}
                 for h, resp in run.answered.items()}
    for resp in run.answered.values():
        doc["projects"].extend(resp["projects"])
    doc["unmanaged"] = rows_once(run.inv, unclaimed, "unmanaged", lambda r: r["pid"])
    for h, why in run.unreachable.items():
        doc["projects"].extend(
            {"name": p.name, "host": h, "path": p.path, "state": "unreachable", "pid": None, "port": None,
             "url": None, "started": None, "kernels": None, "busy_kernels": None, "rss_bytes": None,
             "tracked": None, "note": why, "restarts": None, "last_exit": None, "cpu_seconds": None}
            for p in run.projects if p.host == h)
    doc["projects"].sort(key=lambda r: (r["host"] != LOCAL, r["host"], r["name"]))
    # The hosts' URLs are theirs (127.0.0.1 there); reach says how to get to each server from here.
    reach = run.reporter.reach
    doc["projects"] = [with_reach(r, reach(r["host"], r["name"], r.get("url"))) for r in doc["projects"]]
    doc["unmanaged"] = [with_reach(r, reach(r["host"], None, r.get("url"))) for r in doc["unmanaged"]]
    return doc


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
    rows = _by_host(rows_once(run.inv, run.answered, "ports", lambda r: r["port"], _union_ranges))
    if json:
        run.reporter.json({"version": 1, "ports": rows, "unreachable": run.unreachable})
    else:
        print(ports_table(rows))
    _done(run)


def _union_ranges(kept: dict[str, Any], dropped: dict[str, Any]) -> None:
    """A port seen under two host names of one machine lies in the ranges of both hosts' projects."""
    kept["range"] = sorted(set(kept.get("range") or []) | set(dropped.get("range") or []))


def _by_host(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped by host (this machine first), each host's in the order it gave them."""
    return sorted(rows, key=lambda r: (r["host"] != LOCAL, r["host"]))


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
    rows = [row for row in _by_host(rows_once(run.inv, run.answered, "orphans", lambda r: (r["kind"], r["pid"])))
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
    "host": "ask these inventory hosts instead of this machine ('a,b': each of them)",
    "show_token": "include the server's login URL with its token (yours only)",
})
def which(c: Any, target: str, host: str | None = None, json: bool = False, show_token: bool = False) -> None:
    """Who owns a port, a pid or a path: project, server, URL, uptime; or that nothing does."""
    reporter = Reporter("which", as_json=json, show_token=show_token)
    inv, forced = with_context_host(c, reporter)
    if forced is not None and host and host != forced:
        raise UsageError(f"--host {host} contradicts -H {forced}")
    hosts = [forced] if forced is not None else sorted(hosts_of(inv, host or LOCAL), key=lambda h: (h != LOCAL, h))
    # A host is asked about its machine, whether or not the inventory has projects on it.
    responses = transport.run(inv, "which", [], {"target": target, "show_token": show_token}, reporter.event,
                              hosts=hosts)
    run = Run(reporter, inv, [], responses)
    docs = []
    for h, doc in answers_once(inv, run.answered).items():
        doc.pop("machine", None)
        doc.setdefault("host", h)
        if not show_token:
            doc.pop("token_url", None)  # a host layer that gave it anyway
        if "error" not in doc:
            doc = with_reach(doc, reporter.reach(h, doc.get("project"), doc.get("url")))
        docs.append(doc)
    if len(hosts) == 1:
        if run.unreachable:
            _done(run)
        if "error" in docs[0]:
            raise UsageError(docs[0]["error"])
        if json:
            reporter.json(docs[0])
        else:
            print(which_text(docs[0]))
        return
    # Several hosts: each one's answer (one per machine), and which could not be asked.
    answers = [{k: v for k, v in d.items() if k != "version"} for d in docs]
    if json:
        reporter.json({"version": 1, "target": target, "answers": answers, "unreachable": run.unreachable})
    else:
        print("\n\n".join(which_text(a) if "error" not in a else f"{'host:':<11} {a['host']}\n{'error:':<11} "
                           f"{a['error']}" for a in answers))
    if answers and all("error" in a for a in answers) and not run.unreachable:
        raise Exit(code=2)
    _done(run)


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


@lc_task(iterable=["root", "tag"], kinds={"root": DIR, "depth": COUNT, "inventory": FILE}, help={
    "root": "a directory to search (repeatable; default: [discover] roots, else the inventory's directory)",
    "depth": "how many directory levels to descend (default 4)",
    "write": "add the projects found to the inventory (created if there is none; comments and formatting kept)",
    "check": "with --write: show what would be added, write nothing",
    "inventory": "the inventory file to add to (default: the one every task uses, else "
                 "~/.config/jupyter-lifecycle/inventory.toml)",
})
def discover(c: Any, root: Any = None, depth: int = 4, write: bool = False, check: bool = False,
             json: bool = False, inventory: str | None = None) -> None:
    """Find Jupyter projects on disk that are not in the inventory yet; show or add their TOML."""
    if getattr(c, "host", None):
        raise UsageError("discover searches this machine only; run it on the host itself")
    reporter = Reporter("discover", as_json=json)
    target, inv = _discover_inventory(inventory, reporter)
    roots = _discover_roots(list(root or []), inv, target, reporter)
    found = host_discover.discover(roots, depth=depth)
    known = {p.path for p in inv.projects.values() if p.host == LOCAL} if inv is not None else set()
    new = [f for f in found if f["path"] not in known]
    planned = inventory_edit.plan_projects(inv, target, new)
    toml = inventory_edit.render(planned) if planned else ""
    writing = write and not check
    created = inventory_edit.add_projects(target, planned, roots) if writing and (planned or inv is None) else False
    if json:
        reporter.json({"version": 1, "inventory": str(target), "roots": roots, "found": found,
                       "new": [{"path": p.path, "reasons": list(p.reasons), "name": p.name,
                                "port_range": list(p.port_range)} for p in planned],
                       "toml": toml, "written": writing and bool(planned or created), "created": created})
        return
    if not planned:
        print(f"nothing new under {', '.join(roots) or '(no root)'} ({len(found)} project(s) found, "
              f"all in the inventory)" + (f"; created {target}" if created else ""))
        return
    if writing:
        for p in planned:
            print(f"added: {p.name}: {p.path} ({', '.join(p.reasons)})")
        print(f"{'created' if created else 'updated'} {target}: {len(planned)} project(s), each with a port range "
              "of its own")
        return
    verb = "would be created with" if inv is None else "would get"
    print(f"# {len(planned)} project(s) not in the inventory; with --write, {target} {verb}:\n")
    print(toml, end="")


def _discover_inventory(given: str | None, reporter: Reporter) -> tuple[Path, Inventory | None]:
    """The inventory discover adds to, and its content (None: it does not exist yet)."""
    if given:
        target = Path(given).expanduser().absolute()
    else:
        try:
            target = find_inventory()
        except InventoryError:
            # No inventory anywhere: discover is how one starts, at the documented default place.
            target = Path(USER_INVENTORY).expanduser()
    if not os.path.lexists(target):
        return target.absolute(), None
    inv = load_inventory(target)
    for warning in inv.warnings:
        reporter.warn(f"{inv.source}: {warning}")
    return inv.source, inv


def _discover_roots(given: list[str], inv: Inventory | None, target: Path, reporter: Reporter) -> list[str]:
    """Roots from --root (relative to the cwd; each must exist), else the configured ones (relative
    to the inventory; a missing one is a warning), else the inventory's directory or the cwd."""
    if given:
        roots = [os.path.abspath(os.path.expanduser(r)) for r in given]
        for r in roots:
            if not os.path.isdir(r):
                raise UsageError(f"--root {r}: {'not a directory' if os.path.lexists(r) else 'no such directory'}")
        return roots
    if inv is not None and inv.discover_roots:
        roots = [os.path.normpath(os.path.join(target.parent, os.path.expanduser(r))) for r in inv.discover_roots]
        for r in roots:
            if not os.path.isdir(r):
                reporter.warn(f"{target}: discover root {r} does not exist; skipped")
        return [r for r in roots if os.path.isdir(r)]
    return [str(target.parent if inv is not None else Path.cwd())]
