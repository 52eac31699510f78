"""Bootstrap: venv, requirements, kernel, isolation dirs, .gitignore block.

Each ``ensure_*`` step looks first and acts only when the world differs from
what is wanted, so a second bootstrap changes nothing and runs no pip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .context import OpContext, interrupt_held
from .fsutil import (
    CONFIG_FILE_LIMIT,
    UnreadableFile,
    open_append,
    private_dir,
    read_json,
    read_small,
    tail_lines,
    write_atomic,
)
from .layout import Layout
from .results import CHANGED, FAILED, OK, SKIPPED, Result
from .spec import ProjectSpec

STAMP = "jupyter-lifecycle-stamp.json"
BLOCK_BEGIN = "# BEGIN jupyter-lifecycle (managed block: edits inside are replaced)"
BLOCK_END = "# END jupyter-lifecycle"
LOG_TAIL = 20
# Hashed lock files can be large; anything past this is not a requirements file.
REQUIREMENTS_LIMIT = 16 * 1024 * 1024


def _run_logged(cmd: List[str], layout: Layout, ctx: OpContext, project: str, what: str,
                cwd: Optional[Path] = None) -> int:
    """Run a command with its output appended to the bootstrap log; report elapsed time as it runs.

    It gets the project's isolation environment, so no Jupyter or IPython state lands in HOME.
    """
    log = layout.bootstrap_log
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open_append(log) as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc: Optional["subprocess.Popen[bytes]"] = None
        try:
            with interrupt_held():
                proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=str(cwd) if cwd else None, env=layout.isolated_env())
            while True:
                try:
                    return proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    ctx.progress(project, f"{what} ({time.monotonic() - started:.0f}s, log: {log})")
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.wait()
            raise


def _failure(ctx: OpContext, spec: ProjectSpec, action: str, why: str, log: Path) -> Result:
    tail = "\n".join(tail_lines(log, LOG_TAIL))
    return ctx.result(spec.name, action, FAILED, f"{why}; last lines of {log}:\n{tail}")


def ensure_venv(spec: ProjectSpec, layout: Layout, ctx: OpContext) -> Result:
    if layout.venv_python.exists() and (layout.venv / "pyvenv.cfg").exists():
        return ctx.result(spec.name, "venv", OK, f"{layout.venv} exists")
    if ctx.check:
        return ctx.result(spec.name, "venv", CHANGED, f"would create {layout.venv} with {spec.python}")
    python = shutil.which(spec.python)
    if python is None:
        return ctx.result(spec.name, "venv", FAILED, f"interpreter {spec.python!r} not found on PATH")
    code = _run_logged([python, "-m", "venv", str(layout.venv)], layout, ctx, spec.name, "creating venv")
    if code != 0:
        return _failure(ctx, spec, "venv", f"creating {layout.venv} failed (exit {code})", layout.bootstrap_log)
    return ctx.result(spec.name, "venv", CHANGED, f"created {layout.venv}",
                      diff={"before": {"venv": None}, "after": {"venv": str(layout.venv)}})


def requirement_files(spec: ProjectSpec, layout: Layout) -> List[Path]:
    """The configured requirements file, then the project's requirements.txt when it exists."""
    files = []
    if spec.requirements_file:
        req = Path(spec.requirements_file).expanduser()
        files.append(req if req.is_absolute() else layout.root / req)
    default = layout.root / "requirements.txt"
    if os.path.lexists(default) and default not in files:
        files.append(default)
    return files


def requirement_args(spec: ProjectSpec, layout: Layout) -> List[str]:
    """pip arguments: the listed specs, the configured file, and the project's requirements.txt."""
    args = list(spec.requirements)
    for f in requirement_files(spec, layout):
        args += ["-r", str(f)]
    return args


def _unusable_requirements(spec: ProjectSpec, layout: Layout) -> Optional[str]:
    """Why a requirements file cannot be given to pip (missing, a FIFO pip would hang on, ...)."""
    for f in requirement_files(spec, layout):
        try:
            if read_small(f, REQUIREMENTS_LIMIT) is None:
                return f"requirements file {f} does not exist"
        except UnreadableFile as exc:
            return f"requirements file {f} {exc}"
    return None


def _fingerprint(layout: Layout, args: List[str]) -> Dict[str, str]:
    """What must stay the same for a previous install to still count."""
    digest = hashlib.sha256()
    for arg in args:
        digest.update(arg.encode() + b"\0")
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "-r":
            try:
                req = read_small(Path(arg), REQUIREMENTS_LIMIT)
            except UnreadableFile:
                req = None
            digest.update(req.data if req is not None else b"<missing>")
    try:
        cfg = read_small(layout.venv / "pyvenv.cfg")
    except UnreadableFile:
        cfg = None
    interp = cfg.data.decode("utf-8", "replace") if cfg is not None else ""
    return {"requirements": digest.hexdigest(), "interpreter": hashlib.sha256(interp.encode()).hexdigest()}


