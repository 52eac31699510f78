"""Read-only state of projects and of Jupyter servers that belong to none."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Set

from . import jupyter_api
from .context import OpContext
from .layout import Layout
from .procs import Snapshot, is_kernel, port_from_cmdline, rss_bytes, take_snapshot
from .runtime import clean_stale
from .servers import owner, view
from .spec import ProjectSpec
from .start import iso, server_urls
from .tracking import find_server

# API probes are network-bound: run several at once.
_PROBE_WORKERS = 8


def project_row(spec: ProjectSpec, snapshot: Snapshot, host: str, show_token: bool) -> Dict[str, Any]:
    """One project's status row.  Removes the project's stale runtime files as it goes."""
    layout = Layout.of(spec)
    clean_stale(layout.runtime_dir, snapshot)
    tracking = find_server(layout, snapshot)
    row: Dict[str, Any] = {
        "name": spec.name, "host": host, "path": str(layout.root), "state": "stopped",
        "pid": None, "port": None, "url": None, "started": None,
        "kernels": None, "busy_kernels": None, "rss_bytes": None,
        "tracked": None, "note": "",
    }
    server = tracking.server
    if server is None:
        if tracking.stale:
            row["state"] = "stale"
            row["note"] = "; ".join(why for _, why in tracking.stale)
        return row
    urls = server_urls(spec, server.port, server.info)
    base = server.info.api_base if server.info is not None else jupyter_api.base_url(spec.ip, server.port or 0)
    answering = server.port is not None and jupyter_api.answers(base)
    children = [p for p in snapshot.descendants(server.pid)]
    kernels: Optional[List[Dict[str, Any]]] = None
    if answering and server.info is not None and server.info.token:
        kernels = jupyter_api.kernels(base, server.info.token)
    if kernels is not None:
        row["kernels"] = len(kernels)
        row["busy_kernels"] = sum(1 for k in kernels if k.get("execution_state") == "busy")
    else:
        row["kernels"] = sum(1 for p in children if is_kernel(p.cmdline))
    row.update(
        state="running" if answering else "starting",
        pid=server.pid, port=server.port, url=urls["url"],
        started=iso(server.proc.create_time),
        rss_bytes=rss_bytes([server.pid] + [p.pid for p in children]),
        tracked=server.tracked,
    )
    if not server.tracked:
        row["note"] = "no pid file (started outside the tool)"
    if show_token:
        row["token_url"] = urls["token_url"]
    return row


def unmanaged_rows(snapshot: Snapshot, host: str, roots: Dict[str, str], claimed: Set[int]) -> List[Dict[str, Any]]:
    """Servers on this host that lie in no known project directory."""
    rows = []
    for proc in sorted(snapshot.servers(), key=lambda p: p.pid):
        if proc.pid in claimed:
            continue
        sv = view(proc)
        if owner(sv, roots) is not None:
            continue
        port = sv.info.port if sv.info is not None else port_from_cmdline(proc.cmdline)
        url = sv.info.api_base + "/" if sv.info is not None else None
        rows.append({
            "host": host, "pid": proc.pid, "port": port, "url": url,
            "root_dir": sv.info.root_dir if sv.info is not None else sv.cwd,
            "started": iso(proc.create_time),
            "rss_bytes": rss_bytes([proc.pid] + [p.pid for p in snapshot.descendants(proc.pid)]),
        })
    return rows


def status(specs: List[ProjectSpec], ctx: OpContext, roots: Dict[str, str],
           show_token: bool = False) -> Dict[str, Any]:
    """Status of the given projects plus unmanaged servers, from one process snapshot.

    ``roots`` maps every known project on this host (selected or not) to its
    directory, so that a server of an unselected project is not 'unmanaged'.
    """
    snapshot = take_snapshot()
    with ThreadPoolExecutor(max_workers=_PROBE_WORKERS) as pool:
        rows = list(pool.map(lambda s: project_row(s, snapshot, ctx.host, show_token), specs))
    all_roots = dict(roots)
    all_roots.update({s.name: str(Layout.of(s).root) for s in specs})
    claimed = {r["pid"] for r in rows if r["pid"] is not None}
    return {"version": 1, "projects": rows, "unmanaged": unmanaged_rows(snapshot, ctx.host, all_roots, claimed)}
