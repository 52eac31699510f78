"""Handing the supervisor to the host's own service manager: a systemd user unit or a launchd agent.

The controller renders the files (jinja2 templates); this side, on the host, finds the manager and
where its files go (``probe``), makes the files have exactly that content (``install``: ``ok`` when
they already do, a diff with ``--check``), enables and (re)starts the service when the manager is
running, and removes exactly what it wrote (``uninstall``): the files it wrote, each only while it
still carries our marker, and the directories it had to create, each only if empty.  What it wrote
is recorded in ``service.json`` in the state dir.

The manager is systemd when systemd runs the host (``/run/systemd/system`` exists), launchd on
macOS, else none; ``JLC_SERVICE_MANAGER`` (systemd, launchd, none) overrides the choice, e.g. to
write a unit on a machine where systemd is installed but not running.
"""

from __future__ import annotations

import difflib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .context import OpContext
from .fsutil import UnreadableFile, private_dir, read_json, read_small, remove, write_atomic
from .ports import state_dir
from .results import CHANGED, FAILED, OK, SKIPPED, Result

UNIT = "jupyter-lifecycle.service"
LABEL = "org.jupyter-lifecycle.supervise"
MARKER = "Written by jupyter-lifecycle"
COMMANDS = ("jupyter-lifecycle", "jlc")
# What result lines name: "changed: [local] supervisor: unit: wrote ..."
SUPERVISOR = "supervisor"


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def manager() -> Tuple[str, bool]:
    """(systemd | launchd | none, whether it runs here and can be asked to start things)."""
    forced = os.environ.get("JLC_SERVICE_MANAGER", "").strip().lower()
    running_systemd = os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None
    running_launchd = sys.platform == "darwin" and shutil.which("launchctl") is not None
    if forced in ("systemd", "launchd", "none"):
        return forced, {"systemd": running_systemd, "launchd": running_launchd}.get(forced, False)
    if running_systemd:
        return "systemd", True
    if running_launchd:
        return "launchd", True
    return "none", False


def paths(kind: str) -> Dict[str, str]:
    """Where the manager's files go for this user."""
    if kind == "systemd":
        config = Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config")
        unit_dir = config / "systemd" / "user"
        return {"unit": str(unit_dir / UNIT), "wants": str(unit_dir / "default.target.wants" / UNIT)}
    if kind == "launchd":
        return {"unit": str(_home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"),
                "log": str(_home() / "Library" / "Logs" / "jupyter-lifecycle" / "supervise.log")}
    return {}


def find_command(extra_dirs: List[str]) -> Optional[str]:
    """The installed command's absolute path on this host: beside this interpreter, on PATH, or in
    ~/.local/bin (where pip --user and pipx put it; non-interactive SSH sessions may not have it on PATH)."""
    dirs = [os.path.dirname(sys.executable)] + extra_dirs + os.environ.get("PATH", "").split(os.pathsep)
    dirs.append(str(_home() / ".local" / "bin"))
    for d in dirs:
        for name in COMMANDS:
            candidate = os.path.join(d, name)
            if d and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
    return None


def probe(opts: Dict[str, Any]) -> Dict[str, Any]:
    """What the controller needs to render the files for this host."""
    kind, running = manager()
    inventory = opts.get("inventory")
    inventory_path = os.path.abspath(os.path.expanduser(str(inventory))) if inventory else None
    return {
        "version": 1, "platform": platform.system(), "manager": kind, "running": running,
        "paths": paths(kind), "home": str(_home()), "user": _user(),
        "command": find_command([str(d) for d in opts.get("search") or []]),
        "inventory": inventory_path,
        "inventory_exists": inventory_path is not None and os.path.isfile(inventory_path),
        "linger": _linger() if kind == "systemd" else None,
    }


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "")


def _linger() -> Optional[bool]:
    """Whether the user's systemd instance outlives their sessions (runs from boot); None: unknown."""
    user = _user()
    if user and os.path.exists(f"/var/lib/systemd/linger/{user}"):
        return True
    return False if os.path.isdir("/var/lib/systemd") else None


def _manifest() -> Path:
    return state_dir() / "service.json"


def _read_manifest() -> Dict[str, Any]:
    try:
        data = read_json(_manifest())
    except UnreadableFile:
        return {}
    return data if isinstance(data, dict) else {}


def _current(path: Path) -> Optional[str]:
    try:
        small = read_small(path)
        return None if small is None else small.text()
    except UnreadableFile:
        return None


def _run(argv: List[str], timeout: float = 30.0) -> Tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def _created_dirs(path: Path) -> List[str]:
    """The missing ancestors of ``path`` that creating it will create (outermost first)."""
    missing = []
    d = path.parent
    while not d.exists():
        missing.append(str(d))
        d = d.parent
    return list(reversed(missing))


