"""One local port carried to one remote project's Jupyter server: connected, kept alive, reconnected.

The SSH session is the same one every other task opens (``ssh.connect``: the
inventory's host settings, the user's ssh config, ProxyJump, and our host-key
policy), so a tunnel reaches exactly the hosts the other tasks reach.

Liveness: every ``keepalive`` seconds the tunnel sends a global request that
the server must answer; data arriving on any forwarded connection counts as
an answer too.  A session closed by the far end is noticed at once; one that
went silent (laptop sleep, network change, a frozen host) is declared dead
after ``2 x keepalive`` seconds without a sign of life.  Then the tunnel
reconnects for up to ``reconnect`` seconds, asking the host afresh where the
project's server is, while it keeps holding the local port (so nothing else
can take it and bookmarks keep pointing here).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EXIT_OK, EXIT_UNREACHABLE
from .forward import Dest, Forwarder
from .inventory import Host
from .ssh import HostUnreachable, connect, disconnect

# Backoff between reconnection attempts, in seconds.
_FIRST_RETRY = 1.0
_MAX_RETRY = 15.0
# A refused connection asks the host where the server went at most this often.
_RELOCATE_EVERY = 3.0


@dataclass(frozen=True)
class Endpoint:
    """Where a project's server listens, as seen from its host, and its URL with the token."""

    ip: str
    port: int
    token_url: str

    @property
    def dest(self) -> Dest:
        return (self.ip, self.port)


@dataclass(frozen=True)
class TunnelEvent:
    """Something the user should hear about a tunnel; ``url`` (with token) when it is new to them."""

    kind: str  # open | lost | retrying | restored | moved | stopped | closed | gave-up
    project: str
    host: str
    msg: str
    url: str | None = None
    local_port: int | None = None
    remote_port: int | None = None


@dataclass(frozen=True)
class TunnelOptions:
    keepalive: float = 10.0  # seconds between liveness probes; 0: none
    reconnect: float = 300.0  # seconds to keep trying after losing the session; 0: exit at once


# Asks the host where the project's server is now: an Endpoint, None when it does
# not run, HostUnreachable when the host cannot be asked.
Locate = Callable[[], "Endpoint | None"]
Emit = Callable[[TunnelEvent], None]


