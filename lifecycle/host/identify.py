"""Positive identification of a project's server: never act on a process we have not recognised.

A process is the project's server only when all of these hold:

- it has a Jupyter server's shape: a server command line run by a Python
  interpreter (argv alone can be anything: ``exec -a jupyter-lab sleep 600``);
- it is the process the evidence names: our metadata's pid, create time and
  command line, bound to this project's resolved root and this boot; or, for a
  pid file another tool wrote (the project's own ``app.sh``), a server started
  no later than that pid file;
- the process itself places it in the project: its runtime dir or its root dir
  lies inside the project directory (resolved paths, component by component).

Anything else is *stale* evidence: reported, repaired, and its process left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import psutil

from .layout import Layout
from .procs import Proc, Snapshot, boot_id, is_server_proc, port_from_cmdline
from .runtime import ServerInfo, infos_by_pid
from .servers import ServerView, inside, places, real, view
from .tracking import PidFile, read_meta, read_pid_file

# psutil derives create_time from clock ticks; allow for rounding.
CREATE_TIME_SLACK = 0.5
# A pid file written by another tool right after spawning: the process may be
# a moment older than the file, never much younger.
_PIDFILE_SLACK = 2.0


@dataclass(frozen=True)
class ServerRef:
    """A positively identified server of a project."""

    proc: Proc
    info: Optional[ServerInfo]
    meta: Optional[Dict[str, Any]]
    pid_file: Optional[Path]
    # How an untracked server was found: "runtime dir" or "root dir".
    found_by: str = "pid file"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> Optional[int]:
        if self.info is not None and self.info.port:
            return self.info.port
        port = self.meta.get("port") if self.meta else None
        if isinstance(port, int) and not isinstance(port, bool):
            return port
        return port_from_cmdline(self.proc.cmdline)

    @property
    def tracked(self) -> bool:
        return self.pid_file is not None


@dataclass
class Tracking:
    server: Optional[ServerRef] = None
    # Pid files that name no live server of this project: (file, why).
    stale: List[Tuple[Path, str]] = field(default_factory=list)
    # What each pid file held when it was judged, so that removal can check it still does.
    raw: Dict[Path, str] = field(default_factory=dict)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _meta_mismatch(proc: Proc, meta: Dict[str, Any], layout: Layout) -> Optional[str]:
    """Why our own identity record does not describe ``proc`` in this project, or None."""
    root = meta.get("root")
    if root is not None and root != str(layout.real_root):
        return f"pid file was written for {root}, not this directory (a copied project?)"
    machine = meta.get("machine")
    if machine is not None and machine != boot_id():
        return "pid file was written on another machine or before a reboot"
    created = _number(meta.get("create_time"))
    cmdline = meta.get("cmdline")
    same_cmd = isinstance(cmdline, list) and tuple(str(a) for a in cmdline) == proc.cmdline
    if created is None or abs(created - proc.create_time) >= CREATE_TIME_SLACK or not same_cmd:
        return f"pid {proc.pid} now belongs to another program ({proc.name})"
    return None


def _mismatch(proc: Proc, sv: ServerView, pf: PidFile, meta: Optional[Dict[str, Any]],
              layout: Layout) -> Optional[str]:
    """Why ``proc`` is not this project's server, or None when it is."""
    if not is_server_proc(proc):
        return f"pid {proc.pid} now belongs to another program ({proc.name})"
    if meta is not None and meta.get("pid") == proc.pid:
        why = _meta_mismatch(proc, meta, layout)
        if why is not None:
            return why
    elif proc.create_time > pf.mtime + _PIDFILE_SLACK:
        # No identity of ours: a server started by another tool (the project's
        # own app.sh).  It cannot have started after its pid file was written.
        return f"pid {proc.pid} was reused by another Jupyter server started after the pid file"
    if not places(sv, str(layout.root)):
        return f"pid {proc.pid} is a Jupyter server of {sv.root_dir or 'something else'}"
    return None


def _runtime_evidence(layout: Layout, info: ServerInfo, sv: ServerView) -> bool:
    """A runtime file in the project names a server only if the server itself agrees.

    The file's own word is not enough: a ``jpserver-*.json`` copied here from
    another project names that project's server.
    """
    own_dir = sv.runtime_dir is not None and real(sv.runtime_dir) == real(str(layout.runtime_dir))
    if own_dir:
        return True
    return bool(info.root_dir) and inside(info.root_dir, str(layout.root)) and bool(places(sv, str(layout.root)))


Viewer = Callable[[Proc], ServerView]


def find_server(layout: Layout, snapshot: Snapshot, untracked: Iterable[ServerView] = (),
                viewer: Viewer = view) -> Tracking:
    """Find the project's server: the one its pid file names, else one that places itself here.

    ``untracked`` are servers no pid file tracks that the caller attributed to
    this project by their root dir (started by hand in it, without the
    project's isolation env).  Pid files and the processes they name are read
    now, not taken from the snapshot, so a server started since the snapshot
    (or forked but not yet exec'd when it was taken) is never mistaken for a
    dead one or another program.  ``viewer`` reads a live process's cwd and
    environment (a seam for synthetic snapshots).  Reads only; never changes anything.
    """
    tracking = Tracking()
    meta = read_meta(layout)
    for path in layout.pid_files:
        pf = read_pid_file(path)
        if pf is None:
            continue
        tracking.raw[path] = pf.raw
        if pf.pid is None:
            tracking.stale.append((path, f"pid file holds {pf.raw!r}, not a pid"))
            continue
        proc = snapshot.now(pf.pid)
        if proc is None:
            tracking.stale.append((path, f"pid {pf.pid} is not running"))
            continue
        sv = viewer(proc)
        reason = _mismatch(proc, sv, pf, meta, layout)
        if reason is not None:
            tracking.stale.append((path, reason))
            continue
        if tracking.server is None:
            own_meta = meta if meta is not None and meta.get("pid") == proc.pid else None
            info = sv.info or infos_by_pid(layout.runtime_dir).get(proc.pid)
            tracking.server = ServerRef(proc, info, own_meta, path)
    if tracking.server is None:
        tracking.server = untracked_server(layout, snapshot, untracked, viewer)
    return tracking


def untracked_server(layout: Layout, snapshot: Snapshot, attributed: Iterable[ServerView],
                     viewer: Viewer = view) -> Optional[ServerRef]:
    """A server of the project that no pid file tracks, or None."""
    # A server started by hand with the project's isolation env wrote its
    # runtime file here; one started without it is known by its root dir.
    for pid, info in sorted(infos_by_pid(layout.runtime_dir).items()):
        proc = snapshot.now(pid)
        if proc is None or not is_server_proc(proc) or proc.create_time > _mtime(info.file) + _PIDFILE_SLACK:
            continue
        sv = viewer(proc)
        if _runtime_evidence(layout, info, sv):
            return ServerRef(proc, sv.info or info, None, None, found_by="runtime dir")
    for sv in sorted(attributed, key=lambda v: v.proc.pid):
        if is_server_proc(sv.proc) and places(sv, str(layout.root)):
            return ServerRef(sv.proc, sv.info, None, None, found_by="root dir")
    return None


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
        if abs(p.create_time() - proc.create_time) >= CREATE_TIME_SLACK:
            return None
        return p
    except psutil.Error:
        return None
