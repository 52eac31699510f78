"""Small filesystem helpers: atomic writes, private modes, tolerant removal, safe reads of state files.

State files (pid files, identity metadata, runtime files, port claims) are
written by us or by Jupyter, but anything can end up at their paths: a FIFO,
a directory, a symlink to /dev/zero, gigabytes of junk.  Reading one must never
block, never exhaust memory and never raise anything but ``UnreadableFile``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, List, Optional

# Files and directories that can hold a token or a server's identity.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700

# Our state files are a few hundred bytes; Jupyter's runtime files under a kilobyte.
STATE_FILE_LIMIT = 64 * 1024
# Hand-edited files we read whole (inventory, .gitignore, requirements files).
CONFIG_FILE_LIMIT = 1024 * 1024
# How much of a log's end to read at most for its last lines (a log can be one endless line).
TAIL_LIMIT = 4 * 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink"))


class UnreadableFile(Exception):
    """A file we refuse to read, or cannot; the message says why in a few words (``is a FIFO, ...``)."""


@dataclass(frozen=True)
class SmallFile:
    """The content of a small regular file, read in one go, with its modification time."""

    path: Path
    data: bytes
    mtime: float

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableFile("is not UTF-8 text") from None

    def json(self) -> Any:
        """The parsed JSON document; NaN, infinite numbers and absurd nesting count as not JSON."""
        text = self.text()
        try:
            return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
        except (ValueError, RecursionError):
            raise UnreadableFile("is not valid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is out of range")
    return value


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_small(path: Path, limit: int = STATE_FILE_LIMIT) -> Optional[SmallFile]:
    """Read the regular file ``path`` if it exists: None when there is none; UnreadableFile when
    it is anything else (FIFO, directory, device, larger than ``limit``, no permission).

    Opened non-blocking so a FIFO cannot stall us; the type and size are checked on the open
    descriptor (no race with a swap), and never more than ``limit`` bytes are read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        # Also a dangling symlink, or a parent that is a file: there is no such file to read.
        return None
    except OSError as exc:
        raise UnreadableFile(f"cannot be opened: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"is {kind_of(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UnreadableFile(f"is {st.st_size} bytes, more than the {limit} such a file may have")
        chunks: List[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UnreadableFile(f"grew past the {limit} bytes such a file may have")
        return SmallFile(path, b"".join(chunks), st.st_mtime)
    except OSError as exc:
        raise UnreadableFile(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_json(path: Path, limit: int = STATE_FILE_LIMIT) -> Any:
    """The JSON document in a small regular file; None when there is no file; UnreadableFile otherwise."""
    small = read_small(path, limit)
    return None if small is None else small.json()


def open_append(path: Path) -> BinaryIO:
    """``path`` opened for appending (created if needed), refusing anything but a regular file.

    A FIFO nobody reads would block a plain ``open(path, "ab")`` forever.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                     0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, f"{path} is a FIFO, not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is {kind_of(mode)}, not a regular file")
    return os.fdopen(fd, "ab")


def open_lock_file(path: Path) -> int:
    """A descriptor (for ``fcntl.flock``) on the regular file ``path``, created 0600 if needed.

    Never blocks on a FIFO and never follows a symlink; anything but a regular
    file at ``path`` is junk (nobody can hold a lock we would honour on it) and
    is replaced.  Closing the descriptor is the caller's job.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read-write: a lock holder writes its pid in the file for those who wait to read.
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    last = ""
    for _ in range(3):
        try:
            fd = os.open(path, flags, PRIVATE_FILE)
        except OSError as exc:
            # EISDIR: a directory; ELOOP: a symlink (O_NOFOLLOW); ENXIO: a socket.
            if exc.errno not in (errno.ENXIO, errno.EISDIR, errno.ELOOP):
                raise
            last = exc.strerror or str(exc)
            remove(path)
            continue
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return fd
        os.close(fd)
        last = f"is {kind_of(mode)}"
        remove(path)
    raise OSError(errno.EINVAL, f"lock file {path} cannot be made a regular file ({last})")


def not_a_directory(path: str) -> Optional[str]:
    """Why ``path`` is not a usable directory (``X does not exist``), or None when it is one."""
    if os.path.isdir(path):
        return None
    if os.path.lexists(path):
        return f"{path} is not a directory"
    return f"{path} does not exist"


def write_atomic(path: Path, text: str, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``text`` so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None and path.is_file():
        mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode if mode is not None else 0o644)
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            # An empty directory where our file belongs is junk; one with contents stays, and we fail.
            path.rmdir()
            os.replace(tmp, path)
    except BaseException:
        remove(Path(tmp))
        raise


def remove(path: Path, problems: Optional[List[str]] = None) -> bool:
    """Remove a file (or an empty directory where a file should be); True if it existed and is gone.

    Never raises: a file that cannot be removed (read-only or full disk,
    permissions, a directory with something in it) is a warning for the caller
    to report, not a crash of the whole view.  Pass ``problems`` to collect those warnings.
    """
    try:
        try:
            path.unlink()
        except IsADirectoryError:
            path.rmdir()
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        if problems is not None:
            problems.append(f"could not remove {path}: {exc.strerror or exc}")
        return False


def private_dir(path: Path) -> bool:
    """Create ``path`` (and parents) and make it owner-only; True if anything changed."""
    changed = False
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        changed = True
    mode = path.stat().st_mode & 0o7777
    if mode & 0o077:
        os.chmod(path, mode & ~0o077)
        changed = True
    return changed


def tighten(path: Path) -> bool:
    """Take group/other permissions off an existing file; True if its mode changed."""
    try:
        mode = path.stat().st_mode & 0o7777
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)
            return True
    except FileNotFoundError:
        pass
    return False


def tail_lines(path: Path, n: int) -> List[str]:
    """The last ``n`` lines of a text file, reading only its end.

    Anything but a regular file (a FIFO, a directory, /dev/zero) has no lines,
    and no more than ``TAIL_LIMIT`` bytes are read however long the lines are.
    """
    if n <= 0:
        return []
    return tail_bytes(path, n + 1).decode("utf-8", "replace").splitlines()[-n:]


def tail_bytes(path: Path, newlines: int) -> bytes:
    """The end of a file holding at least ``newlines`` newlines (or all of it, or TAIL_LIMIT bytes).

    Anything but a regular file (a FIFO, a directory) has no lines and never blocks us.
    """
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return b""
    # Checked before fdopen: opening a directory's descriptor as a file raises.
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return b""
    with os.fdopen(fd, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        chunks: List[bytes] = []
        count = size = 0
        while pos > 0 and count < newlines and size < TAIL_LIMIT:
            step = min(8192, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            chunks.append(chunk)
            count += chunk.count(b"\n")
            size += len(chunk)
    return b"".join(reversed(chunks))
