"""A detached tunnel's process: ``python -m lifecycle.tunneld PROJECT@HOST``, started by ``jlc open --detach``.

It inherits the bound local port and a pipe from ``open``; reads what to
carry (host settings, where the server is, how to ask again) as JSON on
stdin, never from its command line or environment, because that holds the
server's token.  Once connected it writes one JSON line on the pipe
(``{"ok": true, ...}`` or ``{"error": ..., "code": ...}``), records itself
for ``jlc tunnels`` / ``jlc close``, and runs until SIGTERM, SIGINT or SIGHUP
(exit 128+signal) or until the host stays unreachable (exit 4).  Its stdout
and stderr are its log, tokens hidden.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime
from typing import Any, TextIO

from . import tunnel_registry as registry
from .errors import EXIT_UNREACHABLE
from .inventory import Host
from .opener import locate, run_tunnels, tracking
from .report import redact
from .tunnel import Endpoint, Tunnel, TunnelOptions


def _log(out: TextIO, text: str) -> None:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        print(f"{stamp} {redact(text)}", file=out, flush=True)
    except OSError:
        pass  # a full disk must not end the tunnel


def main() -> int:
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    ready = os.fdopen(int(spec["ready_fd"]), "w")
    listener = socket.socket(fileno=int(spec["listener_fd"]))
    target = Host(**spec["target"])
    where = Endpoint(**spec["endpoint"])
    name = str(spec["project"])
    request = spec["request"]
    records: dict[str, registry.TunnelRecord] = {}
    emit = tracking(lambda e: _log(sys.stderr, f"[{e.host}] {e.project}: {e.msg}" + (f" {e.url}" if e.url else "")),
                    records)

    tun = Tunnel(target, name, listener, where, lambda: locate(target, request, where.ip),
                 TunnelOptions(**spec["options"]), emit)
    from .ssh import HostUnreachable

    try:
        tun.connect()
    except HostUnreachable as exc:
        _log(sys.stderr, f"[{target.name}] {name}: host {target.name} unreachable: {exc}")
        ready.write(json.dumps({"error": f"host {target.name} unreachable: {exc}", "code": EXIT_UNREACHABLE}) + "\n")
        ready.close()
        tun.close()
        return EXIT_UNREACHABLE
    record: registry.TunnelRecord | None = None
    try:
        record = registry.new_record(name, target.name, tun.local_port, where.port, tun.url.split("?", 1)[0],
                                     detached=True, log=spec.get("log"))
        registry.save(record)
        records[record.key] = record
        _log(sys.stderr, f"[{target.name}] {name}: tunnel 127.0.0.1:{tun.local_port} -> {target.name}:{where.port} "
                         f"open (pid {os.getpid()})")
        ready.write(json.dumps({"ok": True, "local_port": tun.local_port, "pid": os.getpid()}) + "\n")
        ready.close()
        ended = run_tunnels([tun])
        if ended.signal is not None:
            import signal

            _log(sys.stderr, f"[{target.name}] {name}: tunnel closed ({signal.Signals(ended.signal).name})")
        return ended.code
    finally:
        tun.close()
        if record is not None:
            registry.discard(record)


if __name__ == "__main__":
    sys.exit(main())
