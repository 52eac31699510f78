"""``python -m lifecycle.host``: read one JSON request on stdin, write one JSON document.

Events (progress, results as they happen, log text) go to stderr as JSON
lines prefixed with ``@jlc `` so the controller can render them live; the
final document is the only thing written to stdout.  Exit status: 0 done,
2 bad request.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict

from .api import RequestError, handle


def _emit(event: Dict[str, Any]) -> None:
    sys.stderr.write("@jlc " + json.dumps(event) + "\n")
    sys.stderr.flush()


def serve(raw: bytes) -> int:
    """Answer one request given as JSON bytes; the document goes to stdout."""
    try:
        response = handle(json.loads(raw.decode("utf-8")), _emit)
    except (ValueError, RequestError) as exc:
        sys.stdout.write(json.dumps({"version": 1, "error": str(exc)}) + "\n")
        return 2
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(json.dumps(response) + "\n")
    sys.stdout.flush()
    return 0


def main() -> int:
    return serve(sys.stdin.buffer.read())


if __name__ == "__main__":
    sys.exit(main())
