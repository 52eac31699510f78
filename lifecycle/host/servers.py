"""Describing any Jupyter server process, and which project directory it belongs to.

Paths are compared resolved and component by component: ``/x/p1`` does not
hold ``/x/p10``, and a project reached through a symlink is the same project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import psutil

from .procs import Proc
from .runtime import ServerInfo, read_info

# Command-line options that set a server's root directory (traitlets accepts
# ``--opt=value`` and ``--opt value``).
_ROOT_OPTIONS = ("--ServerApp.root_dir", "--NotebookApp.notebook_dir", "--ServerApp.notebook_dir",
                 "--notebook-dir", "--root-dir")


@dataclass(frozen=True)
class ServerView:
    """What can be learnt about a server from outside: its runtime file, cwd, runtime dir."""

    proc: Proc
    info: Optional[ServerInfo]
    cwd: Optional[str]
    runtime_dir: Optional[str]

    @property
    def root_dir(self) -> Optional[str]:
        """The directory the server serves: what it wrote about itself, else its options, else its cwd."""
        if self.info is not None and self.info.root_dir:
            return self.info.root_dir
        return root_option(self.proc.cmdline) or self.cwd

    def paths(self) -> Iterable[str]:
        """The paths that place this server inside a project: where it serves from, and where its
        runtime files go.  Never the interpreter's or a script's path: a venv inside a project does
        not make every server run from it that project's."""
        if self.runtime_dir:
            yield self.runtime_dir
        if self.root_dir:
            yield self.root_dir


def root_option(cmdline: Iterable[str]) -> Optional[str]:
    """The root directory given on a server's command line, if any."""
    args = list(cmdline)
    for i, arg in enumerate(args):
        for opt in _ROOT_OPTIONS:
            if arg.startswith(opt + "="):
                return arg.split("=", 1)[1]
            if arg == opt and i + 1 < len(args):
                return args[i + 1]
    return None


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
        env = p.environ()
        runtime = runtime_dir_of(env)
        if runtime and not os.path.isabs(runtime):
            runtime = os.path.join(cwd, runtime)
    except (psutil.Error, OSError):
        pass
    if runtime:
        info = read_info(Path(runtime) / f"jpserver-{proc.pid}.json")
        if info is not None and info.pid != proc.pid:
            info = None
    return ServerView(proc, info, cwd, runtime)


def real(path: str) -> str:
    """``path`` absolute with symlinks resolved (as /proc reports a process's cwd)."""
    return os.path.realpath(os.path.expanduser(path))


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies under it, compared as resolved paths."""
    p, r = real(path), real(root)
    return p == r or os.path.commonpath([p, r]) == r


def deepest(paths: Iterable[str], roots: Dict[str, str]) -> Optional[str]:
    """The project (name -> root) whose directory holds any of ``paths``; the deepest root wins."""
    resolved = {name: real(root) for name, root in roots.items()}
    best: Optional[str] = None
    for path in paths:
        p = real(path)
        for name, root in resolved.items():
            held = p == root or os.path.commonpath([p, root]) == root
            if held and (best is None or len(root) > len(resolved[best])):
                best = name
    return best


def owner(server: ServerView, roots: Dict[str, str]) -> Optional[str]:
    """The project whose directory holds this server."""
    return deepest(server.paths(), roots)


def places(server: ServerView, root: str) -> List[str]:
    """The server's own paths that lie in ``root`` (empty: the process does not place itself there)."""
    return [p for p in server.paths() if inside(p, root)]
