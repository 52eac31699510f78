"""The host layer run over SSH: one exec per task, ``python -c BOOT`` with the layer and the request on
stdin, one JSON document back on stdout, live events as ``@jlc`` lines on stderr.
"""

from __future__ import annotations

import hashlib
import io
import json
import select
import shlex
import time
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import paramiko

from . import answers
from .errors_ssh import HostUnreachable
from .host.remote_boot import BOOT
from .inventory import Host
from .provision import NEED_PSUTIL, provision_psutil, psutil_version
from .ssh import connect, disconnect

Emit = Callable[[dict[str, Any]], None]
PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def host_layer() -> tuple[str, bytes]:
    """The host layer as a deterministic zip, and its content hash (the remote cache key)."""
    files = [PACKAGE / "__init__.py"] + sorted((PACKAGE / "host").glob("*.py"))
    digest = hashlib.sha256()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            rel = "lifecycle/" + str(path.relative_to(PACKAGE))
            data = path.read_bytes()
            digest.update(rel.encode() + b"\0" + data)
            info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return digest.hexdigest()[:16], buf.getvalue()


# Operations that only look: they must finish within the host's answer_timeout,
# not merely keep showing signs of life (a host layer stuck on a dead NFS mount
# still sends heartbeats from its other thread).
_LOOKS = {"status", "ports", "which", "read-inventory", "machine"}


def _looks_only(request: dict[str, Any]) -> bool:
    op, options = request.get("op"), request.get("options") or {}
    if op in ("orphans", "audit"):
        return not (options.get("kill") or options.get("fix"))
    if op == "logs":
        return not options.get("follow")
    return op in _LOOKS


def heartbeat_interval(target: Host) -> float:
    """How often the host layer says it is alive: often enough that a quarter of the limit never passes."""
    return max(0.2, min(5.0, target.answer_timeout / 4))


class _Reader:
    """The host's stdout (the document) and stderr (events and stray text), with the time of its last word."""

    def __init__(self, chan: Any, emit: Emit) -> None:
        self.chan = chan
        self.emit = emit
        self.out = bytearray()
        self.err = bytearray()
        self.stray: list[str] = []
        self.last_word = time.monotonic()

    def pump(self) -> bool:
        """Read what is there; True if anything was."""
        busy = False
        if self.chan.recv_ready():
            self.out += self.chan.recv(65536)
            busy = True
        if self.chan.recv_stderr_ready():
            self.err += self.chan.recv_stderr(65536)
            busy = True
            *lines, rest = self.err.split(b"\n")
            self.err = bytearray(rest)
            for line in lines:
                self._line(line.decode("utf-8", "replace"))
        if busy:
            self.last_word = time.monotonic()
        return busy

    def _line(self, text: str) -> None:
        if text.startswith("@jlc "):
            try:
                event = json.loads(text[5:])
            except ValueError:
                event = None
            if isinstance(event, dict) and isinstance(event.get("event"), str) and not answers.event_problem(event):
                if event["event"] != "alive":
                    self.emit(event)
                return
        if text.strip():
            self.stray = (self.stray + [text])[-15:]


