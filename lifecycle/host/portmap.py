"""The port map: every port of every project's range, and Jupyter servers outside them."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import psutil

from .fleet import Survey
from .ports import listeners
from .spec import ProjectSpec


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.AccessDenied:
        return "unknown (another user)"
    except psutil.Error:
        return "exited"


def port_map(selected: List[ProjectSpec], known: List[ProjectSpec], found: Survey, host: str) -> List[Dict[str, Any]]:
    """One row per port: free, jupyter (which project, pid) or other (which process)."""
    listening = listeners()
    servers = {s.pid: s for s in found.servers}
    ranges: Dict[int, List[str]] = {}
    for spec in selected:
        for port in range(spec.port_range[0], spec.port_range[1] + 1):
            ranges.setdefault(port, []).append(spec.name)
    every_range = {p for spec in known for p in range(spec.port_range[0], spec.port_range[1] + 1)}
    # Jupyter servers listening outside every range, on top of the ranges themselves.
    for port, pids in listening.items():
        if port not in every_range and any(pid in servers for pid in pids if pid is not None):
            ranges.setdefault(port, [])
    rows = []
    for port in sorted(ranges):
        pids = listening.get(port, [])
        row: Dict[str, Any] = {"host": host, "port": port, "state": "free", "pid": None, "project": None,
                               "process": None, "range": ranges[port]}
        known_pid: Optional[int] = next((p for p in pids if p is not None), None)
        if known_pid is not None and known_pid in servers:
            entry = servers[known_pid]
            row.update(state="jupyter", pid=known_pid, project=entry.project, process=entry.view.proc.name)
        elif known_pid is not None:
            row.update(state="other", pid=known_pid, process=_process_name(known_pid))
        elif pids:
            row.update(state="other", process="unknown (another user)")
        rows.append(row)
    return rows
