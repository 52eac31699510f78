"""Showing and following server logs."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .context import OpContext
from .fsutil import not_a_directory
from .layout import Layout
from .logrotate import rotated, rotating, tail
from .spec import ProjectSpec


def show(specs: List[ProjectSpec], lines: int) -> List[Dict[str, Any]]:
    """The last ``lines`` lines of each log, read on into the rotated ones when the current is shorter.

    ``missing`` says why a project's directory cannot be read (gone, not cloned yet), else None.
    """
    out = []
    for spec in specs:
        layout = Layout.of(spec)
        path = layout.log_file
        missing = not_a_directory(str(layout.root))
        out.append({"project": spec.name, "path": str(path), "exists": missing is None and path.exists(),
                    "missing": missing, "lines": tail(path, lines, spec.log_keep) if missing is None else []})
    return out


class _Followed:
    """Where the reader of one log is: the file (inode) and offset it has read to, and which rotated
    ``.1`` it last saw (every rotation, by rename or by copy-and-truncate, puts a new inode there)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first = rotated(path, 1)
        self.busy = rotating(path)  # a live rotation's copy in progress
        self.inode, self.pos = _ino_size(path)
        self.first_inode = _ino_size(self.first)[0]
        self.waited = 0
        self.unexplained = 0  # polls the log has looked replaced or truncated with no rotation in .1

    def step(self) -> str:
        """The text written since the last step, including what a rotation moved away meanwhile."""
        if self.busy.exists() and self.waited < _BUSY_POLLS:
            # Truncated but not yet in .1: wait for the copy rather than lose the tail it holds.
            self.waited += 1
            return ""
        self.waited = 0
        out = b""
        first_inode, first_size = _ino_size(self.first)
        if first_inode is not None and first_inode != self.first_inode:
            # Rotated: .1 is our old file (renamed) or its copy (truncated), with the same offsets.
            self.first_inode = first_inode
            if first_size > self.pos:
                out += _read_from(self.first, self.pos)
            self.inode, self.pos = None, 0
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out.decode("utf-8", "replace")
        if not stat.S_ISREG(st.st_mode):
            return out.decode("utf-8", "replace")  # a FIFO or directory in the log's place has nothing to follow
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.pos):
            if self.unexplained < _BUSY_POLLS:
                # A rotation that finished between our look at .1 and this one: it shows in .1 at the
                # next poll, where our offset still applies.  Starting over now would read .1 from the
                # new file's offset, then the new file twice.
                self.unexplained += 1
                return out.decode("utf-8", "replace")
            self.pos = 0  # replaced or truncated without a rotation we could see: start over
        self.unexplained = 0
        self.inode = st.st_ino
        if st.st_size > self.pos:
            data = _read_from(self.path, self.pos)
            self.pos += len(data)
            out += data
        return out.decode("utf-8", "replace")


# A leftover .rotating file (a crashed rotation), or a truncation by hand, stalls a follower 5 s at most.
_BUSY_POLLS = 20


def _ino_size(path: Path) -> Tuple[Optional[int], int]:
    try:
        st = os.stat(path)
    except OSError:
        return None, 0
    return (st.st_ino, st.st_size) if stat.S_ISREG(st.st_mode) else (None, 0)


def _read_from(path: Path, pos: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(pos)
            return fh.read()
    except OSError:
        return b""


def follow(specs: List[ProjectSpec], ctx: OpContext, poll: float = 0.25,
           until: Optional[float] = None) -> None:
    """Emit new log text as it is written, across rotations, until Ctrl-C (or ``until``)."""
    followed = {spec.name: _Followed(Layout.of(spec).log_file) for spec in specs}
    try:
        while until is None or time.monotonic() < until:
            for name, reader in followed.items():
                text = reader.step()
                if text:
                    ctx.emit({"event": "log", "project": name, "text": text})
            time.sleep(poll)
    except KeyboardInterrupt:
        return
