"""Starting a project's server in the background (or attached, for --foreground)."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

import psutil

from . import jupyter_api
from .context import OpContext
from .fsutil import tail_lines
from .layout import APP_MODULES, APP_PATHS, Layout
from .ports import PortClaims, PortUnavailable, port_free
from .procs import Snapshot, take_snapshot
from .results import CHANGED, FAILED, OK, Result
from .runtime import ServerInfo, clean_stale, read_info, remove_server_files
from .spec import ProjectSpec
from .stop import shutdown_process, take_down
from .tracking import ServerRef, find_server, handle, remove_tracking, write_tracking

LOG_TAIL = 15


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def server_urls(spec: ProjectSpec, port: Optional[int], info: Optional[ServerInfo]) -> Dict[str, str]:
    """The user-facing URL without token, and the same URL with it."""
    base = info.api_base if info is not None else jupyter_api.base_url(spec.ip, port or 0)
    url = f"{base}/{APP_PATHS.get(spec.app, 'lab')}"
    token = info.token if info is not None else ""
    return {"url": url, "token_url": f"{url}?token={token}" if token else url}


def server_command(spec: ProjectSpec, layout: Layout, port: int) -> List[str]:
    cmd = [
        str(layout.venv_python), "-m", APP_MODULES[spec.app],
        "--no-browser",
        f"--ip={spec.ip}",
        f"--port={port}",
        # We own port allocation; Jupyter must not silently pick another one.
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={layout.notebook_root(spec)}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    cmd.extend(spec.args)
    return cmd


def _running_result(spec: ProjectSpec, ctx: OpContext, server: ServerRef, msg: str,
                    status: str = OK) -> Result:
    urls = server_urls(spec, server.port, server.info)
    return ctx.result(spec.name, "start", status, f"{msg} on {urls['url']} pid {server.pid}",
                      facts={"pid": server.pid, "port": server.port, "url": urls["url"]},
                      secret={"token_url": urls["token_url"]})


def _rotate(log_file: "os.PathLike[str]") -> None:
    path = os.fspath(log_file)
    if os.path.exists(path):
        os.replace(path, path + ".1")


def start(spec: ProjectSpec, ctx: OpContext, port: Optional[int] = None,
          snapshot: Optional[Snapshot] = None) -> Result:
    """Start the project's server unless it runs.  Idempotent: a running project is ``ok``.

    The pid file is written before waiting; if the server dies or never
    answers ``/api`` by the deadline, it fails with the log tail and leaves
    no pid file behind.
    """
    layout = Layout.of(spec)
    snapshot = snapshot or take_snapshot()
    if not ctx.check:
        clean_stale(layout.runtime_dir, snapshot)
    tracking = find_server(layout, snapshot)
    server = tracking.server
    if server is not None and server.tracked:
        return _running_result(spec, ctx, server, "already running")
    if server is not None:
        if ctx.check:
            return _running_result(spec, ctx, server, "would adopt untracked server", CHANGED)
        adopted = handle(server.proc)
        if adopted is not None:
            write_tracking(layout, adopted, {"port": server.port, "adopted": True})
            return _running_result(spec, ctx, server, "adopted untracked server", CHANGED)
    verb = "would remove" if ctx.check else "removed"
    notes = [f"{verb} stale pid file ({why})" for _, why in tracking.stale]
    if not layout.venv_python.exists():
        return ctx.result(spec.name, "start", FAILED,
                          f"no venv at {layout.venv}: run bootstrap {spec.name} first")
    low, high = spec.port_range
    if ctx.check:
        candidates = [port] if port is not None else range(low, high + 1)
        free = next((p for p in candidates if port_free(spec.ip, p)), None)
        if free is None:
            return ctx.result(spec.name, "start", FAILED, "no free port" if port is None else f"port {port} is in use")
        return ctx.result(spec.name, "start", CHANGED, "; ".join(notes + [f"would start on port {free}"]))
    if tracking.stale:
        remove_tracking(layout)
    claims = PortClaims()
    try:
        chosen = claims.acquire(spec.ip, low, high, wanted=port)
    except PortUnavailable as exc:
        return ctx.result(spec.name, "start", FAILED, str(exc))
    try:
        return _launch(spec, layout, ctx, chosen, notes)
    finally:
        claims.release(chosen)


def _launch(spec: ProjectSpec, layout: Layout, ctx: OpContext, port: int, notes: List[str]) -> Result:
    for d in [layout.logs_dir] + layout.isolation_dirs:
        d.mkdir(parents=True, exist_ok=True)
    _rotate(layout.log_file)
    cmd = server_command(spec, layout, port)
    with open(layout.log_file, "ab") as log:
        popen = subprocess.Popen(
            cmd, cwd=str(layout.root), env=layout.server_env(spec),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            # Its own session: closing the terminal (SIGHUP) or Ctrl-C in it
            # does not reach the server.
            start_new_session=True, close_fds=True,
        )
    started = time.time()
    try:
        proc = psutil.Process(popen.pid)
        write_tracking(layout, proc, {"port": port, "ip": spec.ip, "app": spec.app,
                                      "started": iso(proc.create_time()), "log": str(layout.log_file)},
                       cmdline=cmd)
    except psutil.NoSuchProcess:
        proc = None
    base = jupyter_api.base_url(spec.ip, port)
    deadline = started + spec.start_timeout
    delay = 0.05
    try:
        while True:
            code = popen.poll()
            if code is not None or proc is None:
                return _failed_start(spec, layout, ctx, popen.pid,
                                     f"jupyter exited with code {code} during startup")
            if jupyter_api.answers(base, timeout=1.0):
                break
            if time.time() > deadline:
                shutdown_process(proc, None, 5.0)
                return _failed_start(spec, layout, ctx, popen.pid,
                                     f"jupyter did not answer on port {port} within {spec.start_timeout:g}s")
            ctx.progress(spec.name, f"waiting for {base}/api ({time.time() - started:.0f}s)")
            time.sleep(delay)
            delay = min(delay * 1.4, 0.25)
    except KeyboardInterrupt:
        # Interrupted while waiting: leave nothing half-started behind.
        if proc is not None:
            shutdown_process(proc, None, 5.0)
        _failed_start(spec, layout, ctx, popen.pid, "interrupted")
        raise
    info = read_info(layout.runtime_dir / f"jpserver-{popen.pid}.json")
    urls = server_urls(spec, port, info)
    msg = "; ".join(notes + [f"started on {urls['url']} pid {popen.pid} in {time.time() - started:.1f}s"])
    return ctx.result(spec.name, "start", CHANGED, msg,
                      diff={"before": {"state": "stopped"},
                            "after": {"state": "running", "pid": popen.pid, "port": port}},
                      facts={"pid": popen.pid, "port": port, "url": urls["url"]},
                      secret={"token_url": urls["token_url"]})


def _failed_start(spec: ProjectSpec, layout: Layout, ctx: OpContext, pid: int, why: str) -> Result:
    remove_tracking(layout, pid)
    remove_server_files(layout.runtime_dir, pid)
    tail = tail_lines(layout.log_file, LOG_TAIL)
    msg = why + (f"; last lines of {layout.log_file}:\n" + "\n".join(tail) if tail else "")
    return ctx.result(spec.name, "start", FAILED, msg)


def run_attached(spec: ProjectSpec, ctx: OpContext, started: Result) -> Result:
    """Follow the log of a just-started server until it exits or Ctrl-C; then stop it cleanly."""
    pid = int(started.facts["pid"])
    layout = Layout.of(spec)
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return ctx.result(spec.name, "stop", OK, "server already exited")
    info = read_info(layout.runtime_dir / f"jpserver-{pid}.json")
    snapshot_kernels: List[psutil.Process] = []
    try:
        with open(layout.log_file, "rb") as fh:
            while True:
                chunk = fh.read()
                if chunk:
                    ctx.emit({"event": "log", "project": spec.name, "text": chunk.decode("utf-8", "replace")})
                if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                    break
                snapshot_kernels = proc.children(recursive=True)
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except psutil.NoSuchProcess:
        pass
    kernels = list(snapshot_kernels)
    try:
        kernels = proc.children(recursive=True) or kernels
    except psutil.NoSuchProcess:
        pass
    method, reaped = take_down(proc, info, kernels, spec.stop_timeout)
    remove_tracking(layout, pid)
    remove_server_files(layout.runtime_dir, pid)
    return ctx.result(spec.name, "stop", CHANGED, f"stopped pid {pid} ({method}); {reaped} kernel(s) reaped")
