"""``python -m lifecycle.host``: read one JSON request on stdin, write one JSON document.

Events (progress, results as they happen, log text) go to stderr as JSON
lines prefixed with ``@jlc `` so the controller can render them live; the
final document is the only thing written to stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict

from .api import RequestError, handle


def _emit(event: Dict[str, Any]) -> None:
    sys.stderr.write("@jlc " + json.dumps(event) + "\n")
    sys.stderr.flush()


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        response = handle(request, _emit)
    except (ValueError, RequestError) as exc:
        response = {"version": 1, "error": str(exc)}
        sys.stdout.write(json.dumps(response) + "\n")
        return 2
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(json.dumps(response) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
