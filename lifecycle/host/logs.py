"""Showing and following server logs."""

from __future__ import annotations

import os
import stat
import time
from typing import Any, Dict, List, Optional, Tuple

from .context import OpContext
from .layout import Layout
from .logrotate import tail
from .spec import ProjectSpec


def show(specs: List[ProjectSpec], lines: int) -> List[Dict[str, Any]]:
    """The last ``lines`` lines of each log, read on into the rotated ones when the current is shorter."""
    out = []
    for spec in specs:
        path = Layout.of(spec).log_file
        out.append({"project": spec.name, "path": str(path), "exists": path.exists(),
                    "lines": tail(path, lines, spec.log_keep)})
    return out


def follow(specs: List[ProjectSpec], ctx: OpContext, poll: float = 0.25,
           until: Optional[float] = None) -> None:
    """Emit new log text as it is written, across rotations, until Ctrl-C (or ``until``)."""
    state: Dict[str, Tuple[Optional[int], int]] = {}
    for spec in specs:
        path = Layout.of(spec).log_file
        try:
            st = os.stat(path)
            state[spec.name] = (st.st_ino, st.st_size)
        except FileNotFoundError:
            state[spec.name] = (None, 0)
    try:
        while until is None or time.monotonic() < until:
            for spec in specs:
                path = Layout.of(spec).log_file
                inode, pos = state[spec.name]
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # a FIFO or directory in the log's place has nothing to follow
                if st.st_ino != inode or st.st_size < pos:
                    # Rotated by a restart, or truncated: read the new file from its start.
                    inode, pos = st.st_ino, 0
                if st.st_size > pos:
                    with open(path, "rb") as fh:
                        fh.seek(pos)
                        data = fh.read()
                    pos += len(data)
                    ctx.emit({"event": "log", "project": spec.name, "text": data.decode("utf-8", "replace")})
                state[spec.name] = (inode, pos)
            time.sleep(poll)
    except KeyboardInterrupt:
        return
