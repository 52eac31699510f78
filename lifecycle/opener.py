"""``jlc open``: find each selected project's server (starting it if asked), then give the user its URL:
as is for a local project, through a tunnel for a remote one, in this process or detached."""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import transport
from . import tunnel_registry as registry
from .errors import EXIT_FAILED, EXIT_UNREACHABLE
from .host.fsutil import private_dir
from .host.ports import holder
from .host.results import FAILED, UNREACHABLE
from .inventory import LOCAL, Host, Inventory, Project
from .report import Reporter, redact
from .specs import project_spec
from .tunnel import Endpoint, Tunnel, TunnelEvent, TunnelOptions, local_url

STARTABLE = ("stopped", "stale")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long a detached tunnel may take to connect before we give up on it.
_DETACH_GRACE = 30.0


@dataclass(frozen=True)
class OpenOptions:
    browser: bool = True
    local_port: int | None = None
    start: bool = False
    detach: bool = False
    ask: bool = False  # may we ask on the terminal whether to start a stopped project
    tunnel: TunnelOptions = field(default_factory=TunnelOptions)


@dataclass
class Outcome:
    """What open did; ``code`` is the exit status it deserves."""

    code: int = 0

    def fail(self, code: int) -> None:
        # Unreachable (4) outranks a failed step (1), as in every other task.
        self.code = max(self.code, code)


# -- where the server is ---------------------------------------------------------

def remote_ip(ip: str) -> str:
    """The address to reach a server from its own host (a wildcard bind answers on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(ip, ip)


def endpoint(project: Project, row: dict[str, Any]) -> Endpoint | None:
    if row.get("state") in ("running", "starting") and row.get("port") and row.get("token_url"):
        return Endpoint(remote_ip(project.ip), int(row["port"]), str(row["token_url"]))
    return None


def status_request(inv: Inventory, project: Project) -> dict[str, Any]:
    known = [project_spec(p) for p in inv.projects.values() if p.host == project.host]
    return transport.build_request("status", project.host, [project_spec(project)], {"show_token": True}, known)


def locate(target: Host, request: dict[str, Any], ip: str) -> Endpoint | None:
    """Ask the host where the project's server is now; HostUnreachable when it cannot say."""
    from .errors_ssh import HostUnreachable
    from .remote_run import run_remote

    doc = run_remote(target, request, lambda e: None)
    rows = doc.get("projects") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or len(rows) != 1 or not isinstance(rows[0], dict):
        raise HostUnreachable(f"{target.name} gave no status for the project: {str(doc)[:200]}")
    row = rows[0]
    if row.get("state") in ("running", "starting") and row.get("port") and row.get("token_url"):
        return Endpoint(ip, int(row["port"]), str(row["token_url"]))
    return None


# -- the task ----------------------------------------------------------------------

def open_projects(inv: Inventory, projects: list[Project], opts: OpenOptions, reporter: Reporter) -> int:
    """Open every selected project; returns the exit status."""
    outcome = Outcome()
    ready = _running(inv, projects, opts, reporter, outcome)
    remote: list[tuple[Project, Endpoint]] = []
    for project, where in ready:
        if project.host == LOCAL:
            reporter.url(where.token_url)
            _browse(opts, where.token_url)
        else:
            remote.append((project, where))
    plans = _listen(remote, opts, reporter, outcome)
    if opts.detach:
        for plan in plans:
            _detach(inv, plan, opts, reporter, outcome)
        return outcome.code
    if plans:
        outcome.fail(_foreground(inv, plans, opts, reporter))
    return outcome.code


