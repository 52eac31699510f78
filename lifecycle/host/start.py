"""Starting a project's server in the background (or attached, for --foreground)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

import psutil

from . import jupyter_api, logrotate
from .context import OpContext, interrupt_held
from .fleet import Survey, survey
from .fsutil import PRIVATE_FILE, private_dir, tail_lines, tighten
from .identify import ServerRef, handle
from .layout import APP_MODULES, APP_PATHS, Layout
from .lock import LockTimeout, project_lock
from .ports import PortClaims, PortUnavailable, port_free
from .results import CHANGED, FAILED, OK, Result
from .runtime import ServerInfo, clean_stale, read_info, remove_server_files
from .spec import ProjectSpec
from .stop import lock_wait, look, orphan_kernels, shutdown_process, take_down, tree
from .tracking import remove_stale, remove_tracking, write_tracking

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


def start(spec: ProjectSpec, ctx: OpContext, port: Optional[int] = None,
          found: Optional[Survey] = None) -> Result:
    """Start the project's server unless it runs.  Idempotent: a running project is ``ok``.

    Holds the project's lock from the look to the end, so concurrent starts
    give one server.  The pid file is written before waiting; if the server
    dies, never answers ``/api`` by the deadline, or cannot be recorded (full
    disk), it is stopped and the start fails with the cause, leaving nothing
    running and no pid file behind.
    """
    layout = Layout.of(spec)
    found = found or survey([spec])
    if ctx.check:
        return start_unlocked(spec, layout, ctx, port, found)
    try:
        with project_lock(layout, lock_wait(spec), lambda msg: ctx.progress(spec.name, msg)):
            return start_unlocked(spec, layout, ctx, port, found)
    except LockTimeout as exc:
        return ctx.result(spec.name, "start", FAILED, str(exc))


def start_unlocked(spec: ProjectSpec, layout: Layout, ctx: OpContext, port: Optional[int],
                   found: Survey) -> Result:
    """``start`` for a caller that holds the project's lock (or is in check mode)."""
    problems: List[str] = []
    if not ctx.check:
        clean_stale(layout.runtime_dir, found.snapshot, problems)
    tracking = look(layout, found, spec.name)
    server = tracking.server
    if server is not None and port is not None and server.port is not None and server.port != port:
        return _running_result(spec, ctx, server,
                               f"refusing --port {port}: already running on port {server.port} "
                               f"(restart {spec.name} --port {port} moves it)", FAILED)
    if server is not None and server.tracked:
        return _running_result(spec, ctx, server, "already running")
    if server is not None:
        how = ("started by hand without the project's isolation env" if server.found_by == "root dir"
               else "it had no pid file")
        if ctx.check:
            return _running_result(spec, ctx, server, f"would adopt untracked server ({how})", CHANGED)
        adopted = handle(server.proc)
        if adopted is not None:
            write_tracking(layout, adopted, {"port": server.port, "adopted": True})
            return _running_result(spec, ctx, server, f"adopted untracked server ({how})", CHANGED)
    verb = "would remove" if ctx.check else "removed"
    notes = [f"{verb} stale pid file ({why})" for _, why in tracking.stale]
    leftovers, _ = orphan_kernels(found, spec.name)
    if leftovers:
        # Not ours to kill on start: a kernel of a crashed server may still hold work.
        notes.append(f"note: {len(leftovers)} orphan kernel process(es) of a previous server still run "
                     f"(stop {spec.name} reaps them)")
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
        remove_stale(layout, {p: tracking.raw[p] for p, _ in tracking.stale}, problems)
    claims = PortClaims()
    try:
        chosen = claims.acquire(spec.ip, low, high, wanted=port)
    except PortUnavailable as exc:
        return ctx.result(spec.name, "start", FAILED, str(exc))
    try:
        return _launch(spec, layout, ctx, chosen, notes + [f"warning: {p}" for p in problems])
    finally:
        claims.release(chosen)


def _prepare_files(layout: Layout, keep: int) -> None:
    """The dirs a server writes to, with the private ones owner-only, and a fresh log."""
    # .logs holds the pid file, identity and log (the log prints the token);
    # the runtime dir holds jpserver-*.json and the -open.html login page.
    private_dir(layout.logs_dir)
    private_dir(layout.runtime_dir)
    for d in layout.isolation_dirs:
        d.mkdir(parents=True, exist_ok=True)
    for f in (layout.pid_file, layout.meta_file, layout.log_file, logrotate.rotated(layout.log_file, 1)):
        tighten(f)
    logrotate.begin_new_log(layout.log_file, keep)


def _launch(spec: ProjectSpec, layout: Layout, ctx: OpContext, port: int, notes: List[str]) -> Result:
    try:
        _prepare_files(layout, spec.log_keep)
        log_fd = os.open(str(layout.log_file), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        return ctx.result(spec.name, "start", FAILED, f"cannot prepare {layout.logs_dir}: {_why(exc)}")
    cmd = server_command(spec, layout, port)
    popen: Optional["subprocess.Popen[bytes]"] = None
    try:
        # Ctrl-C inside Popen() (the server already exec'd, the parent still waiting on its status
        # pipe) would lose the server: nobody could stop it. Hold it until Popen returns.
        with interrupt_held():
            popen = subprocess.Popen(
                cmd, cwd=str(layout.root), env=layout.server_env(spec),
                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                # Its own session: closing the terminal (SIGHUP) or Ctrl-C in it
                # does not reach the server.
                start_new_session=True, close_fds=True,
                # Everything the server writes (its -open.html login page, notebooks'
                # checkpoints) is private: several of them carry the token.
                umask=0o077,
            )
    except OSError as exc:
        return ctx.result(spec.name, "start", FAILED, f"cannot run {cmd[0]}: {_why(exc)}")
    except BaseException:
        if popen is not None:
            _kill_spawned(popen)
        raise
    finally:
        os.close(log_fd)
    started = time.time()
    proc: Optional[psutil.Process] = None
    try:
        proc = psutil.Process(popen.pid)
        write_tracking(layout, proc, {"port": port, "ip": spec.ip, "app": spec.app,
                                      "started": iso(proc.create_time()), "log": str(layout.log_file)},
                       cmdline=cmd)
    except psutil.NoSuchProcess:
        proc = None
    except BaseException as exc:
        # Spawned but not recorded (a full or read-only .logs): a server nobody
        # tracks is worse than none.  It is our child, so it is safe to kill.
        _kill_spawned(popen)
        _failed_start(spec, layout, ctx, popen.pid, "")
        if not isinstance(exc, Exception):
            raise
        return ctx.result(spec.name, "start", FAILED,
                          f"could not record the server in {layout.logs_dir} ({_why(exc)}); stopped it again")
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
    except BaseException:
        # Interrupted while waiting: leave nothing half-started behind.
        _kill_spawned(popen)
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


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on device"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return f"{type(exc).__name__}: {exc}"


def _kill_spawned(popen: "subprocess.Popen[bytes]") -> None:
    """Stop a server we just spawned (our own child: its Popen handle cannot name another process)."""
    try:
        handles = tree(psutil.Process(popen.pid))
    except psutil.Error:
        handles = []
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=5.0)
    for h in handles[1:]:
        try:
            h.kill()
        except psutil.Error:
            pass


def _failed_start(spec: ProjectSpec, layout: Layout, ctx: OpContext, pid: int, why: str) -> Result:
    remove_tracking(layout, pid, [])
    remove_server_files(layout.runtime_dir, pid, [])
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
