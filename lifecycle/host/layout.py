"""Where a project's files live (the original spec's conventions) and its env."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from .spec import ProjectSpec

# The isolation directories every managed project has, with the environment
# variable that points Jupyter/IPython/matplotlib at each.
ISOLATION: Tuple[Tuple[str, str], ...] = (
    ("JUPYTER_CONFIG_DIR", ".jupyter_config"),
    ("JUPYTER_DATA_DIR", ".jupyter_data"),
    ("JUPYTER_RUNTIME_DIR", ".jupyter_runtime"),
    ("IPYTHONDIR", ".ipython"),
    ("MPLCONFIGDIR", ".cache/matplotlib"),
)

# Entry modules per app: run as ``python -m MODULE`` from the venv so the
# command line names the venv interpreter (what identifies the server).
APP_MODULES = {"lab": "jupyterlab", "notebook": "notebook", "server": "jupyter_server"}
APP_PATHS = {"lab": "lab", "notebook": "tree", "server": ""}


@dataclass(frozen=True)
class Layout:
    root: Path
    venv: Path

    @classmethod
    def of(cls, spec: ProjectSpec) -> "Layout":
        root = Path(os.path.expanduser(spec.path)).absolute()
        venv = Path(os.path.expanduser(spec.venv))
        if not venv.is_absolute():
            venv = root / venv
        return cls(root=root, venv=Path(os.path.normpath(venv)))

    @property
    def real_root(self) -> Path:
        """The project directory with symlinks resolved: what identities are bound to."""
        return Path(os.path.realpath(self.root))

    @property
    def lock_file(self) -> Path:
        return self.logs_dir / "jupyter.lock"

    @property
    def logs_dir(self) -> Path:
        return self.root / ".logs"

    @property
    def pid_file(self) -> Path:
        return self.logs_dir / "jupyter.pid"

    @property
    def pid_files(self) -> List[Path]:
        """Where a pid file may be: ours first, then the original spec's alternative."""
        return [self.pid_file, self.root / ".run" / "jupyter.pid"]

    @property
    def meta_file(self) -> Path:
        return self.logs_dir / "jupyter.meta.json"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "jupyterlab.log"

    @property
    def bootstrap_log(self) -> Path:
        return self.logs_dir / "bootstrap.log"

    @property
    def runtime_dir(self) -> Path:
        return self.root / ".jupyter_runtime"

    @property
    def isolation_dirs(self) -> List[Path]:
        return [self.root / rel for _, rel in ISOLATION]

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def kernels_dir(self) -> Path:
        return self.venv / "share" / "jupyter" / "kernels"

    def isolation_env(self) -> Dict[str, str]:
        return {var: str(self.root / rel) for var, rel in ISOLATION}

    def isolated_env(self) -> Dict[str, str]:
        """This process's environment with the project's isolation dirs: for every program run on
        the project's behalf (venv creation, pip, kernel registration), so that none of them
        writes Jupyter or IPython state into the user's HOME (``ipykernel install`` creates
        ``~/.ipython`` without IPYTHONDIR)."""
        env = dict(os.environ)
        env.update(self.isolation_env())
        return env

    def server_env(self, spec: ProjectSpec) -> Dict[str, str]:
        """The environment a server of this project runs with."""
        env = self.isolated_env()
        env["VIRTUAL_ENV"] = str(self.venv)
        env["PATH"] = str(self.venv / "bin") + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
        if not any(k.lower() == "npm_config_cache" for k in env):
            # JupyterLab runs `npm prefix --global` (when node is on PATH), which writes ~/.npm/_logs
            # for want of a cache dir; the project's own cache keeps HOME clean. A user's setting wins.
            env["npm_config_cache"] = str(self.root / ".cache" / "npm")
        env.update(spec.env)
        return env

    def notebook_root(self, spec: ProjectSpec) -> Path:
        nb = Path(os.path.expanduser(spec.notebook_dir))
        return nb if nb.is_absolute() else Path(os.path.normpath(self.root / nb))

    def contains(self, path: str) -> bool:
        """Whether ``path`` lies inside the project directory (resolved, component by component)."""
        p, r = os.path.realpath(path), str(self.real_root)
        return p == r or os.path.commonpath([p, r]) == r
