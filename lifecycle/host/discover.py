"""Finding Jupyter projects on disk: notebooks, a scripts/app.sh, or the isolation dirs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

# Directories that mark a project's root when notebooks are found below it.
_ROOT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "environment.yml",
                 "scripts/app.sh", ".jupyter_runtime", ".jupyter_config")
# Never worth descending into.
_SKIP = {"node_modules", "__pycache__", "site-packages", ".ipynb_checkpoints", ".tox", ".nox", "dist", "build"}


def _evidence(path: Path, files: List[str]) -> List[str]:
    reasons = []
    if (path / "scripts" / "app.sh").is_file():
        reasons.append("scripts/app.sh")
    if (path / ".jupyter_runtime").is_dir() or (path / ".jupyter_config").is_dir():
        reasons.append("isolation dirs")
    if any(f.endswith(".ipynb") for f in files):
        reasons.append("notebooks")
    return reasons


def _root_for(path: Path, top: Path) -> Path:
    """The nearest directory from ``path`` up to ``top`` that looks like a project root."""
    for candidate in [path, *path.parents]:
        if any((candidate / m).exists() for m in _ROOT_MARKERS):
            return candidate
        if candidate == top:
            break
    return path


def discover(roots: List[str], depth: int = 4) -> List[Dict[str, Any]]:
    """Jupyter project directories under ``roots`` (at most ``depth`` levels down); reads only."""
    found: Dict[Path, List[str]] = {}
    for raw in roots:
        top = Path(os.path.expanduser(raw)).absolute()
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            level = len(here.relative_to(top).parts)
            # Hidden dirs, venvs and build trees hold no projects of their own.
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP
                           and not (here / d / "pyvenv.cfg").exists()] if level < depth else []
            reasons = _evidence(here, filenames)
            if reasons:
                root = _root_for(here, top) if reasons == ["notebooks"] else here
                found.setdefault(root, [])
                found[root] = sorted(set(found[root]) | set(reasons))
    # A project inside another found project is part of it.
    ordered = sorted(found, key=lambda p: len(p.parts))
    kept: List[Path] = []
    for path in ordered:
        if not any(path != k and k in path.parents for k in kept):
            kept.append(path)
    return [{"path": str(p), "reasons": found[p]} for p in sorted(kept)]