def install(ctx: OpContext, opts: Dict[str, Any]) -> List[Result]:
    """Make the manager's files hold ``opts["files"]`` ({path: content}), enable and start the service."""
    kind, running = manager()
    files: Dict[str, str] = dict(opts.get("files") or {})
    results = []
    manifest = _read_manifest()
    wrote: List[str] = list(manifest.get("files") or [])
    made: List[str] = list(manifest.get("dirs") or [])
    changed_unit = False
    for target, content in files.items():
        path = Path(target)
        before = _current(path)
        if before == content:
            results.append(ctx.result(SUPERVISOR, "unit", OK, f"{path} is up to date"))
            continue
        if before is not None and MARKER not in before:
            results.append(ctx.result(SUPERVISOR, "unit", FAILED, f"{path} exists and was not written by "
                                      "jupyter-lifecycle; left alone (move it away to install)"))
            return results
        diff = "".join(difflib.unified_diff((before or "").splitlines(True), content.splitlines(True),
                                            str(path), str(path)))
        if ctx.check:
            what = f"would write {path}" + (f"\n{diff.rstrip()}" if before is not None else " (new)")
            results.append(ctx.result(SUPERVISOR, "unit", CHANGED, what, diff={"before": before, "after": content}))
            continue
        made += [d for d in _created_dirs(path) if d not in made]
        write_atomic(path, content, mode=0o644)
        wrote += [str(path)] if str(path) not in wrote else []
        changed_unit = True
        results.append(ctx.result(SUPERVISOR, "unit", CHANGED, f"wrote {path}",
                                  diff={"before": before, "after": content}))
    log = opts.get("log_dir")
    if log and not ctx.check and not os.path.isdir(str(log)):
        # launchd opens StandardOutPath itself but does not create its directory.
        made += [d for d in _created_dirs(Path(str(log)) / "x") if d not in made]
        private_dir(Path(str(log)))
    if kind == "systemd":
        results.append(_enable(ctx, Path(paths(kind)["wants"]), wrote, made))
    if not ctx.check:
        made += [d for d in _created_dirs(_manifest()) if d not in made]
        private_dir(_manifest().parent)
        write_atomic(_manifest(), json.dumps({"files": wrote, "dirs": made}, indent=2) + "\n", mode=0o600)
    results.append(_activate(ctx, kind, running, changed_unit, opts))
    if kind == "systemd":
        results.append(_linger_step(ctx, bool(opts.get("linger")), bool(opts.get("remote"))))
    return results


def _enable(ctx: OpContext, wants: Path, wrote: List[str], made: List[str]) -> Result:
    """What ``systemctl --user enable`` does for WantedBy=default.target, without needing the manager."""
    target = os.path.join("..", UNIT)
    if os.path.islink(wants) and os.readlink(wants) == target:
        return ctx.result(SUPERVISOR, "enable", OK, f"enabled ({wants})")
    if os.path.lexists(wants):
        return ctx.result(SUPERVISOR, "enable", OK, f"already enabled by another link at {wants}; left alone")
    if ctx.check:
        return ctx.result(SUPERVISOR, "enable", CHANGED, f"would link {wants} -> {target}")
    made += [d for d in _created_dirs(wants) if d not in made]
    wants.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, wants)
    wrote.append(str(wants))
    return ctx.result(SUPERVISOR, "enable", CHANGED, f"linked {wants} -> {target} (starts with your systemd session)")


def _activate(ctx: OpContext, kind: str, running: bool, changed: bool, opts: Dict[str, Any]) -> Result:
    if not running:
        return ctx.result(SUPERVISOR, "activate", SKIPPED, f"{kind} is not running on this host: the supervisor starts "
                          "when it does (at the next boot or login)")
    if kind == "systemd":
        active = _run(["systemctl", "--user", "is-active", UNIT])[0] == 0
        if active and not changed:
            return ctx.result(SUPERVISOR, "activate", OK, f"{UNIT} is running")
        verb = "restart" if active else "start"
        if ctx.check:
            return ctx.result(SUPERVISOR, "activate", CHANGED, f"would {verb} {UNIT}")
        for argv in (["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", verb, UNIT]):
            code, out = _run(argv)
            if code != 0:
                why = out.splitlines()[-1] if out else f"exit status {code}"
                return ctx.result(SUPERVISOR, "activate", FAILED, f"{' '.join(argv)}: {why} "
                                  "(no user systemd session? log in once, or see --linger)")
        return ctx.result(SUPERVISOR, "activate", CHANGED, f"{verb}ed {UNIT}")
    domain = f"gui/{os.getuid()}"
    loaded = _run(["launchctl", "print", f"{domain}/{LABEL}"])[0] == 0
    if loaded and not changed:
        return ctx.result(SUPERVISOR, "activate", OK, f"{LABEL} is loaded")
    if ctx.check:
        return ctx.result(SUPERVISOR, "activate", CHANGED, f"would {'reload' if loaded else 'load'} {LABEL}")
    plist = paths("launchd")["unit"]
    if loaded:
        _run(["launchctl", "bootout", f"{domain}/{LABEL}"])
    code, out = _run(["launchctl", "bootstrap", domain, plist])
    if code != 0:
        return ctx.result(SUPERVISOR, "activate", FAILED, f"launchctl bootstrap {domain} {plist}: {out or code}")
    return ctx.result(SUPERVISOR, "activate", CHANGED, f"{'reloaded' if loaded else 'loaded'} {LABEL}")


