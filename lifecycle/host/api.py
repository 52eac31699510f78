"""The host layer's single entry point: one request dict in, one response dict out.

The same function serves the local in-process transport and the remote JSON
entry point (``python -m lifecycle.host``), so both behave identically.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from . import (
    adopt,
    audit_fix,
    bootstrap,
    cull,
    logs,
    orphans,
    portmap,
    restart,
    runstate,
    service,
    start,
    status,
    stop,
    stop_server,
    supervise,
    which,
)
from .context import Emit, OpContext
from .fleet import Survey, survey
from .fsutil import CONFIG_FILE_LIMIT, UnreadableFile, not_a_directory, read_small
from .layout import Layout
from .lock import LockTimeout, project_lock, venv_lock
from .procs import machine_id
from .results import FAILED, SKIPPED, Result
from .spec import ProjectSpec

PROTOCOL = 1
# Starts and stops wait on sockets and sleeps, not CPU: run several at once.
# Bootstraps run one at a time (projects may share a venv, and pip is heavy).
DEFAULT_WORKERS = 8


# What a project whose directory is missing gets: nothing to stop is no failure; nothing to start is.
_IF_MISSING = {"bootstrap": ("bootstrap", FAILED), "start": ("start", FAILED), "start-all": ("start", FAILED),
               "restart": ("start", FAILED), "stop": ("stop", SKIPPED), "stop-all": ("stop", SKIPPED),
               "adopt": ("adopt", FAILED)}


class RequestError(Exception):
    pass


def _each(specs: List[ProjectSpec], ctx: OpContext, workers: int,
          fn: Callable[[ProjectSpec], List[Result]], if_missing: Tuple[str, str]) -> List[Result]:
    """Run ``fn`` per project (in a pool), each project's failure its own.

    A project whose directory is missing gets one ``if_missing`` (action, status)
    result instead: the same answer for local and remote projects.
    """
    def guarded(spec: ProjectSpec) -> List[Result]:
        ctx.begin(spec.name, ctx.op)
        try:
            why = not_a_directory(str(Layout.of(spec).root))
            if why is None:
                results = fn(spec)
            else:
                results = [ctx.result(spec.name, if_missing[0], if_missing[1], f"project missing: {why}")]
        except Exception as exc:  # one project's crash must not hide the others' results
            results = [ctx.result(spec.name, "error", FAILED, f"{type(exc).__name__}: {exc}")]
        for r in results:
            ctx.done(r)  # steps that did not emit their own result as they ended
        return results

    if workers > 1 and len(specs) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(specs))) as pool:
            batches = list(pool.map(guarded, specs))
    else:
        batches = [guarded(s) for s in specs]
    return [r for batch in batches for r in batch]


# pip and venv creation can take minutes; a second bootstrap waits for the first.
_BOOTSTRAP_LOCK_WAIT = 1800.0


def _bootstrap_locked(spec: ProjectSpec, ctx: OpContext) -> List[Result]:
    """Bootstrap under the project's lock and its venv's (projects may share a venv)."""
    if ctx.check:
        return bootstrap.bootstrap(spec, ctx)
    layout = Layout.of(spec)
    try:
        with project_lock(layout, _BOOTSTRAP_LOCK_WAIT, lambda m: ctx.progress(spec.name, m)):
            with venv_lock(layout, _BOOTSTRAP_LOCK_WAIT, lambda m: ctx.progress(spec.name, m)):
                return bootstrap.bootstrap(spec, ctx)
    except LockTimeout as exc:
        return [ctx.result(spec.name, "bootstrap", FAILED, str(exc))]


def _adopt_locked(spec: ProjectSpec, ctx: OpContext, content: str, force: bool) -> List[Result]:
    """Write the project's generated app.sh under its lock (audit --fix and start look at the project too)."""
    if ctx.check:
        return [adopt.ensure_app_sh(spec, ctx, content, force)]
    try:
        with project_lock(Layout.of(spec), _BOOTSTRAP_LOCK_WAIT, lambda m: ctx.progress(spec.name, m)):
            return [adopt.ensure_app_sh(spec, ctx, content, force)]
    except LockTimeout as exc:
        return [ctx.result(spec.name, "adopt", FAILED, str(exc))]


