"""The whole host at once: every Jupyter server and kernel, and whose each one is.

``survey`` reads the process table once, then answers from that snapshot:
the project servers, servers no pid file tracks (and the project they lie
in, if any), and kernels whose server is gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import psutil

from .identify import Tracking, find_server, untracked_server
from .layout import Layout
from .procs import Proc, Snapshot, is_kernel_proc, is_server_proc, kernel_connection_file, take_snapshot
from .servers import ServerView, deepest, owner, view
from .spec import ProjectSpec

# Processes that adopt orphans besides pid 1 (a kernel whose parent is one of
# these has lost the process that launched it).
_REAPERS = {"systemd", "init", "tini", "dumb-init", "launchd", "runit", "s6-svscan"}


@dataclass(frozen=True)
class ServerEntry:
    view: ServerView
    project: Optional[str]
    tracked_by: Optional[str]

    @property
    def pid(self) -> int:
        return self.view.proc.pid


@dataclass(frozen=True)
class KernelEntry:
    """A kernel whose server is gone, or (kind "process") something a kernel started that outlived it."""

    proc: Proc
    project: Optional[str]
    connection_file: Optional[str]
    kind: str = "kernel"


@dataclass
class Survey:
    snapshot: Snapshot
    layouts: Dict[str, Layout]
    tracking: Dict[str, Tracking]
    servers: List[ServerEntry] = field(default_factory=list)
    orphan_kernels: List[KernelEntry] = field(default_factory=list)

    def roots(self) -> Dict[str, str]:
        return {name: str(lay.root) for name, lay in self.layouts.items()}

    def server(self, pid: int) -> Optional[ServerEntry]:
        return next((s for s in self.servers if s.pid == pid), None)

    def orphan_servers(self) -> List[ServerEntry]:
        """Servers that no project's pid file tracks."""
        return [s for s in self.servers if s.tracked_by is None]

    def untracked_for(self, project: str) -> List[ServerView]:
        """Servers no pid file tracks that lie in ``project`` (by root dir or runtime dir)."""
        return [s.view for s in self.servers if s.tracked_by is None and s.project == project]


def _orphaned(kernel: Proc, snapshot: Snapshot) -> bool:
    """Whether the process that launched this kernel is gone."""
    pid = kernel.ppid
    seen = set()
    while pid and pid not in seen:
        seen.add(pid)
        ancestor = snapshot.get(pid)
        if ancestor is None:
            break
        if is_server_proc(ancestor):
            return False
        pid = ancestor.ppid
    try:
        launcher = psutil.Process(kernel.pid).environ().get("JPY_PARENT_PID")
    except (psutil.Error, OSError):
        launcher = None
    if launcher and launcher.isdigit():
        # jupyter_client records who launched the kernel; if that process is
        # gone (or its pid was reused later), nobody will shut the kernel down.
        parent = snapshot.get(int(launcher))
        return parent is None or parent.create_time > kernel.create_time
    parent = snapshot.get(kernel.ppid)
    return kernel.ppid <= 1 or parent is None or parent.name in _REAPERS


def _left_behind(proc: Proc, snapshot: Snapshot, roots: Dict[str, str]) -> Optional[KernelEntry]:
    """A process a kernel started that outlived its server: re-parented to init, and its
    environment (inherited from the kernel) names a launching server that is gone.

    ipykernel exits on its own when its server is killed, but what it started
    (a notebook's ``!sleep 600``, a worker pool) lives on.  Only processes
    already re-parented are looked at, so this reads few environments.
    """
    parent = snapshot.get(proc.ppid)
    if not (proc.ppid <= 1 or parent is None or parent.name in _REAPERS):
        return None
    if is_server_proc(proc) or is_kernel_proc(proc) or not owned_by_me(proc):
        return None
    try:
        p = psutil.Process(proc.pid)
        env = p.environ()
        cwd: Optional[str] = p.cwd()
    except (psutil.Error, OSError):
        return None
    launcher = env.get("JPY_PARENT_PID", "")
    if not launcher.isdigit():
        return None
    server = snapshot.get(int(launcher))
    if server is not None and server.create_time <= proc.create_time:
        return None  # its server still runs: not an orphan
    paths = [env[k] for k in ("JUPYTER_RUNTIME_DIR",) if env.get(k)] or ([cwd] if cwd else [])
    return KernelEntry(proc, deepest(paths, roots), None, kind="process")


def _kernel_project(kernel: Proc, roots: Dict[str, str]) -> Optional[str]:
    paths = []
    conn = kernel_connection_file(kernel.cmdline)
    if conn:
        paths.append(conn)
    try:
        paths.append(psutil.Process(kernel.pid).cwd())
    except (psutil.Error, OSError):
        pass
    return deepest(paths, roots)


def survey(known: List[ProjectSpec], snapshot: Optional[Snapshot] = None,
           peers: Sequence[ProjectSpec] = ()) -> Survey:
    """Look at every Jupyter process on this host once.  Reads only; changes nothing.

    ``peers`` are the projects of the inventory's other hosts.  One of them joins ``known`` when its
    server is identified running here (its pid file, or its own runtime dir, names a live server of
    this machine): the other host is this machine under another name, and that server is its
    project's, never an orphan or unmanaged.  A peer with nothing running here changes nothing.
    """
    snap = snapshot or take_snapshot()
    layouts = {s.name: Layout.of(s) for s in known}
    tracking = {name: find_server(lay, snap) for name, lay in layouts.items()}
    for spec in peers:
        if spec.name not in layouts:
            _join_if_here(spec, snap, layouts, tracking)
    result = Survey(snapshot=snap, layouts=layouts, tracking=tracking)
    roots = result.roots()
    tracked = {t.server.pid: name for name, t in tracking.items() if t.server is not None and t.server.tracked}
    runtime_owner = {t.server.pid: name for name, t in tracking.items() if t.server is not None}
    for proc in sorted(snap.servers(), key=lambda p: p.pid):
        sv = view(proc)
        project = tracked.get(proc.pid) or runtime_owner.get(proc.pid) or owner(sv, roots)
        result.servers.append(ServerEntry(sv, project, tracked.get(proc.pid)))
    for name, t in tracking.items():
        if t.server is None:
            # Started by hand in the project without its isolation env: known by its root dir.
            t.server = untracked_server(layouts[name], snap, result.untracked_for(name))
    for proc in sorted(snap.kernels(), key=lambda p: p.pid):
        if _orphaned(proc, snap):
            result.orphan_kernels.append(KernelEntry(proc, _kernel_project(proc, roots),
                                                     kernel_connection_file(proc.cmdline)))
    for proc in sorted(snap.procs.values(), key=lambda p: p.pid):
        entry = _left_behind(proc, snap, roots) if proc.alive else None
        if entry is not None:
            result.orphan_kernels.append(entry)
    return result


def _join_if_here(spec: ProjectSpec, snap: Snapshot, layouts: Dict[str, Layout],
                  tracking: Dict[str, Tracking]) -> None:
    try:
        layout = Layout.of(spec)
        if not layout.root.is_dir():
            return
        found = find_server(layout, snap)
    except (OSError, ValueError):
        return  # a path that means nothing here: that project is not on this machine
    if found.server is not None:
        layouts[spec.name] = layout
        tracking[spec.name] = found


def owned_by_me(proc: Proc) -> bool:
    return proc.uid is not None and proc.uid == os.getuid()


def project_of_path(path: str, roots: Dict[str, str]) -> Optional[str]:
    """The deepest project directory holding ``path``."""
    return deepest([str(Path(path).expanduser().absolute())], roots)

