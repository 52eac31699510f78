"""Free-port allocation that is race-free between concurrent starts on one host.

Jupyter's own port search binds, closes, and binds again later, so two servers
starting at once can pick the same port.  We pick the port ourselves under a
host-wide lock, record a short-lived claim, and pass it with port_retries=0.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import psutil

from .fsutil import PRIVATE_FILE, UnreadableFile, open_lock_file, private_dir, read_json, write_atomic

# A claim outlives a start only if the starting tool died; then its pid is
# gone or this age has passed.
_CLAIM_TTL = 300.0


def state_dir() -> Path:
    explicit = os.environ.get("JLC_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "jupyter-lifecycle"


def port_free(ip: str, port: int) -> bool:
    """Whether a server could bind ``ip:port`` now (tested the way tornado binds)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def holder(port: int) -> str:
    """Describe who listens on ``port``: 'NAME (pid N)', or why we cannot tell."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return "another process"
    for conn in conns:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            if conn.pid is None:
                return "another user's process"
            try:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return "another socket"


def listeners() -> Dict[int, List[Optional[int]]]:
    """Every TCP port something listens on, with the pids (None: another user's socket)."""
    out: Dict[int, List[Optional[int]]] = {}
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return out
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            pids = out.setdefault(conn.laddr.port, [])
            if conn.pid not in pids:
                pids.append(conn.pid)
    return out


class PortClaims:
    """Ports handed to servers that are still starting, shared by every tool run."""

    def __init__(self, directory: Optional[Path] = None) -> None:
        self.dir = directory or state_dir()
        self.file = self.dir / "port-claims.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        private_dir(self.dir)
        fd = open_lock_file(self.dir / "port-claims.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _load(self) -> Dict[str, Dict[str, float]]:
        """The live claims; anything unreadable or malformed in the file counts as no claim."""
        try:
            data = read_json(self.file)
        except UnreadableFile:
            return {}
        if not isinstance(data, dict):
            return {}
        now = time.time()
        live = {}
        for port, claim in data.items():
            if not isinstance(claim, dict):
                continue
            pid, when = claim.get("pid"), claim.get("time")
            if (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**22
                    and isinstance(when, (int, float)) and not isinstance(when, bool)
                    and now - when < _CLAIM_TTL and psutil.pid_exists(pid)):
                live[port] = claim
        return live

    def _save(self, claims: Dict[str, Dict[str, float]]) -> None:
        write_atomic(self.file, json.dumps(claims), mode=PRIVATE_FILE)

    def acquire(self, ip: str, low: int, high: int, wanted: Optional[int] = None) -> int:
        """Claim a free port (``wanted`` exactly, else the first free one in range).

        Raises PortUnavailable with a message naming who holds it.
        """
        with self.locked():
            claims = self._load()
            candidates = [wanted] if wanted is not None else list(range(low, high + 1))
            for port in candidates:
                if str(port) in claims:
                    if wanted is not None:
                        raise PortUnavailable(f"port {port} is being claimed by another starting server")
                    continue
                if port_free(ip, port):
                    claims[str(port)] = {"pid": os.getpid(), "time": time.time()}
                    self._save(claims)
                    return port
                if wanted is not None:
                    raise PortUnavailable(f"port {port} is in use by {holder(port)}")
            raise PortUnavailable(f"no free port in range {low}-{high}")

    def release(self, port: int) -> None:
        with self.locked():
            claims = self._load()
            if claims.pop(str(port), None) is not None:
                self._save(claims)


class PortUnavailable(Exception):
    pass