def exec_boot(conn: Any, target: Host, header: dict[str, Any], body: bytes, emit: Emit,
              deadline: float | None = None) -> tuple[int, Any]:
    """Run BOOT on the host with header+body on stdin; stream events; return (exit status, document).

    HostUnreachable when the host says nothing for ``target.answer_timeout`` seconds (the
    host layer sends a heartbeat while it works, so silence means the host, its sshd or the
    network stopped), when ``deadline`` (a monotonic time) passes, or when stdout is not JSON.
    """
    command = f"{shlex.quote(target.python)} -c {shlex.quote(BOOT)}"
    limit = target.answer_timeout
    try:
        chan = conn.transport.open_session(timeout=target.connect_timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise HostUnreachable(f"{target.name} refused a session: {exc or type(exc).__name__}") from None
    try:
        # A stalled peer must not hold sendall() forever either.
        chan.settimeout(limit)
        chan.exec_command(command)
        try:
            chan.sendall(json.dumps({**header, "alive": heartbeat_interval(target)}).encode() + b"\n" + body)
            if not header.get("watch"):
                chan.shutdown_write()
        except TimeoutError:
            raise HostUnreachable(f"{target.name} stopped reading its input for {limit:g}s (answer_timeout)") from None
        except OSError:
            pass  # it exited without reading everything: what it said (below) tells why
        reader = _Reader(chan, emit)
        while True:
            # A paramiko channel is selectable: sleep until the host says something.
            select.select([chan], [], [], 0.5)
            busy = reader.pump()
            if not busy and chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            now = time.monotonic()
            if not busy and now - reader.last_word > limit:
                raise HostUnreachable(f"no answer from {target.name} for {now - reader.last_word:.0f}s "
                                      f"(answer_timeout {limit:g}s): the host, its sshd or the network stopped "
                                      f"responding")
            if deadline is not None and now > deadline:
                raise HostUnreachable(f"{target.name} did not finish {header.get('op', 'the task')} within "
                                      f"{limit:g}s (answer_timeout)")
        status = chan.recv_exit_status()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        # socket.timeout is an OSError: sendall() into a peer that stopped reading.
        raise HostUnreachable(f"the session with {target.name} broke: {exc or type(exc).__name__}") from None
    finally:
        chan.close()
    try:
        doc = json.loads(reader.out.decode("utf-8"))
    except ValueError:
        tail = " | ".join(reader.stray)
        if status == 127:
            raise HostUnreachable(f"{target.python!r} was not found on {target.name}: install Python 3.9+ "
                                  f"there or set hosts.{target.name}.python to its absolute path") from None
        said = reader.out.decode("utf-8", "replace").strip()
        what = f"stdout is not a JSON document: {answers.short(said, 80)}" if said else "it wrote no document"
        raise HostUnreachable(f"the host layer failed on {target.name} (exit {status}): {what}"
                              + (f"; stderr: {answers.short(tail)}" if reader.stray else "")) from None
    return status, doc


def run_remote(target: Host, request: dict[str, Any], emit: Emit, watch: bool = False) -> dict[str, Any]:
    """Run one host-layer request on the host: a valid answer (answers.py), or HostUnreachable saying why."""
    conn = connect(target)
    try:
        digest, layer = host_layer()
        body = json.dumps(request).encode()
        header = {"layer": digest, "layer_len": len(layer), "request_len": len(body),
                  "psutil": psutil_version(), "watch": watch, "op": request.get("op")}
        deadline = time.monotonic() + target.answer_timeout if _looks_only(request) else None
        status, doc = exec_boot(conn, target, header, layer + body, emit, deadline)
        if status == NEED_PSUTIL and isinstance(doc, dict) and doc.get("need") == "psutil":
            provision_psutil(conn, target, doc, emit,
                             lambda head, data: exec_boot(conn, target, head, data, emit))
            deadline = time.monotonic() + target.answer_timeout if _looks_only(request) else None
            status, doc = exec_boot(conn, target, header, layer + body, emit, deadline)
        if status != 0:
            said = doc.get("error") if isinstance(doc, dict) else None
            hint = ""
            if isinstance(doc, dict) and doc.get("need") == "python":
                hint = f"; set hosts.{target.name}.python to a Python 3.9+ interpreter there"
            raise HostUnreachable(f"the host layer failed on {target.name} (exit {status}): "
                                  f"{answers.short(said if said else doc)}{hint}")
        why = answers.problem(request, doc)
        if why:
            raise HostUnreachable(f"{target.name} gave an answer that is not a valid {request.get('op')} "
                                  f"document: {why}")
        return dict(doc)
    finally:
        disconnect(conn)
