"""Pid files, identity metadata, and positive identification of a project's server.

The pid file holds a plain integer (the original tools read it).  Beside it,
``jupyter.meta.json`` records the identity we act on: pid, process create time
and command line.  A server is the project's only when that identity matches;
a pid that now belongs to another program is *stale* and is never signalled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import psutil

from .fsutil import remove, write_atomic
from .layout import Layout
from .procs import Proc, Snapshot, is_jupyter_server, port_from_cmdline
from .runtime import ServerInfo, infos_by_pid

# psutil derives create_time from clock ticks; allow for rounding.
_CREATE_TIME_SLACK = 0.5
# A pid file written by another tool right after spawning: the process may be
# a moment older than the file, never much younger.
_PIDFILE_SLACK = 2.0


@dataclass(frozen=True)
class PidFile:
    path: Path
    raw: str
    pid: Optional[int]
    mtime: float


@dataclass(frozen=True)
class ServerRef:
    """A positively identified server of a project."""

    proc: Proc
    info: Optional[ServerInfo]
    meta: Optional[Dict[str, Any]]
    pid_file: Optional[Path]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> Optional[int]:
        if self.info is not None and self.info.port:
            return self.info.port
        if self.meta and self.meta.get("port"):
            return int(self.meta["port"])
        return port_from_cmdline(self.proc.cmdline)

    @property
    def tracked(self) -> bool:
        return self.pid_file is not None


@dataclass
class Tracking:
    server: Optional[ServerRef] = None
    stale: List[Tuple[Path, str]] = field(default_factory=list)


def read_pid_file(path: Path) -> Optional[PidFile]:
    try:
        raw = path.read_text(errors="replace")
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        return PidFile(path, f"<unreadable: {exc.strerror}>", None, 0.0)
    text = raw.strip()
    pid = int(text) if text.isdigit() and 0 < int(text) < 2**22 else None
    return PidFile(path, text[:40], pid, mtime)


def read_meta(layout: Layout) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(layout.meta_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_tracking(layout: Layout, proc: psutil.Process, meta: Dict[str, Any],
                   cmdline: Optional[List[str]] = None) -> Dict[str, Any]:
    """Write the pid file first (what other tools read), then the identity beside it.

    Pass ``cmdline`` for a process just spawned: until its exec completes,
    /proc still shows the parent's command line.
    """
    write_atomic(layout.pid_file, f"{proc.pid}\n")
    full = dict(meta)
    full.update(
        pid=proc.pid,
        create_time=proc.create_time(),
        cmdline=list(cmdline) if cmdline is not None else proc.cmdline(),
        written=time.time(),
        managed_by="jupyter-lifecycle",
    )
    write_atomic(layout.meta_file, json.dumps(full, indent=2) + "\n")
    return full


def update_meta(layout: Layout, **values: Any) -> None:
    meta = read_meta(layout)
    if meta is not None:
        meta.update(values)
        write_atomic(layout.meta_file, json.dumps(meta, indent=2) + "\n")


def remove_tracking(layout: Layout, pid: Optional[int] = None) -> List[str]:
    """Remove pid files (those naming ``pid``, or all when None) and the metadata."""
    removed = []
    for path in layout.pid_files:
        pf = read_pid_file(path)
        if pf is not None and (pid is None or pf.pid is None or pf.pid == pid):
            if remove(path):
                removed.append(str(path.relative_to(layout.root)))
    if remove(layout.meta_file):
        removed.append(str(layout.meta_file.relative_to(layout.root)))
    return removed


def _mismatch(proc: Proc, pf: PidFile, meta: Optional[Dict[str, Any]],
              infos: Dict[int, ServerInfo], layout: Layout) -> Optional[str]:
    """Why ``proc`` is not this project's server, or None when it is."""
    other = f"pid {proc.pid} now belongs to another program ({proc.name})"
    if meta is not None and meta.get("pid") == proc.pid:
        same_start = abs(float(meta.get("create_time", 0)) - proc.create_time) < _CREATE_TIME_SLACK
        same_cmd = tuple(meta.get("cmdline") or ()) == proc.cmdline
        return None if same_start and same_cmd else other
    # No identity of ours: a server started by another tool (the project's
    # own scripts/app.sh).  Identify it by what it is, when it started, and
    # that it belongs to this project.
    if not is_jupyter_server(proc.cmdline):
        return other
    if proc.create_time > pf.mtime + _PIDFILE_SLACK:
        return f"pid {proc.pid} was reused by another Jupyter server started after the pid file"
    if proc.pid in infos or any(str(layout.root) in arg for arg in proc.cmdline):
        return None
    try:
        if layout.contains(psutil.Process(proc.pid).cwd()):
            return None
    except (psutil.Error, OSError):
        pass
    return f"pid {proc.pid} is a Jupyter server of something else"


def find_server(layout: Layout, snapshot: Snapshot) -> Tracking:
    """Find the project's server: the one its pid file names, else one in its runtime dir.

    Pure apart from reading the project's files; never changes anything.
    """
    tracking = Tracking()
    meta = read_meta(layout)
    infos = infos_by_pid(layout.runtime_dir)
    for path in layout.pid_files:
        pf = read_pid_file(path)
        if pf is None:
            continue
        if pf.pid is None:
            tracking.stale.append((path, f"pid file holds {pf.raw!r}, not a pid"))
            continue
        proc = snapshot.get(pf.pid)
        if proc is None:
            tracking.stale.append((path, f"pid {pf.pid} is not running"))
            continue
        reason = _mismatch(proc, pf, meta, infos, layout)
        if reason is not None:
            tracking.stale.append((path, reason))
            continue
        if tracking.server is None:
            own_meta = meta if meta is not None and meta.get("pid") == proc.pid else None
            tracking.server = ServerRef(proc, infos.get(proc.pid), own_meta, path)
    if tracking.server is None:
        # A server started by hand with the project's isolation env: it wrote
        # its runtime file here, so it is this project's even without a pid file.
        for pid, info in sorted(infos.items()):
            proc = snapshot.get(pid)
            if (proc is not None and is_jupyter_server(proc.cmdline)
                    and proc.create_time <= _mtime(info.file) + _PIDFILE_SLACK):
                tracking.server = ServerRef(proc, info, None, None)
                break
    return tracking


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def handle(proc: Proc) -> Optional[psutil.Process]:
    """A psutil handle on exactly this process, or None if it is gone or the pid was reused.

    psutil re-checks the create time before every signal it sends through the
    handle, so holding it is what makes a later kill safe.
    """
    try:
        p = psutil.Process(proc.pid)
        if abs(p.create_time() - proc.create_time) >= _CREATE_TIME_SLACK:
            return None
        return p
    except psutil.Error:
        return None
