"""The audit operation: judge every selected project, and with ``fix`` apply the safe fixes first.

Safe fixes are the ones that cannot lose anything: bootstrap's steps (dirs,
.gitignore block, venv and requirements, kernel), moving a user-level
kernelspec into the venv, removing stale pid files and runtime files.  Each
is an ordinary result (``changed``, or ``would ...`` in check mode).  Rewriting
a hand-written app.sh, reassigning a port range or stopping processes is
left to the user, with the exact command or edit in the rule's ``advice``.
"""

from __future__ import annotations

import shutil
import time
from typing import Any, Dict, List, Optional, Tuple

from . import bootstrap
from .audit import FAIL, check_project, ephemeral_ports, user_kernelspecs
from .context import OpContext
from .fleet import Survey, survey
from .identify import find_server
from .layout import Layout
from .lock import LockTimeout, project_lock, venv_lock
from .results import CHANGED, FAILED, OK, SKIPPED, Result
from .runtime import clean_stale, find_stale
from .spec import ProjectSpec
from .tracking import remove_stale

# Fixes may create a venv and run pip: wait as long as bootstrap does for another run.
LOCK_WAIT = 1800.0
# The fixes' results, and the project's row after them.
Fixed = Tuple[List[Result], Dict[str, Any]]


def _failing(row: Dict[str, Any]) -> List[str]:
    return [r["id"] for r in row["rules"] if r["status"] == FAIL and r.get("fix")]


def move_user_kernels(spec: ProjectSpec, layout: Layout, ctx: OpContext) -> Result:
    """Move user-level kernelspecs that run the project's venv into the venv.

    A kernelspec whose name the venv already has is moved to .logs/user-kernelspecs
    instead (kept, not deleted: it is the user's file).
    """
    found = user_kernelspecs(layout)
    if not found:
        return ctx.result(spec.name, "user-kernels", OK, "no user-level kernelspec points at the venv")
    moves = []
    for src in found:
        dest = layout.kernels_dir / src.name
        if dest.exists():
            dest = layout.logs_dir / "user-kernelspecs" / f"{src.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        moves.append((src, dest))
    said = "; ".join(f"{s} -> {d}" for s, d in moves)
    if ctx.check:
        return ctx.result(spec.name, "user-kernels", CHANGED, f"would move {said}")
    done = []
    for src, dest in moves:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dest))
        except OSError as exc:
            return ctx.result(spec.name, "user-kernels", FAILED, f"cannot move {src} to {dest}: {exc.strerror or exc}")
        done.append(f"{src} -> {dest}")
    return ctx.result(spec.name, "user-kernels", CHANGED, "moved " + "; ".join(done),
                      diff={"before": [str(s) for s, _ in moves], "after": [str(d) for _, d in moves]})


def remove_stale_pid_files(spec: ProjectSpec, layout: Layout, found: Survey, ctx: OpContext) -> Result:
    # Judged afresh from the files (under the lock): a start since the survey may have written a good one.
    tracking = find_server(layout, found.snapshot)
    if not tracking.stale:
        return ctx.result(spec.name, "pid-file", OK, "no stale pid file")
    what = "; ".join(f"{p.relative_to(layout.root)} ({why})" for p, why in tracking.stale)
    if ctx.check:
        return ctx.result(spec.name, "pid-file", CHANGED, f"would remove stale {what}")
    problems: List[str] = []
    removed = remove_stale(layout, {p: tracking.raw[p] for p, _ in tracking.stale}, problems)
    if problems:
        return ctx.result(spec.name, "pid-file", FAILED, "; ".join(problems))
    return ctx.result(spec.name, "pid-file", CHANGED, f"removed stale {what}",
                      diff={"before": removed, "after": []})


def remove_stale_runtime(spec: ProjectSpec, layout: Layout, found: Survey, ctx: OpContext) -> Result:
    stale = find_stale(layout.runtime_dir, found.snapshot)
    if not stale:
        return ctx.result(spec.name, "runtime", OK, "no stale runtime files")
    names = [p.name for p, _ in stale]
    if ctx.check:
        return ctx.result(spec.name, "runtime", CHANGED, f"would remove {', '.join(names)}")
    problems: List[str] = []
    removed = clean_stale(layout.runtime_dir, found.snapshot, problems)
    if problems:
        return ctx.result(spec.name, "runtime", FAILED, "; ".join(problems))
    return ctx.result(spec.name, "runtime", CHANGED, f"removed {', '.join(removed)}",
                      diff={"before": removed, "after": []})


