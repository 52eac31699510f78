"""Server logs that do not grow forever: rotation at start, and while the server writes, losing no line.

At start no server writes the log, so the old one is renamed (``jupyterlab.log`` -> ``.1`` -> ``.2``
... up to ``log_keep``).  A running server cannot be told to reopen its output, so a log over
``log_max_size`` is rotated by copy-and-truncate: the server opened it with O_APPEND, so after the
truncate its next write lands at the new end (no hole).  Plain copy-and-truncate loses whatever is
written between the end of the copy and the truncate; here the writers are frozen (SIGSTOP, and
waited for until every thread of each is stopped) for that moment only: the bulk is copied while
they run, the last bytes and the truncate happen while none can write, then they continue
(SIGCONT).  A line cut in two by the freeze ends in ``.1`` and continues in the new log; readers
(``logs -n``) join it.

The writers are the identified server and everything under it (kernels inherit its output), plus,
on Linux, any process of ours that holds the very file open (found through ``/proc/PID/fd``).  A
marker file names the frozen processes while they are frozen, so that if this process dies in that
instant (SIGKILL), the next look (``recover``) lets them continue.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Set, Tuple

import psutil

from .fsutil import PRIVATE_FILE, TAIL_LIMIT, UnreadableFile, read_json, remove, tail_bytes, write_atomic

# How long writers may take to stop before the rotation is abandoned (they are let go at once).
FREEZE_WAIT = 2.0
_COPY_BLOCK = 1 << 20


def rotated(log: Path, n: int) -> Path:
    return log.with_name(f"{log.name}.{n}")


def rotating(log: Path) -> Path:
    """The copy a live rotation is making (it becomes ``.1`` when the log has been truncated)."""
    return log.with_name(f".{log.name}.rotating")


def _marker(log: Path) -> Path:
    return log.with_name(log.name + ".frozen")


def shift(log: Path, keep: int, problems: Optional[List[str]] = None) -> None:
    """Make room for a new ``.1``: ``.1`` -> ``.2`` ... the oldest beyond ``keep`` is removed."""
    remove(rotated(log, keep), problems)
    for n in range(keep - 1, 0, -1):
        try:
            os.replace(rotated(log, n), rotated(log, n + 1))
        except FileNotFoundError:
            pass
        except OSError as exc:
            if problems is not None:
                problems.append(f"could not rotate {rotated(log, n)}: {exc.strerror or exc}")
    # Logs rotated under an older, larger keep: the ones beyond it go too.
    n = keep + 1
    while rotated(log, n).exists() and n < keep + 100:
        remove(rotated(log, n), problems)
        n += 1


def begin_new_log(log: Path, keep: int, problems: Optional[List[str]] = None) -> None:
    """At start (nothing writes the log): the previous run's log becomes ``.1``."""
    if not log.exists():
        return
    shift(log, keep, problems)
    try:
        os.replace(log, rotated(log, 1))
    except FileNotFoundError:
        pass  # another run rotated it a moment ago


def rotate_live(log: Path, keep: int, writers: List[psutil.Process], max_size: int) -> Tuple[bool, str]:
    """Copy-and-truncate ``log`` while ``writers`` append to it, losing nothing.

    ``writers`` are handles on identified processes (their create time is re-checked before every
    signal).  Returns (rotated, what happened).  Idempotent: a log under ``max_size`` is left alone.
    """
    try:
        st = log.stat()
    except FileNotFoundError:
        return False, "no log"
    if not stat.S_ISREG(st.st_mode):
        return False, "not a regular file"
    size = st.st_size
    if size <= max_size:
        return False, f"{size} bytes, under {max_size}"
    dest = rotated(log, 1)
    tmp = rotating(log)
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        with open(log, "rb") as src:
            # The bulk while everyone runs; then the rest with the writers frozen.
            copied = _copy(src, fd)
            frozen, why = freeze(log, writers)
            if why:
                return False, why
            try:
                copied += _copy(src, fd)
                os.truncate(log, 0)
            finally:
                thaw(log, frozen)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove(tmp)
        raise
    os.close(fd)
    shift(log, keep)
    os.replace(tmp, dest)
    return True, f"{copied} bytes moved to {dest.name} ({len(frozen)} writer(s) paused)"


def _copy(src: BinaryIO, fd: int) -> int:
    total = 0
    while True:
        chunk = src.read(_COPY_BLOCK)
        if not chunk:
            return total
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        total += len(chunk)


