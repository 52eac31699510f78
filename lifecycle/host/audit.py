"""Audit: how a project differs from the lifecycle conventions, one rule at a time.  Reads only.

Every rule has an id, a one-line description, and per project a status
(``pass``, ``fail``, ``warn``, ``n/a``) with a message, the safe fix
``audit --fix`` applies (``fix``) or, where the fix is not safe to automate,
the exact command or edit to make (``advice``).  Fixes are ``audit_fix.py``'s job.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import psutil

from . import appsh
from .bootstrap import dirs_state, kernel_problem
from .fleet import Survey
from .fsutil import CONFIG_FILE_LIMIT, UnreadableFile, not_a_directory, read_json, read_small
from .identify import handle
from .layout import Layout
from .procs import is_server_proc
from .runtime import find_stale
from .servers import inside, real
from .spec import ProjectSpec
from .tracking import read_pid_file

PASS, FAIL, WARN, NA = "pass", "fail", "warn", "n/a"


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    # "host": judged on the project's host; "inventory": by the controller, from the inventory.
    where: str = "host"


RULES: Tuple[Rule, ...] = (
    Rule("project-dir", "the project directory exists on its host"),
    Rule("dirs", "the isolation dirs exist (.jupyter_config, .jupyter_data, .jupyter_runtime, .ipython, "
                 ".cache/matplotlib) with .logs; .logs and .jupyter_runtime are owner-only"),
    Rule("isolation-env", "the running server uses the isolation dirs: its environment points them into the project"),
    Rule("venv", "the project's venv exists"),
    Rule("kernel", "the project's kernel is registered inside its venv (--sys-prefix) with IPYTHONDIR and "
                   "MPLCONFIGDIR pointing into the project"),
    Rule("user-kernels", "no user-level kernelspec (~/.local/share/jupyter/kernels, .jupyter_data/kernels) "
                         "points at the project's venv"),
    Rule("pid-file", "the pid file is .logs/jupyter.pid (or .run/jupyter.pid), a plain integer naming the "
                     "project's server, and no pid file is kept anywhere else"),
    Rule("port-span", "the port range lies within 1024-65535 and outside the host's ephemeral port range",
         "inventory"),
    Rule("port-overlap", "the port range overlaps no other project's on the same host (projects that inherit "
                         "the default range share it as a pool)", "inventory"),
    Rule("gitignore", ".gitignore lists the isolation dirs, .logs/ and .run/ (and the venv when it is inside "
                      "the project)"),
    Rule("runtime", "no stale runtime files (jpserver-*.json of servers that are gone)"),
    Rule("orphans", "no orphan server or kernel of the project (a server no pid file tracks, kernels whose "
                    "server is gone)"),
    Rule("app-sh", "an app.sh, if the project has one, is scripts/app.sh, implements bootstrap, start "
                   "[--foreground|--no-open|--port N], stop, restart, status, logs [-f], and sets the "
                   "isolation variables before calling Jupyter (--deep: its status runs in a scratch copy)"),
)
RULE_IDS = tuple(r.id for r in RULES)


@dataclass(frozen=True)
class Verdict:
    status: str
    msg: str
    fix: Optional[str] = None
    advice: Optional[str] = None

    def to_dict(self, rule: str) -> Dict[str, Any]:
        return {"id": rule, "status": self.status, "msg": self.msg, "fix": self.fix, "advice": self.advice}


@dataclass(frozen=True)
class Look:
    """What every check of one project reads: its spec, files, the host's processes, the run's options."""

    spec: ProjectSpec
    layout: Layout
    found: Survey
    deep: bool
    template: int

    @property
    def name(self) -> str:
        return self.spec.name


def _rel(layout: Layout, path: Path) -> str:
    try:
        return str(path.relative_to(layout.root))
    except ValueError:
        return str(path)


# -- the checks -----------------------------------------------------------------------------------------

def check_dirs(look: Look) -> Verdict:
    missing, loose = dirs_state(look.layout)
    if not missing and not loose:
        return Verdict(PASS, "all exist; .logs and .jupyter_runtime are owner-only")
    parts = ([f"missing: {', '.join(_rel(look.layout, d) for d in missing)}"] if missing else []) + \
        ([f"not owner-only: {', '.join(_rel(look.layout, d) for d in loose)}"] if loose else [])
    return Verdict(FAIL, "; ".join(parts), fix="create them, owner-only where they can hold the token "
                                              "(bootstrap's dirs step)")


def check_isolation_env(look: Look) -> Verdict:
    server = look.found.tracking[look.name].server
    if server is None:
        return Verdict(NA, "no server running")
    proc = handle(server.proc)
    try:
        env = proc.environ() if proc is not None else None
    except (psutil.Error, OSError):
        env = None
    if env is None:
        return Verdict(WARN, f"cannot read the environment of server pid {server.pid}")
    wrong = [var for var, path in look.layout.isolation_env().items()
             if not env.get(var) or real(env[var]) != real(path)]
    if not wrong:
        return Verdict(PASS, f"server pid {server.pid} runs with the project's isolation dirs")
    return Verdict(FAIL, f"server pid {server.pid} runs without {', '.join(wrong)} pointing into the project",
                   advice=f"jlc restart {look.name} (starts it with the isolation env; its kernels are restarted)")


def check_venv(look: Look) -> Verdict:
    venv = look.layout.venv
    if look.layout.venv_python.exists() and (venv / "pyvenv.cfg").exists():
        return Verdict(PASS, f"{venv}")
    return Verdict(FAIL, f"no venv at {venv}",
                   fix="create it and install the requirements (bootstrap's venv and requirements steps)")


def check_kernel(look: Look) -> Verdict:
    fix = f"register it: ipykernel install --sys-prefix --name {look.spec.kernel_name} (bootstrap's kernel step)"
    if not look.layout.venv_python.exists():
        return Verdict(FAIL, f"no venv at {look.layout.venv}, so no kernel in it", fix=fix)
    why = kernel_problem(look.spec, look.layout)
    if why is None:
        return Verdict(PASS, f"kernel {look.spec.kernel_name!r} registered in {look.layout.kernels_dir}")
    return Verdict(FAIL, why, fix=fix)


def user_kernel_dirs(layout: Layout) -> List[Path]:
    """Where ``ipykernel install --user`` puts kernelspecs (jupyter_core's user data dir), and the
    project's own isolated data dir (``--user`` run with the isolation env)."""
    home = Path(os.path.expanduser("~"))
    data_home = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    dirs = [data_home / "jupyter" / "kernels"]
    if sys.platform == "darwin":
        dirs.append(home / "Library" / "Jupyter" / "kernels")
    if os.environ.get("JUPYTER_DATA_DIR"):
        dirs.append(Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels")
    dirs.append(layout.root / ".jupyter_data" / "kernels")
    return list(dict.fromkeys(dirs))


def user_kernelspecs(layout: Layout) -> List[Path]:
    """User-level kernelspec directories whose interpreter lies in the project's venv."""
    venv = real(str(layout.venv))
    found = []
    for base in user_kernel_dirs(layout):
        try:
            entries = sorted(base.iterdir()) if base.is_dir() else []
        except OSError:
            continue
        for spec_dir in entries:
            try:
                data = read_json(spec_dir / "kernel.json")
            except UnreadableFile:
                continue
            argv = data.get("argv") if isinstance(data, dict) else None
            if not (isinstance(argv, list) and argv and isinstance(argv[0], str) and os.path.isabs(argv[0])):
                continue
            # The interpreter's directory, not the interpreter: a venv's python is a symlink out of the venv.
            if inside(os.path.dirname(argv[0]), venv):
                found.append(spec_dir)
    return found


def _home_short(path: Path) -> str:
    home = os.path.expanduser("~")
    text = str(path)
    return "~" + text[len(home):] if home not in ("", "/") and text.startswith(home + "/") else text


def check_user_kernels(look: Look) -> Verdict:
    found = user_kernelspecs(look.layout)
    if not found:
        return Verdict(PASS, "no user-level kernelspec points at the project's venv")
    return Verdict(FAIL, "user-level kernelspec(s) run the project's venv: " + ", ".join(_home_short(p) for p in found),
                   fix=f"move them into {look.layout.kernels_dir}")


# Pid files other tools keep, looked for where projects usually put them.
_PID_DIRS = (".", ".logs", ".run", "scripts", "run", "tmp", "var")
_JUPYTERISH = ("jupyter", "lab", "notebook")


def stray_pid_files(look: Look, scripts: List[appsh.AppScript]) -> List[str]:
    """Pid files of the project's Jupyter server kept where the conventions do not put them."""
    layout = look.layout
    conventional = {str(p) for p in layout.pid_files}
    out: List[str] = []
    for sub in _PID_DIRS:
        try:
            candidates = sorted((layout.root / sub).glob("*.pid"))
        except OSError:
            continue
        for path in candidates:
            if str(path) in conventional or not path.is_file():
                continue
            pf = read_pid_file(path)
            proc = look.found.snapshot.get(pf.pid) if pf is not None and pf.pid is not None else None
            if any(w in path.name.lower() for w in _JUPYTERISH) or (proc is not None and is_server_proc(proc)):
                out.append(_rel(layout, path))
    for script in scripts:
        for value in appsh.pid_file_paths(script.text):
            if appsh.conventional_pid_path(value) is False:
                out.append(f"{value} (in {_rel(layout, script.path)})")
    return out


def check_pid_file(look: Look, scripts: List[appsh.AppScript]) -> Verdict:
    layout = look.layout
    tracking = look.found.tracking[look.name]
    stale = [f"{_rel(layout, path)}: {why}" for path, why in tracking.stale]
    stray = stray_pid_files(look, scripts)
    if not stale and not stray:
        server = tracking.server
        if server is not None and server.pid_file is not None:
            where = _rel(layout, server.pid_file)
            alt = " (the accepted alternative to .logs/jupyter.pid)" if where.startswith(".run") else ""
            return Verdict(PASS, f"{where}{alt} names the running server pid {server.pid}")
        return Verdict(PASS, "no pid file, and no server running" if server is None
                       else "no pid file (the running server is untracked: see orphans)")
    msgs = [f"stale {s}" for s in stale] + [f"pid file kept at {s}" for s in stray]
    advice = None
    if stray:
        advice = (f"keep the pid file at .logs/jupyter.pid (set PID_FILE=\"$PROJECT_ROOT/.logs/jupyter.pid\" "
                  f"in app.sh, or replace it: jlc adopt {look.name} --force)")
    fix = "remove the stale pid file(s) (what start and stop do)" if stale else None
    return Verdict(FAIL, "; ".join(msgs), fix=fix, advice=advice)


def check_gitignore(look: Look) -> Verdict:
    wanted = [ln.strip() for ln in look.spec.gitignore_block.splitlines() if ln.strip() and not ln.startswith("#")]
    if not wanted:
        return Verdict(NA, "no entries to check")
    path = look.layout.root / ".gitignore"
    try:
        found = read_small(path, CONFIG_FILE_LIMIT)
        text = found.text() if found is not None else ""
    except UnreadableFile as exc:
        return Verdict(FAIL, f".gitignore {exc}", advice=f"fix or remove {path} by hand")
    have = {ln.strip().strip("/").rstrip("/") for ln in text.splitlines()}
    missing = [w for w in wanted if w.strip("/").rstrip("/") not in have]
    if not missing:
        return Verdict(PASS, "lists every managed entry")
    return Verdict(FAIL, f".gitignore lacks {', '.join(missing)}" if found is not None else "no .gitignore",
                   fix="add the managed block (bootstrap's gitignore step)")


def check_runtime(look: Look) -> Verdict:
    stale = find_stale(look.layout.runtime_dir, look.found.snapshot)
    if not stale:
        return Verdict(PASS, "no stale runtime files")
    names = [p.name + (" (server gone)" if pid is not None else " (unreadable)") for p, pid in stale]
    return Verdict(FAIL, f"{len(stale)} stale: {', '.join(names)}",
                   fix="remove them (what start and status do)")


def check_orphans(look: Look) -> Verdict:
    servers = [s for s in look.found.servers if s.tracked_by is None and s.project == look.name]
    kernels = [k for k in look.found.orphan_kernels if k.project == look.name]
    if not servers and not kernels:
        return Verdict(PASS, "no orphan server or kernel")
    parts = [f"server pid {s.pid} (no pid file tracks it)" for s in servers]
    parts += [f"{k.kind} pid {k.proc.pid} (its server is gone)" for k in kernels]
    advice = []
    if servers:
        advice.append(f"jlc start {look.name} adopts the server (writes the pid file)")
    if kernels:
        advice.append(f"jlc stop {look.name} reaps the kernels")
    advice.append(f"or stop them all: jlc orphans --kill --only {look.name}")
    return Verdict(FAIL, "; ".join(parts), advice="; ".join(advice))


def check_app_sh(look: Look, scripts: List[appsh.AppScript], unreadable: List[str]) -> Verdict:
    name = look.name
    if unreadable:
        return Verdict(FAIL, "; ".join(unreadable), advice=f"remove it, then jlc adopt {name}")
    if not scripts:
        return Verdict(NA, f"no app.sh (jlc adopt {name} writes one)")
    script = scripts[0]
    rel = _rel(look.layout, script.path)
    problems: List[str] = []
    if rel != appsh.APP_SH:
        problems.append(f"{rel} is not where the conventions put it ({appsh.APP_SH})")
    gaps = appsh.contract_gaps(script.text)
    if gaps:
        problems.append("does not implement " + ", ".join(gaps))
    problems += appsh.isolation_gaps(script.text)
    deep_note = ""
    if look.deep:
        ok, what = appsh.run_status(script.path, look.layout.root)
        if ok:
            deep_note = f"; {what}"
        else:
            problems.append(what)
    version = script.generated
    if problems:
        advice = (f"jlc adopt {name} regenerates it" if version is not None else
                  f"fix it by hand, or replace it with a generated one: jlc adopt {name} --force "
                  f"(keeps the original as {appsh.APP_SH}.orig)")
        return Verdict(FAIL, f"{rel}: " + "; ".join(problems), advice=advice)
    if version is not None and version < look.template:
        return Verdict(WARN, f"{rel} was generated from template {version}; the current one is {look.template}",
                       advice=f"jlc adopt {name} updates it")
    what = f"generated from template {version}" if version is not None else "hand-written"
    return Verdict(PASS, f"{rel} ({what}) keeps the contract{deep_note}")


def _scripts(layout: Layout) -> Tuple[List[appsh.AppScript], List[str]]:
    scripts, unreadable = [], []
    for path in appsh.find(layout.root):
        try:
            script = appsh.read(path)
        except UnreadableFile as exc:
            unreadable.append(f"{_rel(layout, path)} {exc}")
            continue
        if script is not None:
            scripts.append(script)
    return scripts, unreadable


def check_project(spec: ProjectSpec, found: Survey, host: str, deep: bool = False,
                  template: int = 0) -> Dict[str, Any]:
    """The project's row: every host rule's verdict, in the catalogue's order.  Reads only; never raises
    for one rule's trouble (that rule says so)."""
    layout = Layout.of(spec)
    row: Dict[str, Any] = {"name": spec.name, "host": host, "path": str(layout.root), "rules": []}
    missing = not_a_directory(str(layout.root))
    verdicts: Dict[str, Verdict] = {}
    if missing is not None:
        verdicts["project-dir"] = Verdict(FAIL, f"project missing: {missing}",
                                          advice="clone or restore it there, or fix its path in the inventory")
        for rule in RULES[1:]:
            verdicts[rule.id] = Verdict(NA, "the project directory is missing")
    else:
        look = Look(spec, layout, found, deep, template)
        scripts, unreadable = _scripts(layout)
        checks: Dict[str, Callable[[], Verdict]] = {
            "project-dir": lambda: Verdict(PASS, str(layout.root)),
            "dirs": lambda: check_dirs(look),
            "isolation-env": lambda: check_isolation_env(look),
            "venv": lambda: check_venv(look),
            "kernel": lambda: check_kernel(look),
            "user-kernels": lambda: check_user_kernels(look),
            "pid-file": lambda: check_pid_file(look, scripts),
            "gitignore": lambda: check_gitignore(look),
            "runtime": lambda: check_runtime(look),
            "orphans": lambda: check_orphans(look),
            "app-sh": lambda: check_app_sh(look, scripts, unreadable),
        }
        for rule_id, check in checks.items():
            try:
                verdicts[rule_id] = check()
            except Exception as exc:  # one rule's trouble must not hide the others
                verdicts[rule_id] = Verdict(WARN, f"could not check: {type(exc).__name__}: {exc}")
    row["rules"] = [verdicts[r.id].to_dict(r.id) for r in RULES if r.where == "host"]
    return row


def ephemeral_ports() -> Optional[List[int]]:
    """The host's ephemeral port range (where outgoing connections get their local port), if known."""
    try:
        small = read_small(Path("/proc/sys/net/ipv4/ip_local_port_range"))
    except UnreadableFile:
        return None
    if small is None:
        return None
    parts = small.data.decode("ascii", "replace").split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return [int(parts[0]), int(parts[1])]
    return None
