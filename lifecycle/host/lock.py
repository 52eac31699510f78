"""Per-project locks: one look-and-act on a project at a time, across every tool run on the host.

Two ``start``s that both look before either writes the pid file would both
start a server.  Every changing operation (start, stop, restart, bootstrap and
their -all forms) holds the project's lock from its look to the end of its act.

The lock is ``fcntl.flock`` on ``.logs/jupyter.lock`` in the project: the
kernel releases it when the holder dies, so a crashed run never leaves the
project locked.  A project whose ``.logs`` cannot be written (read-only
checkout) is locked through a file in the user's state dir instead, named
after the project's resolved path; both kinds of run agree because both try
the project's file first and fall back only when it cannot exist.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from .fsutil import PRIVATE_DIR, open_lock_file
from .layout import Layout
from .ports import state_dir


class LockTimeout(Exception):
    """Another run held the lock for longer than we were willing to wait."""


def _open(path: Path) -> Optional[int]:
    try:
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        # A directory, symlink or FIFO where the lock file belongs is junk: replaced, never waited on.
        return open_lock_file(path)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.ENOTDIR):
            raise
    try:
        # flock works on a descriptor opened for reading: an existing lock file
        # on a now read-only project still serialises.
        return os.open(str(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


def lock_path(layout: Layout) -> Path:
    return layout.lock_file


def fallback_path(layout: Layout) -> Path:
    digest = hashlib.sha256(str(layout.real_root).encode()).hexdigest()[:16]
    return state_dir() / "locks" / f"{layout.root.name}-{digest}.lock"


def _holder(fd: int) -> str:
    try:
        data = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return data if data.isdigit() else ""


def venv_lock_path(layout: Layout) -> Path:
    # In the state dir, not the venv: the venv may not exist yet when bootstrap creates it.
    digest = hashlib.sha256(os.path.realpath(layout.venv).encode()).hexdigest()[:16]
    return state_dir() / "locks" / f"venv-{digest}.lock"


@contextlib.contextmanager
def project_lock(layout: Layout, timeout: float,
                 waiting: Callable[[str], None] = lambda msg: None) -> Iterator[None]:
    """Hold the project's lock; wait up to ``timeout`` seconds for another run to release it.

    ``waiting`` is told once that we wait, and for whom.  Raises LockTimeout.
    """
    fd = None
    if layout.root.is_dir():
        fd = _open(lock_path(layout))
    if fd is None:
        fd = _open(fallback_path(layout))
    if fd is None:
        raise LockTimeout(f"cannot create a lock file in {layout.logs_dir} or {fallback_path(layout).parent}")
    with _held(fd, timeout, waiting, "this project"):
        yield


@contextlib.contextmanager
def venv_lock(layout: Layout, timeout: float, waiting: Callable[[str], None] = lambda msg: None) -> Iterator[None]:
    """Hold the lock of the project's venv (several projects may share one: pip must not run twice in it)."""
    fd = _open(venv_lock_path(layout))
    if fd is None:
        raise LockTimeout(f"cannot create a lock file in {venv_lock_path(layout).parent}")
    with _held(fd, timeout, waiting, f"the venv {layout.venv}"):
        yield


@contextlib.contextmanager
def _held(fd: int, timeout: float, waiting: Callable[[str], None], what: str) -> Iterator[None]:
    try:
        deadline = time.monotonic() + timeout
        told = False
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                who = f"pid {holder}" if holder else "another run"
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"another jupyter-lifecycle run ({who}) has been working on {what} "
                                      f"for over {timeout:g}s; try again when it is done") from None
                if not told:
                    waiting(f"waiting for another run ({who}) working on {what}")
                    told = True
                time.sleep(delay)
                delay = min(delay * 1.5, 0.2)
        try:
            # Who holds it, for the message another run prints while it waits.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)