def _stopped(pid: int) -> bool:
    """Every thread of the process is stopped (or gone): none can be inside a write."""
    tasks = f"/proc/{pid}/task"
    if os.path.isdir(tasks):
        try:
            tids = os.listdir(tasks)
        except OSError:
            return True
        for tid in tids:
            try:
                with open(f"{tasks}/{tid}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue  # the thread ended
            if state not in (b"T", b"t", b"Z", b"X"):
                return False
        return True
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True


def freeze(log: Path, writers: List[psutil.Process]) -> Tuple[List[psutil.Process], str]:
    """SIGSTOP the writers (and what they started since) and wait until all are stopped.

    Returns the frozen handles, and a reason when the freeze had to be abandoned (they are
    running again then).  SIGINT/SIGTERM to this process wait until the writers are let go.
    """
    old_mask = _block_signals()
    frozen: List[psutil.Process] = []
    try:
        pending = list(writers)
        seen: Set[int] = set()
        while pending:
            proc = pending.pop(0)
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                proc.send_signal(signal.SIGSTOP)
            except psutil.Error:
                continue
            frozen.append(proc)
            _write_marker(log, frozen)
            try:
                # Stopped, it starts nothing new; what it started before is frozen next.
                pending += proc.children(recursive=True)
            except psutil.Error:
                pass
        deadline = time.monotonic() + FREEZE_WAIT
        while not all(_stopped(p.pid) for p in frozen):
            if time.monotonic() > deadline:
                thaw(log, frozen)
                return [], "a writer did not pause within 2s; rotation left for later"
            time.sleep(0.001)
        return frozen, ""
    except BaseException:
        thaw(log, frozen)
        raise
    finally:
        _restore_signals(old_mask)


def thaw(log: Path, frozen: List[psutil.Process]) -> None:
    for proc in frozen:
        try:
            proc.send_signal(signal.SIGCONT)
        except psutil.Error:
            pass
    remove(_marker(log))


def _write_marker(log: Path, frozen: List[psutil.Process]) -> None:
    records = []
    for p in frozen:
        try:
            records.append({"pid": p.pid, "create_time": p.create_time()})
        except psutil.Error:
            continue
    try:
        write_atomic(_marker(log), json.dumps(records), mode=PRIVATE_FILE)
    except OSError:
        pass


def recover(log: Path) -> int:
    """Let go processes a rotation froze and could not thaw (it was killed in that instant)."""
    marker = _marker(log)
    try:
        records = read_json(marker)
    except UnreadableFile:
        remove(marker)
        return 0
    if records is None:
        return 0
    woken = 0
    for rec in records if isinstance(records, list) else []:
        try:
            proc = psutil.Process(int(rec["pid"]))
            if abs(proc.create_time() - float(rec["create_time"])) < 0.5:
                proc.send_signal(signal.SIGCONT)
                woken += 1
        except (psutil.Error, KeyError, TypeError, ValueError):
            continue
    remove(marker)
    return woken


def _block_signals() -> Optional[Set[int]]:
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}))


def _restore_signals(old: Optional[Set[int]]) -> None:
    if old is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def holders(log: Path) -> List[psutil.Process]:
    """Processes of this user that hold ``log`` open for writing (Linux: ``/proc/PID/fd``; elsewhere
    none are found and the server's own process tree is what gets paused)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        st = log.stat()
    except OSError:
        return []
    me = os.getpid()
    found: Dict[int, psutil.Process] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # another user's, or gone
        for fd in fds:
            try:
                target = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if (target.st_dev, target.st_ino) == (st.st_dev, st.st_ino) and _writes(entry, fd):
                try:
                    found[int(entry)] = psutil.Process(int(entry))
                except psutil.Error:
                    pass
                break
    return list(found.values())


def _writes(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
            for line in fh:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & (os.O_WRONLY | os.O_RDWR) != 0
    except (OSError, ValueError, IndexError):
        pass
    return True  # unknown: pausing a reader for a moment is harmless, losing a writer's line is not


def tail(log: Path, n: int, keep: int) -> List[str]:
    """The last ``n`` lines of the log, continued into ``.1``, ``.2``... when the current one holds fewer.

    The files are read as one stream (oldest first), so a line the live rotation cut in two is whole.
    """
    if n <= 0:
        return []
    data = b""
    for path in [log] + [rotated(log, i) for i in range(1, keep + 1)]:
        data = tail_bytes(path, n + 1 - data.count(b"\n")) + data
        if data.count(b"\n") > n or len(data) >= TAIL_LIMIT:
            break
    return data.decode("utf-8", "replace").splitlines()[-n:]

