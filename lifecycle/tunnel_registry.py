"""Running tunnels on this machine (one private record each) and the local port each project keeps.

Every tunnel, in the foreground or detached, writes a record into
``<state dir>/tunnels/`` (directory 0700, files 0600) naming the process that
carries it by pid, create time, command line and boot.  ``jlc tunnels`` lists
them and ``jlc close`` signals a tunnel's process only when all of those still
match: a pid reused by another program is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from .host.fsutil import PRIVATE_FILE, private_dir, remove, write_atomic
from .host.identify import CREATE_TIME_SLACK
from .host.ports import state_dir
from .host.procs import boot_id

RECORD_VERSION = 1


def tunnels_dir() -> Path:
    return state_dir() / "tunnels"


def key(project: str, host: str) -> str:
    # '@' cannot appear in inventory names, so the key is unambiguous.
    return f"{project}@{host}"


@dataclass
class TunnelRecord:
    """A running tunnel and the process carrying it (no token: records say where, not how to log in)."""

    project: str
    host: str
    local_port: int
    remote_port: int
    url: str  # the local URL without its token
    pid: int
    create_time: float
    cmdline: list[str]
    machine: str
    started: str
    detached: bool
    state: str = "up"  # up | reconnecting | server stopped | gone
    note: str = ""
    log: str | None = None
    version: int = RECORD_VERSION

    @property
    def key(self) -> str:
        return key(self.project, self.host)

    @property
    def path(self) -> Path:
        return tunnels_dir() / f"{self.key}.json"

    def to_public(self) -> dict[str, Any]:
        return {"project": self.project, "host": self.host, "local_port": self.local_port,
                "remote_port": self.remote_port, "url": self.url, "pid": self.pid, "detached": self.detached,
                "started": self.started, "state": self.state, "note": self.note, "log": self.log}


def new_record(project: str, host: str, local_port: int, remote_port: int, url: str, detached: bool,
               log: str | None = None) -> TunnelRecord:
    """A record for a tunnel carried by this very process."""
    me = psutil.Process()
    return TunnelRecord(project=project, host=host, local_port=local_port, remote_port=remote_port, url=url,
                        pid=me.pid, create_time=me.create_time(), cmdline=me.cmdline(), machine=boot_id(),
                        started=datetime.now(UTC).isoformat(timespec="seconds"), detached=detached,
                        log=log)


def save(record: TunnelRecord) -> None:
    private_dir(tunnels_dir())
    write_atomic(record.path, json.dumps(asdict(record), indent=1) + "\n", PRIVATE_FILE)


def discard(record: TunnelRecord) -> None:
    """Remove the record if it still describes the same process (a successor may have replaced it)."""
    current = read(record.path)
    if current is not None and (current.pid, current.create_time) != (record.pid, record.create_time):
        return
    remove(record.path)


def read(path: Path) -> TunnelRecord | None:
    try:
        data = json.loads(path.read_text())
        known = {f for f in TunnelRecord.__dataclass_fields__}
        return TunnelRecord(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def records() -> list[TunnelRecord]:
    """Every record, in name order; unreadable files are skipped (and left for a human to look at)."""
    folder = tunnels_dir()
    if not folder.is_dir():
        return []
    found = [read(p) for p in sorted(folder.glob("*@*.json"))]
    return [r for r in found if r is not None]


def find(project: str, host: str) -> TunnelRecord | None:
    return read(tunnels_dir() / f"{key(project, host)}.json")


def process_of(record: TunnelRecord) -> psutil.Process | None:
    """The process carrying the tunnel, positively identified; None when it is gone or the pid was reused."""
    if record.machine and record.machine != boot_id():
        return None
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(proc.create_time() - record.create_time) >= CREATE_TIME_SLACK:
            return None
        if proc.cmdline() != record.cmdline:
            return None
    except psutil.Error:
        return None
    return proc


def stop_process(proc: psutil.Process, timeout: float = 5.0) -> str:
    """SIGTERM, then SIGKILL after ``timeout``; how it ended ('SIGTERM', 'SIGKILL' or 'still running')."""
    for how, sig in (("SIGTERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            return how
        if _wait_gone(proc, timeout):
            return how
    return "still running"


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    # Not proc.wait(): a process that is not our child may linger as a zombie
    # where init does not reap promptly, and a zombie has ended.
    deadline = time.monotonic() + timeout
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# -- one opener at a time per project ------------------------------------------

def claim(project: str, host: str) -> int:
    """Wait for, then hold, the right to open this project's tunnel; ``release`` the fd once it is recorded.

    Without it two ``open`` runs at the same instant both find no record and both start a tunnel.
    The lock is a flock: a crashed opener releases it by exiting.
    """
    private_dir(tunnels_dir())
    fd = os.open(str(tunnels_dir() / f"{key(project, host)}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


# -- the local port each project keeps -----------------------------------------

def _ports_file() -> Path:
    return tunnels_dir() / "ports.json"


@contextlib.contextmanager
def _ports_locked() -> Iterator[dict[str, int]]:
    private_dir(tunnels_dir())
    lock = os.open(str(tunnels_dir() / "ports.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ports = {str(k): int(v) for k, v in json.loads(_ports_file().read_text()).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            ports = {}
        before = dict(ports)
        yield ports
        if ports != before:
            write_atomic(_ports_file(), json.dumps(ports, indent=1, sort_keys=True) + "\n", PRIVATE_FILE)
    finally:
        os.close(lock)


def remembered_port(project: str, host: str) -> int | None:
    with _ports_locked() as ports:
        return ports.get(key(project, host))


def remember_port(project: str, host: str, port: int) -> None:
    with _ports_locked() as ports:
        ports[key(project, host)] = port

