"""The host layer run over SSH: one exec per task, ``python -c BOOT`` with the layer and the request on
stdin, one JSON document back on stdout, live events as ``@jlc`` lines on stderr.
"""

from __future__ import annotations

import hashlib
import io
import json
import select
import shlex
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def exec_boot(conn: Any, target: Host, header: dict[str, Any], body: bytes, emit: Emit) -> tuple[int, dict[str, Any]]:
    """Run BOOT on the host with header+body on stdin; stream events; return (exit status, document)."""
    command = f"{shlex.quote(target.python)} -c {shlex.quote(BOOT)}"
    chan = conn.transport.open_session(timeout=target.connect_timeout)
    try:
        chan.exec_command(command)
        chan.sendall(json.dumps(header).encode() + b"\n" + body)
        if not header.get("watch"):
            chan.shutdown_write()
        out = bytearray()
        err = bytearray()
        stray: list[str] = []
        while True:
            busy = False
            # A paramiko channel is selectable: sleep until the host says something.
            select.select([chan], [], [], 0.5)
            if chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
                *lines, rest = err.split(b"\n")
                err = bytearray(rest)
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    if text.startswith("@jlc "):
                        emit(json.loads(text[5:]))
                    elif text.strip():
                        stray = (stray + [text])[-15:]
            if not busy and chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
        status = chan.recv_exit_status()
    finally:
        chan.close()
    try:
        doc = json.loads(out.decode("utf-8"))
    except ValueError:
        tail = "\n".join(stray) or "(no output)"
        if status == 127:
            raise HostUnreachable(f"{target.python!r} was not found on {target.name}: install Python 3.9+ "
                                  f"there or set hosts.{target.name}.python to its absolute path") from None
        raise HostUnreachable(f"the host layer failed on {target.name} (exit {status}): {tail}") from None
    return status, doc


def run_remote(target: Host, request: dict[str, Any], emit: Emit, watch: bool = False) -> dict[str, Any]:
    """Run one host-layer request on the host; HostUnreachable when it cannot be done."""
    conn = connect(target)
    try:
        digest, layer = host_layer()
        body = json.dumps(request).encode()
        header = {"layer": digest, "layer_len": len(layer), "request_len": len(body),
                  "psutil": psutil_version(), "watch": watch}
        status, doc = exec_boot(conn, target, header, layer + body, emit)
        if status == NEED_PSUTIL and doc.get("need") == "psutil":
            provision_psutil(conn, target, doc, emit,
                             lambda head, data: exec_boot(conn, target, head, data, emit))
            status, doc = exec_boot(conn, target, header, layer + body, emit)
        if status != 0 and "error" not in doc:
            raise HostUnreachable(f"the host layer failed on {target.name} (exit {status}): {doc}")
        return doc
    finally:
        disconnect(conn)