def _actions(results: List[Result]) -> Dict[str, Any]:
    return {"version": PROTOCOL, "results": [r.to_dict() for r in results]}


def handle(request: Dict[str, Any], emit: Emit = lambda e: None) -> Dict[str, Any]:
    if not isinstance(request, dict) or request.get("version") != PROTOCOL:
        version = request.get("version") if isinstance(request, dict) else None
        raise RequestError(f"unsupported protocol version {version!r} (this host speaks {PROTOCOL})")
    op = request.get("op")
    opts: Dict[str, Any] = dict(request.get("options") or {})
    ctx = OpContext(host=request.get("host", "local"), check=bool(opts.get("check")), emit=emit, op=str(op))
    specs = [ProjectSpec.from_dict(d) for d in request.get("projects", [])]
    known_by_name = {s.name: s for s in (ProjectSpec.from_dict(d) for d in request.get("known", []))}
    known_by_name.update({s.name: s for s in specs})
    known = list(known_by_name.values())
    # The other inventory hosts' projects: one of them may be on this machine under another host name.
    peers = [ProjectSpec.from_dict(d) for d in request.get("peers", [])]

    def look() -> Survey:
        return survey(known, peers=peers)

    workers = max(1, int(opts.get("workers") or DEFAULT_WORKERS))
    timeout = opts.get("timeout")

    if op == "read-inventory":
        # For a host that is not in the controller's inventory: its own file.
        path = os.path.abspath(os.path.expanduser(str(opts.get("path") or os.environ.get("JLC_INVENTORY")
                                                       or "~/.config/jupyter-lifecycle/inventory.toml")))
        try:
            theirs = read_small(Path(path), CONFIG_FILE_LIMIT)
            if theirs is not None:
                return {"version": PROTOCOL, "path": path, "text": theirs.text()}
            why = "no such file"
        except UnreadableFile as exc:
            why = str(exc)
        return {"version": PROTOCOL, "path": path, "text": None, "why": why}
    if op == "machine":
        # Which hosts of a command are one machine, asked before a machine-wide kill.
        return {"version": PROTOCOL, "machine": machine_id()}
    if op == "status":
        return status.status(specs, known, ctx, show_token=bool(opts.get("show_token")), peers=peers)
    # "machine" in the fleet views: the controller lists a machine reached under two host names once.
    if op == "ports":
        return {"version": PROTOCOL, "ports": portmap.port_map(specs, known, look(), ctx.host), "machine": machine_id()}
    if op == "orphans":
        found = look()
        if not opts.get("kill"):
            return {"version": PROTOCOL, "orphans": orphans.orphan_rows(found, ctx.host), "machine": machine_id()}
        results = orphans.kill_orphans(found, ctx, bool(opts.get("include_unmanaged")),
                                       float(timeout or 10.0), {s.name for s in specs},
                                       unmanaged=opts.get("unmanaged", True) is not False)
        return _actions(results)
    if op == "audit":
        return audit_fix.run(specs, known, ctx, opts)
    if op == "stop-server":
        result = stop_server.stop_server(str(opts.get("target", "")), look(), ctx, float(timeout or 10.0))
        ctx.done(result)
        return _actions([result])
    if op == "which":
        try:
            answer = which.which(str(opts.get("target", "")), known, look(), ctx.host,
                                 show_token=bool(opts.get("show_token")))
        except which.WhichError as exc:
            answer = {"version": PROTOCOL, "error": str(exc)}
        return {**answer, "machine": machine_id()}
    if op == "cull":
        found = look()
        idle = opts.get("idle")
        kernels_only = bool(opts.get("kernels"))
        return _actions(_each(specs, ctx, workers, lambda s: cull.cull(
            s, ctx, found, *cull.timeouts(s, float(idle) if idle is not None else None, kernels_only)),
            ("cull", SKIPPED)))
    if op == "service":
        action = opts.get("action")
        if action == "probe":
            return service.probe(opts)
        if action == "status":
            return service.status(opts)
        if action not in ("install", "uninstall"):
            raise RequestError(f"unknown service action {action!r}")
        done = service.install(ctx, opts) if action == "install" else service.uninstall(ctx, opts)
        for r in done:
            emit({"event": "result", "result": r.to_dict()})
        return _actions(done)
    if op == "supervise":
        return _actions(supervise.supervise(specs, known, ctx))
    if op == "logs":
        if opts.get("follow"):
            # Like tail -f: the last lines first, then whatever is written next.
            for entry in logs.show(specs, int(opts.get("lines", 50))):
                if entry["missing"]:
                    emit({"event": "warning", "project": entry["project"],
                          "msg": f"project missing: {entry['missing']}"})
                if entry["lines"]:
                    emit({"event": "log", "project": entry["project"], "text": "\n".join(entry["lines"]) + "\n"})
            logs.follow(specs, ctx)
            return {"version": PROTOCOL, "logs": []}
        return {"version": PROTOCOL, "logs": logs.show(specs, int(opts.get("lines", 50)))}

    port = opts.get("port")
    skip_busy = op == "stop-all" and not opts.get("force")
    # One process scan serves every project of the request; each project then
    # re-reads its own pid files under its lock (and looks up live any pid the
    # scan predates).  restart's start looks again, after the stop changed the world.
    scan = look() if op in ("start", "start-all", "stop", "stop-all", "restart") else None
    actions: Dict[str, Callable[[ProjectSpec], List[Result]]] = {
        "bootstrap": lambda s: _bootstrap_locked(s, ctx),
        "start": lambda s: [start.start(s, ctx, port=port, found=scan)],
        "start-all": lambda s: [start.start(s, ctx, found=scan)],
        "stop": lambda s: [stop.stop(s, ctx, timeout=timeout, found=scan)],
        "stop-all": lambda s: [stop.stop(s, ctx, timeout=timeout, skip_busy=skip_busy, found=scan)],
        "restart": lambda s: restart.restart(s, ctx, scan or look(), look,
                                             port=port, timeout=timeout),
        "adopt": lambda s: _adopt_locked(s, ctx, str((opts.get("scripts") or {}).get(s.name, "")),
                                         bool(opts.get("force"))),
    }
    if op not in actions:
        raise RequestError(f"unknown operation {op!r}")
    # What the user wants is recorded for the supervisor (host/runstate.py); --check says nothing.
    layouts = {} if ctx.check else {s.name: Layout.of(s) for s in specs}
    before = runstate.before_user_op(op, layouts)
    results = _each(specs, ctx, 1 if op == "bootstrap" else workers, actions[op], _IF_MISSING[op])
    if op == "stop-all":
        # Everything else of these projects too: untracked servers and kernels whose server is gone.
        # Servers outside every project are not these projects' business unless asked for.
        extra = orphans.kill_orphans(look(), ctx, bool(opts.get("include_unmanaged")),
                                     float(timeout or 10.0), {s.name for s in specs}, sweep_of_projects=True,
                                     unmanaged=opts.get("unmanaged", True) is not False)
        results += extra
    if op == "start" and opts.get("foreground") and len(results) == 1 and results[0].facts.get("pid"):
        if results[0].changed:
            final = start.run_attached(specs[0], ctx, results[0])
            emit({"event": "result", "result": final.to_dict()})
            results.append(final)
    outcomes: Dict[str, List[Tuple[str, str]]] = {}
    for r in results:
        outcomes.setdefault(r.project or "", []).append((r.action, r.status))
    runstate.after_user_op(op, layouts, outcomes, before)
    return _actions(results)