def _read_stamp(layout: Layout) -> Dict[str, Any]:
    try:
        data = read_json(layout.venv / STAMP)
    except UnreadableFile:
        return {}
    return data if isinstance(data, dict) else {}


def ensure_requirements(spec: ProjectSpec, layout: Layout, ctx: OpContext) -> Result:
    """Install requirements unless the venv's stamp says this exact set is already in."""
    args = requirement_args(spec, layout)
    if not args:
        return ctx.result(spec.name, "requirements", SKIPPED, "no requirements")
    unusable = _unusable_requirements(spec, layout)
    if unusable:
        return ctx.result(spec.name, "requirements", FAILED, unusable)
    fp = _fingerprint(layout, args)
    stamp = _read_stamp(layout)
    # A shared venv may serve several projects with different requirements.
    satisfied = stamp.get("satisfied", []) if stamp.get("interpreter") == fp["interpreter"] else []
    if fp["requirements"] in satisfied:
        return ctx.result(spec.name, "requirements", OK, "requirements already installed")
    if ctx.check:
        return ctx.result(spec.name, "requirements", CHANGED, "would pip install " + " ".join(args))
    code = _run_logged([str(layout.venv_python), "-m", "pip", "install", "--disable-pip-version-check", *args],
                       layout, ctx, spec.name, "installing requirements", cwd=layout.root)
    if code != 0:
        return _failure(ctx, spec, "requirements", f"pip install failed (exit {code})", layout.bootstrap_log)
    new_stamp = {"interpreter": fp["interpreter"], "satisfied": sorted(set(satisfied) | {fp["requirements"]})}
    write_atomic(layout.venv / STAMP, json.dumps(new_stamp, indent=2) + "\n")
    installed = [ln for ln in tail_lines(layout.bootstrap_log, 40) if ln.startswith("Successfully installed")]
    if installed:
        packages = installed[-1].split()[2:]
        return ctx.result(spec.name, "requirements", CHANGED,
                          f"installed {len(packages)} package{'s' if len(packages) != 1 else ''} "
                          f"for {' '.join(args)} (list in {layout.bootstrap_log})",
                          diff={"before": {}, "after": {"installed": packages}})
    return ctx.result(spec.name, "requirements", OK, "requirements already satisfied (stamp written)")


def _kernel_wanted(spec: ProjectSpec, layout: Layout) -> Dict[str, Any]:
    env = layout.isolation_env()
    return {"display_name": spec.display_name or spec.name,
            "env": {"IPYTHONDIR": env["IPYTHONDIR"], "MPLCONFIGDIR": env["MPLCONFIGDIR"]}}


def kernel_json(spec: ProjectSpec, layout: Layout) -> Path:
    return layout.kernels_dir / spec.kernel_name / "kernel.json"


def kernel_problem(spec: ProjectSpec, layout: Layout) -> Optional[str]:
    """Why the project's kernel is not registered as bootstrap registers it, or None when it is."""
    path = kernel_json(spec, layout)
    wanted = _kernel_wanted(spec, layout)
    try:
        current = read_json(path)
    except UnreadableFile as exc:
        return f"{path} {exc}"
    if current is None:
        return f"no kernel {spec.kernel_name!r} in {layout.kernels_dir}"
    if not isinstance(current, dict):
        return f"{path} is not a kernel spec"
    argv = current.get("argv") or [""]
    env = current.get("env") or {}
    if not (isinstance(argv, list) and argv and isinstance(argv[0], str)) or not isinstance(env, dict):
        return f"{path} is not a kernel spec"
    if Path(argv[0]).parent != layout.venv_python.parent:
        return f"kernel {spec.kernel_name!r} runs {argv[0]}, not the venv's python"
    wrong = [k for k, v in wanted["env"].items() if env.get(k) != v]
    if wrong:
        return f"kernel {spec.kernel_name!r} does not set {' and '.join(wrong)} to the project's directories"
    if current.get("display_name") != wanted["display_name"]:
        return f"kernel {spec.kernel_name!r} is displayed as {current.get('display_name')!r}, " \
               f"not {wanted['display_name']!r}"
    return None


def ensure_kernel(spec: ProjectSpec, layout: Layout, ctx: OpContext) -> Result:
    """Register the project's kernel inside the venv (--sys-prefix), with the isolation env."""
    wanted = _kernel_wanted(spec, layout)
    try:
        current = read_json(kernel_json(spec, layout))
    except UnreadableFile:
        current = None
    if kernel_problem(spec, layout) is None:
        return ctx.result(spec.name, "kernel", OK, f"kernel {spec.kernel_name!r} registered")
    if ctx.check:
        return ctx.result(spec.name, "kernel", CHANGED, f"would register kernel {spec.kernel_name!r}")
    cmd = [str(layout.venv_python), "-m", "ipykernel", "install", "--sys-prefix",
           "--name", spec.kernel_name, "--display-name", wanted["display_name"]]
    for key, value in wanted["env"].items():
        cmd += ["--env", key, value]
    code = _run_logged(cmd, layout, ctx, spec.name, "registering kernel")
    if code != 0:
        return _failure(ctx, spec, "kernel", f"kernel registration failed (exit {code})", layout.bootstrap_log)
    return ctx.result(spec.name, "kernel", CHANGED, f"registered kernel {spec.kernel_name!r} in {layout.venv}",
                      diff={"before": current, "after": wanted})


