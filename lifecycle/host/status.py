"""Read-only state of projects and of Jupyter servers that belong to none."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Sequence, Set

from . import jupyter_api, runstate
from .context import OpContext
from .fleet import Survey, survey
from .fsutil import not_a_directory
from .layout import Layout
from .procs import is_kernel_proc, machine_id, port_from_cmdline, rss_bytes, usage
from .runtime import clean_stale
from .spec import ProjectSpec
from .start import iso, server_urls

# API probes are network-bound: run several at once.
_PROBE_WORKERS = 8


def project_row(spec: ProjectSpec, found: Survey, host: str, show_token: bool) -> Dict[str, Any]:
    """One project's status row.  Removes the project's stale runtime files as it goes.

    Never raises: whatever goes wrong with one project is a note on its row,
    not the end of the whole table.
    """
    layout = Layout.of(spec)
    row: Dict[str, Any] = {
        "name": spec.name, "host": host, "path": str(layout.root), "state": "stopped",
        "pid": None, "port": None, "url": None, "started": None,
        "kernels": None, "busy_kernels": None, "rss_bytes": None,
        "tracked": None, "note": "", "restarts": 0, "last_exit": None, "cpu_seconds": None,
    }
    why = not_a_directory(str(layout.root))
    if why is not None:
        row.update(state="missing", note=why)
        return row
    problems: List[str] = []
    try:
        _fill_row(row, spec, layout, found, show_token, problems)
    except Exception as exc:  # one project's trouble must not take the fleet view down
        problems.append(f"could not read this project's state: {type(exc).__name__}: {exc}")
    problems += supervision_notes(row, runstate.read(layout))
    orphaned = [k for k in found.orphan_kernels if k.project == spec.name]
    if orphaned:
        n = len(orphaned)
        problems.append(f"{n} kernel process{'es' if n != 1 else ''} left by a server that is gone "
                        f"(pid {', '.join(str(k.proc.pid) for k in orphaned)}; stop reaps them)")
    row["note"] = "; ".join(filter(None, [row["note"], *problems]))
    return row


def _fill_row(row: Dict[str, Any], spec: ProjectSpec, layout: Layout, found: Survey, show_token: bool,
              problems: List[str]) -> None:
    snapshot = found.snapshot
    clean_stale(layout.runtime_dir, snapshot, problems)
    tracking = found.tracking[spec.name]
    server = tracking.server
    if server is None:
        if tracking.stale:
            row["state"] = "stale"
            row["note"] = "; ".join(why for _, why in tracking.stale)
        return
    urls = server_urls(spec, server.port, server.info)
    base = server.info.api_base if server.info is not None else jupyter_api.base_url(spec.ip, server.port or 0)
    answering = server.port is not None and jupyter_api.answers(base)
    children = [p for p in snapshot.descendants(server.pid)]
    kernels = jupyter_api.server_kernels(server.info) if answering else None
    rss, cpu = usage([server.pid] + [p.pid for p in children])
    if kernels is not None:
        row["kernels"] = len(kernels)
        row["busy_kernels"] = jupyter_api.busy_count(kernels)
    else:
        row["kernels"] = sum(1 for p in children if is_kernel_proc(p))
    row.update(
        state="running" if answering else "starting",
        pid=server.pid, port=server.port, url=urls["url"],
        started=iso(server.proc.create_time),
        rss_bytes=rss, cpu_seconds=round(cpu, 3),
        tracked=server.tracked,
    )
    if not server.tracked:
        row["note"] = ("no pid file (started by hand, without the project's isolation env)"
                       if server.found_by == "root dir" else "no pid file (started outside the tool)")
    if show_token:
        row["token_url"] = urls["token_url"]


def supervision_notes(row: Dict[str, Any], state: runstate.RunState) -> List[str]:
    """RESTARTS and the last exit (from the project's run state), and what the note says about them."""
    row["restarts"] = state.restarts
    row["last_exit"] = state.last_exit
    running = row["state"] in ("running", "starting")
    notes = []
    if state.gave_up and not running:
        notes.append(f"supervisor gave up: {state.gave_up.get('msg')} (start resumes)")
    elif state.pending and not running:
        notes.append(f"restart pending: {state.pending}")
    elif state.culled and row["state"] == "stopped" and state.wanted == runstate.STOPPED:
        notes.append(f"culled {state.culled.get('at')} after {state.culled.get('idle')} idle")
    if state.last_exit and (state.restarts or state.gave_up or state.pending):
        notes.append(f"last exit: {state.last_exit.get('reason')} ({state.last_exit.get('at')})")
    return notes


def unmanaged_rows(found: Survey, host: str, claimed: Set[int]) -> List[Dict[str, Any]]:
    """Servers on this host that lie in no known project directory."""
    rows = []
    for entry in found.servers:
        if entry.project is not None or entry.pid in claimed:
            continue
        proc, info = entry.view.proc, entry.view.info
        rows.append({
            "host": host, "pid": proc.pid, "port": info.port if info is not None else port_from_cmdline(proc.cmdline),
            "url": info.api_base + "/" if info is not None else None,
            "root_dir": info.root_dir if info is not None else entry.view.cwd,
            "started": iso(proc.create_time),
            "rss_bytes": rss_bytes([proc.pid] + [p.pid for p in found.snapshot.descendants(proc.pid)]),
        })
    return rows


def status(specs: List[ProjectSpec], known: List[ProjectSpec], ctx: OpContext,
           show_token: bool = False, peers: Sequence[ProjectSpec] = ()) -> Dict[str, Any]:
    """Status of the given projects plus unmanaged servers, from one process snapshot.

    ``known`` is every project on this host (selected or not), so that a
    server of an unselected project is not called unmanaged; ``peers`` (the
    other hosts' projects) do the same for this machine reached under another name.
    """
    found = survey(known, peers=peers)
    with ThreadPoolExecutor(max_workers=_PROBE_WORKERS) as pool:
        rows = list(pool.map(lambda s: project_row(s, found, ctx.host, show_token), specs))
    claimed = {r["pid"] for r in rows if r["pid"] is not None}
    # "sampled": when the looks were taken, on this host's clock (the live view's CPU % needs the interval).
    return {"version": 1, "projects": rows, "unmanaged": unmanaged_rows(found, ctx.host, claimed),
            "machine": machine_id(), "sampled": time.time()}
