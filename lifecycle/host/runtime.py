"""Jupyter runtime files (``jpserver-<pid>.json``): reading and stale cleanup."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .fsutil import SmallFile, UnreadableFile, read_small, remove
from .procs import Snapshot

# A server writes its runtime file after it starts; a process that started
# clearly later than the file was written cannot be the one that wrote it.
_REUSE_SLACK = 2.0
# A malformed runtime file this fresh, whose pid runs, may be half-written: leave it for now.
_WRITE_GRACE = 10.0
_NAME_RE = re.compile(r"jpserver-([0-9]{1,7})\.json")


@dataclass(frozen=True)
class ServerInfo:
    """What a running server wrote about itself."""

    pid: int
    port: Optional[int]
    url: str
    token: str
    root_dir: str
    base_url: str
    file: Path

    @property
    def api_base(self) -> str:
        """Base URL to reach the API from this host (wildcard binds mapped to loopback)."""
        url = self.url or f"http://127.0.0.1:{self.port}{self.base_url or '/'}"
        for wildcard in ("://0.0.0.0:", "://[::]:"):
            url = url.replace(wildcard, "://127.0.0.1:")
        return url.rstrip("/")


def read_info(path: Path) -> Optional[ServerInfo]:
    """What a server wrote in its runtime file; None when there is none, or it is unreadable or malformed."""
    try:
        small = read_small(path)
    except UnreadableFile:
        return None
    return None if small is None else _parse(small)


def _parse(small: SmallFile) -> Optional[ServerInfo]:
    try:
        data = small.json()
    except UnreadableFile:
        return None
    if not isinstance(data, dict):
        return None
    pid, port = data.get("pid"), data.get("port")
    if not isinstance(pid, int) or not _whole(pid, 1, 2**22 - 1) or not (port in (None, 0) or _whole(port, 1, 65535)):
        return None
    texts = {key: data.get(key) for key in ("url", "token", "root_dir", "base_url")}
    if not all(v is None or isinstance(v, str) for v in texts.values()):
        return None
    return ServerInfo(pid=pid, port=port or None, url=texts["url"] or "", token=texts["token"] or "",
                      root_dir=texts["root_dir"] or "", base_url=texts["base_url"] or "/", file=small.path)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def server_files(runtime_dir: Path) -> List[Path]:
    try:
        return sorted(runtime_dir.glob("jpserver-*.json"))
    except OSError:
        return []


def infos_by_pid(runtime_dir: Path) -> Dict[int, ServerInfo]:
    out: Dict[int, ServerInfo] = {}
    for path in server_files(runtime_dir):
        info = read_info(path)
        if info is not None:
            out[info.pid] = info
    return out


def remove_server_files(runtime_dir: Path, pid: int, problems: Optional[List[str]] = None) -> List[str]:
    removed = []
    for name in (f"jpserver-{pid}.json", f"jpserver-{pid}-open.html"):
        if remove(runtime_dir / name, problems):
            removed.append(name)
    return removed


def find_stale(runtime_dir: Path, snapshot: Snapshot) -> List[Tuple[Path, Optional[int]]]:
    """The runtime files ``clean_stale`` would remove now, each with its server's pid (None: junk).

    Reads only.  A file is stale when its pid is dead, or the pid was reused:
    the process now holding it started after the file was written.  A live
    process that may have written it is never judged by its command line
    (wrappers such as voila run servers too).  A FIFO, directory, device or
    oversized file named like a runtime file is junk; so is a malformed one,
    unless its server may still be writing it.
    """
    found: List[Tuple[Path, Optional[int]]] = []
    for path in server_files(runtime_dir):
        try:
            small = read_small(path)
        except UnreadableFile:
            found.append((path, None))
            continue
        if small is None:
            continue
        info = _parse(small)
        if info is None:
            if not _may_be_writing(path, small.mtime, snapshot):
                found.append((path, None))
            continue
        # Looked up live when the snapshot does not hold it: a server that
        # started after the snapshot wrote this file, and it is not stale.
        proc = snapshot.lookup(info.pid)
        if proc is None or proc.create_time > small.mtime + _REUSE_SLACK:
            found.append((path, info.pid))
    return found


def clean_stale(runtime_dir: Path, snapshot: Snapshot, problems: Optional[List[str]] = None) -> List[str]:
    """Remove runtime files of servers that are no longer running, and junk in their place
    (what ``find_stale`` finds).  Idempotent: a second call finds nothing to remove."""
    removed: List[str] = []
    for path, pid in find_stale(runtime_dir, snapshot):
        if pid is None:
            removed.extend(_remove_junk(path, problems))
        else:
            removed.extend(remove_server_files(runtime_dir, pid, problems))
    return removed


def _may_be_writing(path: Path, mtime: float, snapshot: Snapshot) -> bool:
    """Jupyter writes its runtime file in place: half-written for a moment, by the pid in its name."""
    m = _NAME_RE.fullmatch(path.name)
    return m is not None and snapshot.lookup(int(m.group(1))) is not None and time.time() - mtime < _WRITE_GRACE


def _remove_junk(path: Path, problems: Optional[List[str]]) -> List[str]:
    # A non-empty directory, or no permission: a warning, not ours to force.
    return [path.name] if remove(path, problems) else []
