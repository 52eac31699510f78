"""Small filesystem helpers: atomic writes, private modes and tolerant removal."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Optional

# Files and directories that can hold a token or a server's identity.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def write_atomic(path: Path, text: str, mode: Optional[int] = None) -> None:
    """Replace ``path`` with ``text`` so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None and path.exists():
        mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        remove(Path(tmp))
        raise


def remove(path: Path, problems: Optional[List[str]] = None) -> bool:
    """Remove a file; True if it existed and is gone.

    Never raises: a file that cannot be removed (read-only or full disk,
    permissions) is a warning for the caller to report, not a crash of the
    whole view.  Pass ``problems`` to collect those warnings.
    """
    try:
        path.unlink()
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
    """The last ``n`` lines of a text file, reading only its end."""
    if n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            block = 8192
            data = b""
            pos = end
            while pos > 0 and data.count(b"\n") <= n:
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:]
