"""Pid files and the identity metadata beside them: reading, writing, removing.

The pid file holds a plain integer (the original tools read it).  Beside it,
``jupyter.meta.json`` records the identity we act on: pid, process create time,
command line, and the project root and machine it was written for, so a copied
project directory or a pid file read on another machine never names our server.
Deciding whether a process *is* the project's server is ``identify.py``'s job.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import psutil

from .fsutil import PRIVATE_FILE, remove, write_atomic
from .layout import Layout
from .procs import boot_id


@dataclass(frozen=True)
class PidFile:
    path: Path
    raw: str
    pid: Optional[int]
    mtime: float


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
    write_atomic(layout.pid_file, f"{proc.pid}\n", mode=PRIVATE_FILE)
    full = dict(meta)
    full.update(
        pid=proc.pid,
        create_time=proc.create_time(),
        cmdline=list(cmdline) if cmdline is not None else proc.cmdline(),
        root=str(layout.real_root),
        machine=boot_id(),
        written=time.time(),
        managed_by="jupyter-lifecycle",
    )
    # Private: the command line can carry a token given through the project's args.
    write_atomic(layout.meta_file, json.dumps(full, indent=2) + "\n", mode=PRIVATE_FILE)
    return full


def update_meta(layout: Layout, **values: Any) -> None:
    meta = read_meta(layout)
    if meta is not None:
        meta.update(values)
        write_atomic(layout.meta_file, json.dumps(meta, indent=2) + "\n", mode=PRIVATE_FILE)


def remove_tracking(layout: Layout, pid: int, problems: Optional[List[str]] = None) -> List[str]:
    """Remove the pid files naming ``pid`` and the metadata describing it."""
    removed = []
    for path in layout.pid_files:
        pf = read_pid_file(path)
        if pf is not None and pf.pid == pid and remove(path, problems):
            removed.append(str(path.relative_to(layout.root)))
    meta = read_meta(layout)
    if meta is not None and meta.get("pid") == pid and remove(layout.meta_file, problems):
        removed.append(str(layout.meta_file.relative_to(layout.root)))
    return removed


def remove_stale(layout: Layout, judged: Dict[Path, str], problems: Optional[List[str]] = None) -> List[str]:
    """Remove pid files judged stale, each only if it still holds what was judged.

    A concurrent start (ours or the project's app.sh) may have written a fresh
    pid file since: that one stays.  The metadata goes when no pid file names it.
    """
    removed = []
    for path, raw in judged.items():
        pf = read_pid_file(path)
        if pf is not None and pf.raw == raw and remove(path, problems):
            removed.append(str(path.relative_to(layout.root)))
    meta = read_meta(layout)
    live = {pf.pid for pf in (read_pid_file(p) for p in layout.pid_files) if pf is not None}
    if (meta is not None or layout.meta_file.exists()) and (meta is None or meta.get("pid") not in live):
        if remove(layout.meta_file, problems):
            removed.append(str(layout.meta_file.relative_to(layout.root)))
    return removed
