"""Describing any Jupyter server process, and which project directory it belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional

import psutil

from .procs import Proc
from .runtime import ServerInfo, read_info


@dataclass(frozen=True)
class ServerView:
    """What can be learnt about a server from outside: its runtime file, cwd, runtime dir."""

    proc: Proc
    info: Optional[ServerInfo]
    cwd: Optional[str]
    runtime_dir: Optional[str]

    def paths(self) -> Iterable[str]:
        """Every path that can place this server inside a project."""
        if self.info is not None and self.info.root_dir:
            yield self.info.root_dir
        if self.cwd:
            yield self.cwd
        if self.runtime_dir:
            yield self.runtime_dir
        for arg in self.proc.cmdline[1:]:
            value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
            if value.startswith("/"):
                yield value


def runtime_dir_of(environ: Dict[str, str]) -> Optional[str]:
    """Where a process with this environment writes Jupyter runtime files (jupyter_core's rule)."""
    if environ.get("JUPYTER_RUNTIME_DIR"):
        return environ["JUPYTER_RUNTIME_DIR"]
    if environ.get("JUPYTER_DATA_DIR"):
        return os.path.join(environ["JUPYTER_DATA_DIR"], "runtime")
    data_home = environ.get("XDG_DATA_HOME")
    if not data_home and environ.get("HOME"):
        data_home = os.path.join(environ["HOME"], ".local", "share")
    return os.path.join(data_home, "jupyter", "runtime") if data_home else None


def view(proc: Proc) -> ServerView:
    """Look at a server process (its environment and cwd are readable only for our own user)."""
    cwd = runtime = None
    info = None
    try:
        p = psutil.Process(proc.pid)
        cwd = p.cwd()
        runtime = runtime_dir_of(p.environ())
    except (psutil.Error, OSError):
        pass
    if runtime:
        info = read_info(Path(runtime) / f"jpserver-{proc.pid}.json")
    return ServerView(proc, info, cwd, runtime)


def inside(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/")


def deepest(paths: Iterable[str], roots: Dict[str, str]) -> Optional[str]:
    """The project (name -> root) whose directory holds any of ``paths``; the deepest root wins."""
    best: Optional[str] = None
    for path in paths:
        for name, root in roots.items():
            if inside(path, root) and (best is None or len(root) > len(roots[best])):
                best = name
    return best


def owner(server: ServerView, roots: Dict[str, str]) -> Optional[str]:
    """The project whose directory holds this server."""
    return deepest(server.paths(), roots)