def _running(inv: Inventory, projects: list[Project], opts: OpenOptions, reporter: Reporter,
             outcome: Outcome) -> list[tuple[Project, Endpoint]]:
    """The selected projects whose server runs (after starting those the user wants started)."""
    answers = transport.run(inv, "status", projects, {"show_token": True}, reporter.event)
    ready: list[tuple[Project, Endpoint]] = []
    stopped: list[Project] = []
    for project in projects:
        answer = _answered(project, answers, reporter, outcome)
        if answer is None:
            continue
        row = next((r for r in answer.get("projects", []) if r.get("name") == project.name), None)
        where = endpoint(project, row) if row else None
        if where is not None:
            ready.append((project, where))
        elif row is not None and row.get("state") in STARTABLE:
            stopped.append(project)
        else:
            state = row.get("state") if row else "not reported"
            note = f" ({row['note']})" if row and row.get("note") else ""
            reporter.problem(project.host, project.name, f"{project.name} is {state} on {project.host}{note}")
            outcome.fail(EXIT_FAILED)
    wanted = [p for p in stopped if opts.start or (opts.ask and reporter.confirm(
        f"{p.name} is not running on {p.host}; start it? [y/N] "))]
    for p in stopped:
        if p not in wanted:
            reporter.problem(p.host, p.name, f"{p.name} is not running on {p.host}; start it with "
                                             f"'jlc open {p.name} --start' (or 'jlc start {p.name}')")
            outcome.fail(EXIT_FAILED)
    if wanted:
        ready += _start(inv, wanted, reporter, outcome)
    return ready


def _answered(project: Project, answers: dict[str, dict[str, Any]], reporter: Reporter,
              outcome: Outcome) -> dict[str, Any] | None:
    """The host's answer for ``project``, or None after saying why there is none (unreachable: exit 4;
    an error document: exit 1)."""
    answer = answers[project.host]
    if "unreachable" in answer:
        reporter.problem(project.host, project.name, f"host {project.host} unreachable: {answer['unreachable']}")
        outcome.fail(EXIT_UNREACHABLE)
        return None
    if "error" in answer:
        reporter.problem(project.host, project.name, f"host {project.host}: {answer['error']}")
        outcome.fail(EXIT_FAILED)
        return None
    return answer


def _start(inv: Inventory, projects: list[Project], reporter: Reporter,
           outcome: Outcome) -> list[tuple[Project, Endpoint]]:
    answers = transport.run(inv, "start", projects, {"check": False, "port": None, "foreground": False},
                            reporter.event)
    started: list[Project] = []
    for project in projects:
        answer = _answered(project, answers, reporter, outcome)
        if answer is None:
            continue
        results = [r for r in answer.get("results", []) if r.get("project") == project.name]
        if not results or any(r.get("status") in (FAILED, UNREACHABLE) for r in results):
            outcome.fail(EXIT_FAILED)  # the failed result was printed as it arrived
            continue
        started.append(project)
    if not started:
        return []
    # Ask again rather than trusting the start result: the printed URL must be the current one.
    return _running(inv, started, OpenOptions(), reporter, outcome)


# -- the local end -------------------------------------------------------------------

@dataclass
class Plan:
    project: Project
    where: Endpoint
    listener: socket.socket
    claim: int | None = None  # registry.claim's lock, held until the tunnel is recorded (or not made)


def _listen(remote: list[tuple[Project, Endpoint]], opts: OpenOptions, reporter: Reporter,
            outcome: Outcome) -> list[Plan]:
    """Bind each remote project's local port, or say why not; nothing is printed for a refused one."""
    plans: list[Plan] = []
    # Claims are held until the tunnels are made, so every opener takes them in one order (two opens
    # of 'a,b' that found a and b in different states would otherwise each hold one and wait for the other).
    for project, where in sorted(remote, key=lambda pw: (pw[0].host, pw[0].name)):
        held = registry.claim(project.name, project.host)
        plan = _plan(project, where, opts, reporter, outcome)
        if plan is None:
            registry.release(held)
        else:
            plan.claim = held
            plans.append(plan)
    return plans