def _linger_step(ctx: OpContext, enable: bool, remote: bool) -> Result:
    linger = _linger()
    if linger:
        return ctx.result(SUPERVISOR, "linger", OK, "lingering: the supervisor runs from boot, without a login")
    if not enable:
        advice = ("note: the user's systemd instance (and the supervisor) stops when the last session ends "
                  "and starts at the next login; `jlc service install --linger` (loginctl enable-linger) "
                  "keeps it running from boot")
        return ctx.result(SUPERVISOR, "linger", OK if not remote else SKIPPED, advice)
    if ctx.check:
        return ctx.result(SUPERVISOR, "linger", CHANGED, "would run loginctl enable-linger")
    code, out = _run(["loginctl", "enable-linger", _user()])
    if code != 0:
        return ctx.result(SUPERVISOR, "linger", FAILED, f"loginctl enable-linger {_user()}: {out or code} "
                          f"(an administrator can run: sudo loginctl enable-linger {_user()})")
    return ctx.result(SUPERVISOR, "linger", CHANGED, f"enabled lingering for {_user()}")


def uninstall(ctx: OpContext, opts: Dict[str, Any]) -> List[Result]:
    """Stop the service and remove exactly what ``install`` wrote.  Idempotent: nothing left is ``ok``."""
    kind, running = manager()
    results = []
    manifest = _read_manifest()
    wrote = [Path(p) for p in manifest.get("files") or []]
    made = [Path(p) for p in manifest.get("dirs") or []]
    if running and kind == "systemd" and _run(["systemctl", "--user", "is-active", UNIT])[0] == 0:
        if ctx.check:
            results.append(ctx.result(SUPERVISOR, "activate", CHANGED, f"would stop {UNIT}"))
        else:
            code, out = _run(["systemctl", "--user", "stop", UNIT])
            results.append(ctx.result(SUPERVISOR, "activate", CHANGED if code == 0 else FAILED,
                                      f"stopped {UNIT}" if code == 0 else f"systemctl --user stop {UNIT}: {out}"))
    if running and kind == "launchd" and _run(["launchctl", "print", f"gui/{os.getuid()}/{LABEL}"])[0] == 0:
        if ctx.check:
            results.append(ctx.result(SUPERVISOR, "activate", CHANGED, f"would unload {LABEL}"))
        else:
            _run(["launchctl", "bootout", f"gui/{os.getuid()}/{LABEL}"])
            results.append(ctx.result(SUPERVISOR, "activate", CHANGED, f"unloaded {LABEL}"))
    if not manifest:
        # Installed before the manifest existed, or it was lost: the files we would have written.
        wrote = [Path(p) for k, p in paths(kind).items() if k in ("unit", "wants")]
    removed = []
    for path in wrote:
        if not os.path.lexists(path):
            continue
        if os.path.islink(path):
            ours = os.readlink(path) == os.path.join("..", UNIT)
        else:
            content = _current(path)
            ours = content is not None and MARKER in content
        if not ours:
            results.append(ctx.result(SUPERVISOR, "unit", FAILED, f"{path} was not written by jupyter-lifecycle "
                                      "(or was changed since): left alone"))
            continue
        if ctx.check:
            results.append(ctx.result(SUPERVISOR, "unit", CHANGED, f"would remove {path}"))
            continue
        remove(path)
        removed.append(str(path))
        results.append(ctx.result(SUPERVISOR, "unit", CHANGED, f"removed {path}"))
    if not ctx.check:
        remove(_manifest())
        # Deepest first, and only if empty: something else may live there now.
        for d in sorted(made, key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        if removed and running and kind == "systemd":
            _run(["systemctl", "--user", "daemon-reload"])
    if not any(r.status != OK for r in results):
        results.append(ctx.result(SUPERVISOR, "unit", OK, "not installed"))
    return results


def status(opts: Dict[str, Any]) -> Dict[str, Any]:
    """What is installed and whether it runs; read-only."""
    kind, running = manager()
    where = paths(kind)
    unit = where.get("unit")
    content = _current(Path(unit)) if unit else None
    wanted = (opts.get("files") or {}).get(unit) if unit else None
    doc: Dict[str, Any] = {
        "version": 1, "manager": kind, "running": running, "unit": unit,
        "installed": content is not None, "ours": content is not None and MARKER in content,
        "current": content is not None and wanted is not None and content == wanted,
        "enabled": None, "active": None, "linger": _linger() if kind == "systemd" else None,
    }
    if kind == "systemd":
        wants = where["wants"]
        doc["enabled"] = os.path.islink(wants)
        if running:
            doc["active"] = _run(["systemctl", "--user", "is-active", UNIT])[0] == 0
    elif kind == "launchd":
        doc["enabled"] = content is not None  # RunAtLoad: an installed agent starts at login
        if running:
            doc["active"] = _run(["launchctl", "print", f"gui/{os.getuid()}/{LABEL}"])[0] == 0
    return doc
