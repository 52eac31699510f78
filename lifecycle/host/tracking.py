"""Pid files and the identity metadata beside them: reading, writing, removing.

The pid file holds a plain integer (the original tools read it).  Beside it,
``jupyter.meta.json`` records the identity we act on: pid, process create time,
command line, and the project root and machine it was written for, so a copied
project directory or a pid file read on another machine never names our server.
Deciding whether a process *is* the project's server is ``identify.py``'s job.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import psutil

from .fsutil import PRIVATE_FILE, UnreadableFile, read_json, read_small, remove, write_atomic
from .layout import Layout
from .procs import boot_id


@dataclass(frozen=True)
class PidFile:
    path: Path
    raw: str
    pid: Optional[int]
    mtime: float


# Linux pids stay below 2**22 (PID_MAX_LIMIT).
_PID_MAX = 2**22
_PID_RE = re.compile(r"[0-9]{1,7}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_time(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


# The type every known metadata key must have; anything else is dropped on reading.
_META_TYPES: Dict[str, Callable[[Any], bool]] = {
    "pid": lambda v: _is_int(v) and 0 < v < _PID_MAX,
    "port": lambda v: _is_int(v) and 0 < v < 65536,
    "create_time": _is_time,
    "written": _is_time,
    "cmdline": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    "ip": lambda v: isinstance(v, str),
    "app": lambda v: isinstance(v, str),
    "started": lambda v: isinstance(v, str),
    "log": lambda v: isinstance(v, str),
    "managed_by": lambda v: isinstance(v, str),
    "root": lambda v: isinstance(v, str),
    "machine": lambda v: isinstance(v, str),
    "adopted": lambda v: isinstance(v, bool),
}


def read_pid_file(path: Path) -> Optional[PidFile]:
    """The pid file at ``path``: None when there is none; ``pid`` None when it holds no usable pid.

    Whatever sits there (a FIFO, a directory, /dev/zero, 5,000 digits, binary)
    is read without blocking or raising, and anything unusable comes back
    with ``pid`` None and a short description in ``raw``: a stale pid file.
    """
    try:
        small = read_small(path)
    except UnreadableFile as exc:
        return PidFile(path, f"<unreadable: {exc}>", None, 0.0)
    if small is None:
        return None
    text = small.data.decode("utf-8", "replace").strip()
    # ASCII digits only, and short: int() of 5,000 digits raises, and no pid is over 2**22.
    pid = int(text) if _PID_RE.fullmatch(text) and 0 < int(text) < _PID_MAX else None
    return PidFile(path, text[:40], pid, small.mtime)


def read_meta(layout: Layout) -> Optional[Dict[str, Any]]:
    """The identity metadata, or None when there is none or it is unusable.

    Known keys holding a value of the wrong type (``"create_time": "yesterday"``)
    are dropped, so every value a caller reads has the type it expects.
    """
    try:
        data = read_json(layout.meta_file)
    except UnreadableFile:
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if k not in _META_TYPES or _META_TYPES[k](v)}


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
