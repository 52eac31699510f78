"""which: who owns a port, a pid or a path."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import psutil

from .fleet import Survey, owned_by_me, project_of_path
from .layout import APP_PATHS
from .ports import listeners
from .procs import Proc, is_kernel_proc
from .servers import inside
from .spec import ProjectSpec
from .start import iso


class WhichError(Exception):
    pass


def _server_of(pid: int, found: Survey) -> Optional[int]:
    """The Jupyter server ``pid`` is, or runs under."""
    seen = set()
    while pid and pid not in seen:
        seen.add(pid)
        if found.server(pid) is not None:
            return pid
        proc = found.snapshot.get(pid)
        if proc is None:
            return None
        pid = proc.ppid
    return None


def _describe_server(doc: Dict[str, Any], pid: int, found: Survey, specs: Dict[str, ProjectSpec],
                     show_token: bool) -> None:
    entry = found.server(pid)
    if entry is None:
        return
    info = entry.view.info
    doc["pid"] = pid
    doc["project"] = doc.get("project") or entry.project
    doc["started"] = iso(entry.view.proc.create_time)
    doc["tracked"] = entry.tracked_by is not None
    if info is not None:
        app = specs[entry.project].app if entry.project in specs else "lab"
        doc["port"] = info.port
        doc["url"] = f"{info.api_base}/{APP_PATHS.get(app, 'lab')}"
        # The token is the server owner's secret: only when asked for, and to that user only.
        if show_token and info.token and owned_by_me(entry.view.proc):
            doc["token_url"] = f"{doc['url']}?token={info.token}"


def which(target: str, known: List[ProjectSpec], found: Survey, host: str,
          show_token: bool = False) -> Dict[str, Any]:
    specs = {s.name: s for s in known}
    roots = found.roots()
    doc: Dict[str, Any] = {"version": 1, "target": target, "kind": None, "project": None, "host": host,
                           "pid": None, "port": None, "url": None, "started": None}
    prefix, sep, rest = target.partition(":")
    kind, value = (prefix, rest) if sep and prefix in ("port", "pid") else ("", target)
    if not kind and value.isdigit():
        number = int(value)
        if number in listeners():
            kind = "port"
        elif psutil.pid_exists(number):
            kind = "pid"
        elif any(s.port_range[0] <= number <= s.port_range[1] for s in known):
            kind = "port"
        else:
            raise WhichError(f"nothing listens on port {number} and no process has pid {number}")
    if not target.strip():
        raise WhichError("which needs a port, a pid or a path, not an empty string")
    if kind and not value.isdigit():
        raise WhichError(f"{kind}: needs a number, got {value!r}")
    if kind == "port" and not 0 < int(value) <= 65535:
        raise WhichError(f"port: {value} is not a port number (1-65535)")
    if kind == "port":
        doc.update(kind="port", port=int(value))
        pids = [p for p in listeners().get(int(value), []) if p is not None]
        ranges = [s.name for s in known if s.port_range[0] <= int(value) <= s.port_range[1]]
        doc["range"] = ranges
        if not pids:
            doc["process"] = None
            return doc
        server = _server_of(pids[0], found)
        if server is None:
            doc.update(pid=pids[0], process=_name(found.snapshot.get(pids[0])))
            return doc
        _describe_server(doc, server, found, specs, show_token)
        return doc
    if kind == "pid":
        pid = int(value)
        proc = found.snapshot.get(pid)
        if proc is None:
            raise WhichError(f"no process has pid {pid}")
        server = _server_of(pid, found)
        doc.update(kind="pid", process=_name(proc),
                   role="server" if server == pid else ("kernel" if is_kernel_proc(proc) else "other"))
        if server is not None:
            _describe_server(doc, server, found, specs, show_token)
        else:
            kernel = next((k for k in found.orphan_kernels if k.proc.pid == pid), None)
            doc.update(pid=pid, started=iso(proc.create_time), project=kernel.project if kernel else None,
                       orphan=kernel is not None)
        return doc
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.exists(path):
        raise WhichError(f"{target!r} is not a port, a running pid, or an existing path")
    doc.update(kind="path", project=project_of_path(path, roots))
    if doc["project"] is not None:
        tracking = found.tracking[doc["project"]]
        if tracking.server is not None:
            _describe_server(doc, tracking.server.pid, found, specs, show_token)
        return doc
    # Outside every project: the deepest server whose root holds the path.
    holders = [s for s in found.servers if s.view.info and inside(path, s.view.info.root_dir)]
    if holders:
        best = max(holders, key=lambda s: len(s.view.info.root_dir) if s.view.info else 0)
        _describe_server(doc, best.pid, found, specs, show_token)
    return doc


def _name(proc: Optional[Proc]) -> Optional[str]:
    return proc.name if proc is not None else None
