"""Jupyter runtime files (``jpserver-<pid>.json``): reading and stale cleanup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .fsutil import remove
from .procs import Snapshot

# A server writes its runtime file after it starts; a process that started
# clearly later than the file was written cannot be the one that wrote it.
_REUSE_SLACK = 2.0


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
    try:
        data = json.loads(path.read_text())
        return ServerInfo(
            pid=int(data["pid"]),
            port=int(data["port"]) if data.get("port") else None,
            url=str(data.get("url") or ""),
            token=str(data.get("token") or ""),
            root_dir=str(data.get("root_dir") or ""),
            base_url=str(data.get("base_url") or "/"),
            file=path,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


def clean_stale(runtime_dir: Path, snapshot: Snapshot, problems: Optional[List[str]] = None) -> List[str]:
    """Remove runtime files of servers that are no longer running.

    Idempotent: a second call finds nothing to remove.  A file is stale when
    its pid is dead, or the pid was reused: the process now holding it started
    after the file was written.  A live process that may have written it is
    never judged by its command line (wrappers such as voila run servers too).
    """
    removed: List[str] = []
    for path in server_files(runtime_dir):
        info = read_info(path)
        if info is None:
            # Unreadable: the server may be writing it right now; leave it.
            continue
        # Looked up live when the snapshot does not hold it: a server that
        # started after the snapshot wrote this file, and it is not stale.
        proc = snapshot.lookup(info.pid)
        try:
            written = path.stat().st_mtime
        except OSError:
            continue
        if proc is None or proc.create_time > written + _REUSE_SLACK:
            removed.extend(remove_server_files(runtime_dir, info.pid, problems))
    return removed