def local_url(token_url: str, port: int) -> str:
    """The server's URL (with its token) as reached through the tunnel's local port."""
    parts = urllib.parse.urlsplit(token_url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


class Session:
    """One verified SSH connection and its liveness."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.transport = conn.transport
        self.last_life = time.monotonic()
        self._probing = threading.Lock()
        sock = getattr(self.transport, "sock", None)
        if isinstance(sock, socket.socket):
            # Kernel messages and small requests should not wait for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def open(cls, target: Host) -> Session:
        return cls(connect(target))

    def alive(self) -> bool:
        return bool(self.transport.is_active())

    def life(self) -> None:
        self.last_life = time.monotonic()

    def probe(self) -> None:
        """Ask for an answer without waiting for it; the answer refreshes ``last_life``."""
        if not self._probing.acquire(blocking=False):
            return  # the previous probe is still unanswered

        def ask() -> None:
            try:
                # sshd answers any global request it does not know with a failure
                # message: an answer is all we want.
                self.transport.global_request("keepalive@openssh.com", wait=True)
                if self.transport.is_active():
                    self.life()
            except Exception:  # noqa: BLE001 - a dying transport may raise anything; the watchdog decides
                pass
            finally:
                self._probing.release()

        threading.Thread(target=ask, name="tunnel-probe", daemon=True).start()

    def close(self) -> None:
        disconnect(self.conn)


class Tunnel:
    """A local listener forwarding to ``project``'s server on ``target``; see the module docstring."""

    def __init__(self, target: Host, project: str, listener: socket.socket, endpoint: Endpoint,
                 locate: Locate, options: TunnelOptions, emit: Emit) -> None:
        self.target = target
        self.project = project
        self.endpoint = endpoint
        self.locate = locate
        self.options = options
        self.emit = emit
        self.local_port = int(listener.getsockname()[1])
        self.session: Session | None = None
        self._relocate = threading.Lock()
        self._located_at = 0.0
        self._said_stopped = False
        self.forwarder = Forwarder(listener, self._life, self._refused)

    @property
    def url(self) -> str:
        return local_url(self.endpoint.token_url, self.local_port)

    def connect(self) -> None:
        """Open the first session and start accepting; HostUnreachable if the host cannot be reached."""
        self.session = Session.open(self.target)
        self.forwarder.attach(self.session.transport, self.endpoint.dest)
        self.forwarder.start()

    def run(self, stop: threading.Event) -> int:
        """Carry connections until ``stop`` is set (0) or the host stays unreachable (4)."""
        while True:
            reason = self._watch(stop)
            if reason is None:
                return EXIT_OK
            self._drop()
            if not self.options.reconnect:
                self._say("gave-up", f"tunnel lost: {reason}; closed")
                return EXIT_UNREACHABLE
            self._say("lost", f"tunnel lost: {reason}; reconnecting")
            code = self._reconnect(stop)
            if code is not None:
                return code

    def close(self) -> None:
        self.forwarder.stop()
        self._drop()

    # -- internals -----------------------------------------------------------
    def _say(self, kind: str, msg: str, url: str | None = None) -> None:
        self.emit(TunnelEvent(kind, self.project, self.target.name, msg, url, self.local_port, self.endpoint.port))

    def _life(self) -> None:
        session = self.session
        if session is not None:
            session.life()

    def _drop(self) -> None:
        self.forwarder.detach()
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def _watch(self, stop: threading.Event) -> str | None:
        """Wait for ``stop`` (None) or the session's death (why)."""
        interval = self.options.keepalive
        tick = min(1.0, interval / 4) if interval else 1.0
        next_probe = time.monotonic() + interval
        while not stop.wait(tick):
            session = self.session
            if session is None or not session.alive():
                return f"{self.target.name} closed the connection"
            if not interval:
                continue
            now = time.monotonic()
            silent = now - session.last_life
            if silent > 2 * interval:
                return f"no answer from {self.target.name} for {silent:.0f}s"
            if now >= next_probe:
                session.probe()
                next_probe = now + interval
        return None

    def _reconnect(self, stop: threading.Event) -> int | None:
        deadline = time.monotonic() + self.options.reconnect
        delay = _FIRST_RETRY
        said = ""
        while True:
            try:
                session = Session.open(self.target)
                try:
                    where = self.locate()
                except BaseException:
                    session.close()
                    raise
            except HostUnreachable as exc:
                why = str(exc)
                if time.monotonic() + delay > deadline:
                    self._say("gave-up", f"tunnel closed: {self.target.name} unreachable for "
                                         f"{self.options.reconnect:g}s ({why})")
                    return EXIT_UNREACHABLE
                if why != said:
                    self._say("retrying", f"cannot reconnect yet ({why}); trying for up to "
                                          f"{self.options.reconnect:g}s")
                    said = why
                if stop.wait(delay):
                    return EXIT_OK
                delay = min(delay * 2, _MAX_RETRY)
                continue
            self.session = session
            self.forwarder.attach(session.transport, (where or self.endpoint).dest)
            self._say("restored", "tunnel restored")
            with self._relocate:
                self._located_at = time.monotonic()
                self._follow(where)
            return None

    def _follow(self, where: Endpoint | None) -> None:
        """Tell the user what changed about the server (moved, restarted, stopped); under ``_relocate``."""
        if where is None:
            if not self._said_stopped:
                self._said_stopped = True
                self._say("stopped", f"{self.project} is not running on {self.target.name}; connections are "
                                     f"refused until it starts again")
            return
        self._said_stopped = False
        if where != self.endpoint:
            self.endpoint = where
            self.forwarder.retarget(where.dest)
            self._say("moved", f"the server restarted (now port {where.port} on {self.target.name}); new URL",
                      self.url)

    def _refused(self, dest: Dest) -> Dest | None:
        """A connection was refused at the far end: find out where the server is now."""
        with self._relocate:
            if time.monotonic() - self._located_at >= _RELOCATE_EVERY:
                self._located_at = time.monotonic()
                try:
                    self._follow(self.locate())
                except HostUnreachable:
                    return None
            if self._said_stopped:
                return None
            return self.endpoint.dest
