"""The host layer's single entry point: one request dict in, one response dict out.

The same function serves the local in-process transport and the remote JSON
entry point (``python -m lifecycle.host``), so both behave identically.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List

from . import bootstrap, logs, start, status, stop
from .context import Emit, OpContext
from .results import FAILED, Result
from .spec import ProjectSpec

PROTOCOL = 1
# Starts and stops wait on sockets and sleeps, not CPU: run several at once.
# Bootstraps run one at a time (projects may share a venv, and pip is heavy).
MAX_WORKERS = 8


class RequestError(Exception):
    pass


def _each(specs: List[ProjectSpec], ctx: OpContext, parallel: bool,
          fn: Callable[[ProjectSpec], List[Result]]) -> List[Result]:
    def guarded(spec: ProjectSpec) -> List[Result]:
        try:
            results = fn(spec)
        except Exception as exc:  # one project's crash must not hide the others' results
            results = [ctx.result(spec.name, "error", FAILED, f"{type(exc).__name__}: {exc}")]
        for r in results:
            ctx.emit({"event": "result", "result": r.to_dict()})
        return results

    if parallel and len(specs) > 1:
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(specs))) as pool:
            batches = list(pool.map(guarded, specs))
    else:
        batches = [guarded(s) for s in specs]
    return [r for batch in batches for r in batch]


def handle(request: Dict[str, Any], emit: Emit = lambda e: None) -> Dict[str, Any]:
    if request.get("version") != PROTOCOL:
        raise RequestError(f"unsupported protocol version {request.get('version')!r} (this host speaks {PROTOCOL})")
    op = request.get("op")
    opts: Dict[str, Any] = dict(request.get("options") or {})
    ctx = OpContext(host=request.get("host", "local"), check=bool(opts.get("check")), emit=emit)
    specs = [ProjectSpec.from_dict(d) for d in request.get("projects", [])]

    if op == "status":
        roots = {name: os.path.abspath(os.path.expanduser(path))
                 for name, path in (request.get("roots") or {}).items()}
        return status.status(specs, ctx, roots, show_token=bool(opts.get("show_token")))
    if op == "logs":
        if opts.get("follow"):
            # Like tail -f: the last lines first, then whatever is written next.
            for entry in logs.show(specs, int(opts.get("lines", 50))):
                if entry["lines"]:
                    emit({"event": "log", "project": entry["project"], "text": "\n".join(entry["lines"]) + "\n"})
            logs.follow(specs, ctx)
            return {"version": PROTOCOL, "logs": []}
        return {"version": PROTOCOL, "logs": logs.show(specs, int(opts.get("lines", 50)))}

    port = opts.get("port")
    timeout = opts.get("timeout")
    actions: Dict[str, Callable[[ProjectSpec], List[Result]]] = {
        "bootstrap": lambda s: bootstrap.bootstrap(s, ctx),
        "start": lambda s: [start.start(s, ctx, port=port)],
        "stop": lambda s: [stop.stop(s, ctx, timeout=timeout)],
        "restart": lambda s: [stop.stop(s, ctx, timeout=timeout), start.start(s, ctx, port=port)],
    }
    if op not in actions:
        raise RequestError(f"unknown operation {op!r}")
    results = _each(specs, ctx, parallel=op != "bootstrap", fn=actions[op])
    if op == "start" and opts.get("foreground") and len(results) == 1 and results[0].facts.get("pid"):
        if results[0].changed:
            final = start.run_attached(specs[0], ctx, results[0])
            emit({"event": "result", "result": final.to_dict()})
            results.append(final)
    return {"version": PROTOCOL, "results": [r.to_dict() for r in results]}