def _venv_steps(spec: ProjectSpec, layout: Layout, ctx: OpContext, kernel: bool) -> List[Result]:
    """Bootstrap's venv and requirements steps when there is no venv, then (if asked) its kernel
    step, under the venv's lock (several projects may share one)."""
    def run() -> List[Result]:
        out: List[Result] = []
        if not (layout.venv_python.exists() and (layout.venv / "pyvenv.cfg").exists()):
            venv = bootstrap.ensure_venv(spec, layout, ctx)
            out.append(venv)
            if ctx.check:
                out.append(ctx.result(spec.name, "requirements", CHANGED, "would install requirements"))
                if kernel:
                    out.append(ctx.result(spec.name, "kernel", CHANGED,
                                          f"would register kernel {spec.kernel_name!r}"))
                return out
            out.append(bootstrap.ensure_requirements(spec, layout, ctx) if not venv.failed else
                       ctx.result(spec.name, "requirements", SKIPPED, "skipped: an earlier step failed"))
        if kernel:
            out.append(bootstrap.ensure_kernel(spec, layout, ctx) if not (out and out[-1].failed) else
                       ctx.result(spec.name, "kernel", SKIPPED, "skipped: an earlier step failed"))
        return out

    if ctx.check:
        return run()
    with venv_lock(layout, LOCK_WAIT, lambda m: ctx.progress(spec.name, m)):
        return run()


def apply_fixes(spec: ProjectSpec, layout: Layout, found: Survey, row: Dict[str, Any],
                ctx: OpContext) -> List[Result]:
    """The safe fixes for the rules that fail in ``row``, in dependency order."""
    failing = set(_failing(row))
    results: List[Result] = []
    if "dirs" in failing:
        results.append(bootstrap.ensure_dirs(spec, layout, ctx))
    if "gitignore" in failing:
        results.append(bootstrap.ensure_gitignore(spec, layout, ctx))
    if "user-kernels" in failing:
        results.append(move_user_kernels(spec, layout, ctx))
    if "venv" in failing or "kernel" in failing:
        results += _venv_steps(spec, layout, ctx, kernel="kernel" in failing or "user-kernels" in failing)
    if "pid-file" in failing:
        results.append(remove_stale_pid_files(spec, layout, found, ctx))
    if "runtime" in failing:
        results.append(remove_stale_runtime(spec, layout, found, ctx))
    return results


def _fix_project(spec: ProjectSpec, known: List[ProjectSpec], ctx: OpContext, deep: bool,
                 template: int) -> Fixed:
    layout = Layout.of(spec)
    found = survey(known)
    before = check_project(spec, found, ctx.host, deep=False, template=template)
    results = apply_fixes(spec, layout, found, before, ctx)
    if ctx.check or not any(r.changed for r in results):
        after = check_project(spec, found, ctx.host, deep=deep, template=template) if deep else before
    else:
        after = check_project(spec, survey(known), ctx.host, deep=deep, template=template)
    return results, after


def fix_project(spec: ProjectSpec, known: List[ProjectSpec], ctx: OpContext, deep: bool,
                template: int) -> Fixed:
    """(results of the fixes, the project's row after them).  Holds the project's lock from the
    look to the last look, unless in check mode (which changes nothing)."""
    layout = Layout.of(spec)
    if ctx.check or not layout.root.is_dir():
        return _fix_project(spec, known, ctx, deep, template)
    try:
        with project_lock(layout, LOCK_WAIT, lambda m: ctx.progress(spec.name, m)):
            return _fix_project(spec, known, ctx, deep, template)
    except LockTimeout as exc:
        row = check_project(spec, survey(known), ctx.host, deep=deep, template=template)
        return [ctx.result(spec.name, "audit", FAILED, str(exc))], row


def run(specs: List[ProjectSpec], known: List[ProjectSpec], ctx: OpContext,
        options: Dict[str, Any]) -> Dict[str, Any]:
    """The audit request: rows for every project (and, with ``fix``, the fixes' results)."""
    deep = bool(options.get("deep"))
    template = int(options.get("template") or 0)
    rows: List[Dict[str, Any]] = []
    results: List[Result] = []
    found: Optional[Survey] = None if options.get("fix") else survey(known)
    for spec in specs:
        if found is None:
            try:
                done, row = fix_project(spec, known, ctx, deep, template)
            except Exception as exc:  # one project's crash must not hide the others'
                done = [ctx.result(spec.name, "audit", FAILED, f"{type(exc).__name__}: {exc}")]
                row = check_project(spec, survey(known), ctx.host, deep=deep, template=template)
            for r in done:
                ctx.emit({"event": "result", "result": r.to_dict()})
            results += done
        else:
            row = check_project(spec, found, ctx.host, deep=deep, template=template)
        rows.append(row)
    return {"version": 1, "projects": rows, "results": [r.to_dict() for r in results],
            "ephemeral_ports": ephemeral_ports()}