def dirs_state(layout: Layout) -> Tuple[List[Path], List[Path]]:
    """The isolation dirs (and .logs) that are missing, and the private ones that are not owner-only."""
    wanted = [layout.logs_dir] + layout.isolation_dirs
    private = [layout.logs_dir, layout.runtime_dir]
    missing = [d for d in wanted if not d.is_dir()]
    loose = [d for d in private if d.is_dir() and d.stat().st_mode & 0o077]
    return missing, loose


def ensure_dirs(spec: ProjectSpec, layout: Layout, ctx: OpContext) -> Result:
    """Isolation dirs exist; .logs and the runtime dir (pid file, log, runtime files: all can
    carry the token) are owner-only."""
    private = [layout.logs_dir, layout.runtime_dir]
    missing, loose = dirs_state(layout)
    if not missing and not loose:
        return ctx.result(spec.name, "dirs", OK, "isolation dirs exist")
    names = [str(d.relative_to(layout.root)) for d in missing]
    tightened = [str(d.relative_to(layout.root)) for d in loose]
    what = (["create " + ", ".join(names)] if names else []) + (["make " + ", ".join(tightened) + " private"]
                                                                 if tightened else [])
    if ctx.check:
        return ctx.result(spec.name, "dirs", CHANGED, "would " + "; ".join(what))
    for d in missing:
        d.mkdir(parents=True, exist_ok=True)
    for d in private:
        private_dir(d)
    done = "; ".join(what).replace("create ", "created ", 1).replace("make ", "made ", 1)
    return ctx.result(spec.name, "dirs", CHANGED, done,
                      diff={"before": {"missing": names, "not_private": tightened},
                            "after": {"missing": [], "not_private": []}})


def with_block(text: str, block: str) -> str:
    """``text`` with our managed block set to ``block``; the user's own lines untouched."""
    lines = text.splitlines()
    body = [BLOCK_BEGIN] + block.strip("\n").splitlines() + [BLOCK_END]
    if BLOCK_BEGIN in lines and BLOCK_END in lines[lines.index(BLOCK_BEGIN):]:
        start = lines.index(BLOCK_BEGIN)
        end = lines.index(BLOCK_END, start)
        lines[start:end + 1] = body
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += body
    return "\n".join(lines) + "\n"


def ensure_gitignore(spec: ProjectSpec, layout: Layout, ctx: OpContext) -> Result:
    if not spec.gitignore_block:
        return ctx.result(spec.name, "gitignore", SKIPPED, "no block to manage")
    path = layout.root / ".gitignore"
    try:
        found = read_small(path, CONFIG_FILE_LIMIT)
        before = found.text() if found is not None else ""
    except UnreadableFile as exc:
        return ctx.result(spec.name, "gitignore", FAILED, f"{path} {exc}; fix or remove it by hand")
    after = with_block(before, spec.gitignore_block)
    if after == before:
        return ctx.result(spec.name, "gitignore", OK, ".gitignore block up to date")
    diff = {"before": before, "after": after}
    if ctx.check:
        return ctx.result(spec.name, "gitignore", CHANGED, "would update the managed block in .gitignore", diff=diff)
    write_atomic(path, after)
    return ctx.result(spec.name, "gitignore", CHANGED, "updated the managed block in .gitignore", diff=diff)


def bootstrap(spec: ProjectSpec, ctx: OpContext) -> List[Result]:
    """All bootstrap steps in order; a failed step skips the ones that need it.

    Each step's result is emitted as the step ends (pip can take minutes), and
    each step announces itself as it begins, so Ctrl-C can name the one it cut.
    """
    layout = Layout.of(spec)
    results: List[Result] = []

    def step(action: str, run: Callable[[], Result]) -> Result:
        ctx.begin(spec.name, action)
        results.append(ctx.done(run()))
        return results[-1]

    step("dirs", lambda: ensure_dirs(spec, layout, ctx))
    step("gitignore", lambda: ensure_gitignore(spec, layout, ctx))
    venv = step("venv", lambda: ensure_venv(spec, layout, ctx))
    for ensure in (ensure_requirements, ensure_kernel):
        action = ensure.__name__.replace("ensure_", "")
        ctx.begin(spec.name, action)
        if results[-1].failed:
            result = ctx.result(spec.name, action, SKIPPED, "skipped: an earlier step failed")
        elif ctx.check and venv.changed:
            # Nothing to inspect yet: report what a real run would do.
            what = "install requirements" if ensure is ensure_requirements else f"register kernel {spec.kernel_name!r}"
            result = ctx.result(spec.name, action, CHANGED, "would " + what)
        else:
            result = ensure(spec, layout, ctx)
        results.append(ctx.done(result))
    return results
