"""``python -m lifecycle.host``: read one JSON request on stdin, write one JSON document.

Events (progress, results as they happen, log text) go to stderr as JSON
lines prefixed with ``@jlc `` so the controller can render them live; the
final document is the only thing written to stdout.  Exit status: 0 done,
2 bad request.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Dict, Optional

from .api import RequestError, handle

_EMITTING = threading.Lock()
_done = threading.Event()


def _emit(event: Dict[str, Any]) -> None:
    line = "@jlc " + json.dumps(event) + "\n"
    with _EMITTING:  # the heartbeat thread writes too: lines must not interleave
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            # The controller hung up (Ctrl-C, or it gave up on us). Half an operation is worse than
            # an unheard one: a start that stopped here would leave its server unrecorded. Go on.
            pass


def _heartbeat(every: float) -> None:
    """Say "alive" every ``every`` seconds while the request runs: a silent host is a frozen one."""
    def beat() -> None:
        while not _done.wait(every):
            _emit({"event": "alive"})

    threading.Thread(target=beat, name="jlc-heartbeat", daemon=True).start()


def serve(raw: bytes, alive: Optional[float] = None) -> int:
    """Answer one request given as JSON bytes; the document goes to stdout.

    ``alive``: seconds between heartbeat events on stderr (the controller's answer_timeout / 4).
    """
    if alive:
        _heartbeat(float(alive))
    try:
        response = handle(json.loads(raw.decode("utf-8")), _emit)
    except (ValueError, RequestError) as exc:
        sys.stdout.write(json.dumps({"version": 1, "error": str(exc)}) + "\n")
        return 2
    except KeyboardInterrupt:
        return 130
    _done.set()
    try:
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # nobody is listening any more; the work is done all the same
    return 0


def main() -> int:
    return serve(sys.stdin.buffer.read())


if __name__ == "__main__":
    sys.exit(main())