def _plan(project: Project, where: Endpoint, opts: OpenOptions, reporter: Reporter, outcome: Outcome) -> Plan | None:
    """One project's bound port; None if it has a tunnel already or its port cannot be had."""
    record = registry.find(project.name, project.host)
    if record is not None and registry.process_of(record) is not None:
        if opts.local_port and opts.local_port != record.local_port:
            reporter.problem(project.host, project.name,
                             f"{project.name} already has a tunnel on 127.0.0.1:{record.local_port} (pid "
                             f"{record.pid}); close it first with 'jlc close {project.name}'")
            outcome.fail(EXIT_FAILED)
            return None
        reporter.note(project.host, project.name, f"tunnel already open on 127.0.0.1:{record.local_port} "
                                                  f"(pid {record.pid})")
        url = local_url(where.token_url, record.local_port)
        reporter.url(url)
        _browse(opts, url)
        return None
    if record is not None:
        registry.discard(record)
    try:
        listener = _bind(project, where, opts.local_port, reporter)
    except OSError as exc:
        reporter.problem(project.host, project.name, str(exc))
        outcome.fail(EXIT_FAILED)
        return None
    return Plan(project, where, listener)


def _bind(project: Project, where: Endpoint, requested: int | None, reporter: Reporter) -> socket.socket:
    """The project's local port: the one asked for, else its usual one, else the server's, else any free one."""
    from .forward import listen

    if requested:
        try:
            listener = listen(requested)
        except OSError as exc:
            raise OSError(f"--local-port {requested} {_why_not(requested, exc)}; choose another port or leave "
                          f"--local-port out") from None
        registry.remember_port(project.name, project.host, requested)
        return listener
    usual = registry.remembered_port(project.name, project.host)
    found: socket.socket | None = None
    for port in dict.fromkeys(p for p in (usual, where.port) if p):
        try:
            found = listen(port)
            break
        except OSError as exc:
            if port == usual:
                reporter.note(project.host, project.name, f"its usual local port {port} {_why_not(port, exc)}; "
                                                          f"using another one this time")
    listener = found or listen(0)
    if usual is None:
        registry.remember_port(project.name, project.host, int(listener.getsockname()[1]))
    return listener


def _why_not(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"is taken by {holder(port)}"
    return f"cannot be used: {exc.strerror or exc}"


def _browse(opts: OpenOptions, url: str) -> None:
    if opts.browser:
        webbrowser.open(url)


# -- tunnels in this process -------------------------------------------------------

def tracking(render: Callable[[TunnelEvent], None],
             records: dict[str, registry.TunnelRecord]) -> Callable[[TunnelEvent], None]:
    """Render a tunnel's events and keep its record's state current (for ``jlc tunnels``)."""
    states = {"lost": "reconnecting", "retrying": "reconnecting", "restored": "up", "moved": "up",
              "stopped": "server stopped"}

    def emit(event: TunnelEvent) -> None:
        render(event)
        record = records.get(registry.key(event.project, event.host))
        if record is None or event.kind not in states:
            return
        record.state = states[event.kind]
        record.note = "" if record.state == "up" else event.msg
        if event.kind == "moved" and event.url:
            record.url = event.url.split("?", 1)[0]
            record.remote_port = event.remote_port or record.remote_port
        try:
            registry.save(record)
        except OSError:
            pass  # a full disk must not take the tunnel down

    return emit


def _foreground(inv: Inventory, plans: list[Plan], opts: OpenOptions, reporter: Reporter) -> int:
    from .ssh import HostUnreachable

    records: dict[str, registry.TunnelRecord] = {}
    emit = tracking(reporter.tunnel, records)
    tunnels: list[Tunnel] = []
    code = 0
    try:
        for plan in plans:
            tun = _tunnel(inv, plan, opts, emit)
            try:
                tun.connect()
            except HostUnreachable as exc:
                plan.listener.close()
                registry.release(plan.claim)
                reporter.problem(plan.project.host, plan.project.name, f"host {plan.project.host} unreachable: {exc}")
                code = max(code, EXIT_UNREACHABLE)
                continue
            tunnels.append(tun)
            record = registry.new_record(plan.project.name, plan.project.host, tun.local_port, plan.where.port,
                                         tun.url.split("?", 1)[0], detached=False)
            registry.save(record)
            registry.release(plan.claim)
            records[record.key] = record
            reporter.note(plan.project.host, plan.project.name,
                          f"tunnel 127.0.0.1:{tun.local_port} -> {plan.project.host}:{plan.where.port} open; "
                          f"Ctrl-C closes it")
            reporter.url(tun.url)
            _browse(opts, tun.url)
        if not tunnels:
            return code
        ended = run_tunnels(tunnels)
        if ended.signal is not None:
            reporter.closed([(t.target.name, t.project) for t in tunnels], ended.signal)
        return max(code, ended.code)
    finally:
        for tun in tunnels:
            tun.close()
        for record in records.values():
            registry.discard(record)


def _tunnel(inv: Inventory, plan: Plan, opts: OpenOptions, emit: Callable[[TunnelEvent], None]) -> Tunnel:
    target = inv.hosts[plan.project.host]
    request = status_request(inv, plan.project)
    return Tunnel(target, plan.project.name, plan.listener, plan.where,
                  lambda: locate(target, request, plan.where.ip), opts.tunnel, emit)


@dataclass
class Ended:
    code: int
    signal: int | None


def run_tunnels(tunnels: list[Tunnel]) -> Ended:
    """Carry the tunnels until SIGINT, SIGTERM or SIGHUP (exit 128+signal) or until each has given up."""
    stop = threading.Event()
    caught: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        caught.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    codes: list[int] = []
    threads = [threading.Thread(target=lambda t=t: codes.append(t.run(stop)), name="tunnel", daemon=True)
               for t in tunnels]
    try:
        for th in threads:
            th.start()
        while not stop.is_set() and any(th.is_alive() for th in threads):
            stop.wait(0.5)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=2)  # a reconnect attempt may be mid-connect: do not wait it out
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        return Ended(128 + caught[0], caught[0])
    return Ended(max(codes, default=0), None)


# -- detached tunnels ----------------------------------------------------------------

def _detach(inv: Inventory, plan: Plan, opts: OpenOptions, reporter: Reporter, outcome: Outcome) -> None:
    """Hand the bound port to a process of its own and wait until its tunnel is connected."""
    project = plan.project
    target = inv.hosts[project.host]
    log = registry.tunnels_dir() / f"{registry.key(project.name, project.host)}.log"
    private_dir(registry.tunnels_dir())
    spec = {"target": asdict(target), "project": project.name, "endpoint": asdict(plan.where),
            "request": status_request(inv, project), "options": asdict(opts.tunnel),
            "listener_fd": plan.listener.fileno(), "log": str(log)}
    read_end, write_end = os.pipe()
    spec["ready_fd"] = write_end
    log_fd = os.open(str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(log_fd, 0o600)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lifecycle.tunneld", registry.key(project.name, project.host)],
                                stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd,
                                pass_fds=(plan.listener.fileno(), write_end), start_new_session=True)
    finally:
        os.close(write_end)
        os.close(log_fd)
        plan.listener.close()  # the child holds it now
    ready = False
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        answer = _read_answer(read_end, target.connect_timeout + _DETACH_GRACE)
        if answer.get("ok"):
            ready = True
            reporter.note(project.host, project.name,
                          f"tunnel 127.0.0.1:{answer['local_port']} -> {project.host}:{plan.where.port} runs "
                          f"in the background (pid {proc.pid}); 'jlc close {project.name}' ends it")
            url = local_url(plan.where.token_url, int(answer["local_port"]))
            reporter.url(url)
            _browse(opts, url)
            return
        why = answer.get("error") or f"the tunnel process ended without a word (see {log})"
        reporter.problem(project.host, project.name, str(why))
        outcome.fail(int(answer.get("code") or EXIT_FAILED))
    finally:
        os.close(read_end)
        if not ready and proc.poll() is None:
            proc.kill()  # ours, just spawned: no identification needed
        if not ready:
            proc.wait()
        # Recorded by the child (ready) or not made, and the child gone (not ready): the next opener may
        # look; released earlier, it could find the record of a child that is about to be killed.
        registry.release(plan.claim)


def _read_answer(fd: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"error": f"the tunnel did not connect within {timeout:g}s", "code": EXIT_UNREACHABLE}
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    try:
        answer = json.loads(data.split(b"\n", 1)[0] or b"{}")
    except ValueError:
        return {"error": f"the tunnel process said: {redact(data.decode('utf-8', 'replace'))[:200]}"}
    return answer if isinstance(answer, dict) else {}
