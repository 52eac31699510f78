"""What a host's answer to each operation must look like, checked before any task reads it.

A remote host can answer anything: an old interpreter's refusal, a truncated
document, a shell profile's chatter, a well-formed object with the wrong keys.
The tasks read answers by key, so an answer of the wrong shape would become a
``KeyError`` in whichever task happened to ask.  Instead every answer is held
against the shape of its operation here, and one that does not fit makes that
host ``unreachable`` with the reason, like a host that could not be reached.

The check is deliberately shallow: the keys and types the tasks index, row by
row.  It catches what goes wrong in practice (version skew, garbage, truncation),
not a host that lies in a well-formed way.
"""

from __future__ import annotations

from typing import Any

from .host.api import PROTOCOL

# What the tasks index in each row, and the types they rely on (a pid or port is a set or sort
# key, lines are joined and redacted): a row missing one of these would be a KeyError or TypeError
# in the task that reads it.
_TEXT = (str,)
_NUMBER = (int,)
_MAYBE_NUMBER = (int, type(None))
_MAYBE_TEXT = (str, type(None))
Fields = dict[str, tuple[type, ...]]
_RESULTS: tuple[str, Fields] = ("results", {"host": _TEXT, "action": _TEXT, "status": _TEXT})
_ROWS: dict[str, list[tuple[str, Fields]]] = {
    "status": [("projects", {"name": _TEXT, "host": _TEXT, "state": _TEXT, "pid": _MAYBE_NUMBER}),
               ("unmanaged", {"host": _TEXT, "pid": _NUMBER})],
    "ports": [("ports", {"host": _TEXT, "port": _NUMBER, "state": _TEXT})],
    "orphans": [("orphans", {"host": _TEXT, "kind": _TEXT, "pid": _NUMBER, "project": _MAYBE_TEXT,
                             "cmdline": _TEXT})],
    "logs": [("logs", {"project": _TEXT, "path": _TEXT, "exists": (bool,), "lines": (list,)})],
    "audit": [("projects", {"name": _TEXT, "host": _TEXT, "rules": (list,)}), _RESULTS],
}
_ACTIONS = {"bootstrap", "start", "stop", "restart", "start-all", "stop-all", "stop-server", "adopt", "cull",
            "supervise"}
# Members outside the rows, per operation (service: per action).
_MEMBERS: dict[str, Fields] = {
    "which": {"target": _TEXT, "kind": _MAYBE_TEXT},
    "machine": {"machine": _TEXT},  # empty is valid: a system without a boot id is a machine of its own
    "read-inventory": {"path": _TEXT, "text": _MAYBE_TEXT},
    "service status": {"manager": _TEXT},
    "service probe": {"manager": _TEXT, "paths": (dict,), "inventory": _MAYBE_TEXT, "command": _MAYBE_TEXT},
}


def _fields(op: str, options: dict[str, Any], doc: dict[str, Any]) -> Fields:
    if op == "which" and "error" in doc:
        return {"error": _TEXT}  # which's answer for a target it cannot place
    if op == "service":
        return _MEMBERS.get(f"service {options.get('action')}", {})
    return _MEMBERS.get(op, {})


def problem(request: dict[str, Any], doc: Any) -> str | None:
    """Why ``doc`` is not a valid answer to ``request``, or None when it is."""
    if not isinstance(doc, dict):
        return f"its answer is not a JSON object ({type(doc).__name__})"
    if doc.get("version") != PROTOCOL:
        return f"its answer speaks protocol {doc.get('version')!r}, not {PROTOCOL}"
    op = str(request.get("op"))
    options = request.get("options") or {}
    if "error" in doc and op != "which":
        # which reports a target it cannot place as {"error"}; every other op has no such answer.
        return f"it answered with an error: {short(doc['error'])}"
    if "machine" in doc and not isinstance(doc["machine"], str):
        return "its answer has a machine id that is not text"
    wanted: list[tuple[str, Fields]] = []
    if op in _ACTIONS or (op == "orphans" and options.get("kill")) or (
            op == "service" and options.get("action") in ("install", "uninstall")):
        wanted.append(_RESULTS)
    elif op in _ROWS:
        wanted.extend(_ROWS[op])
    for key, fields in wanted:
        why = _rows(doc, key, fields)
        if why:
            return why
    if op == "audit":
        # The task looks each row's project up among those it asked about.
        asked = {p.get("name") for p in request.get("projects") or [] if isinstance(p, dict)}
        stray = [row["name"] for row in doc["projects"] if row["name"] not in asked]
        if stray:
            return f"its answer has a project it was not asked about: {short(stray[0])}"
    return _typed(doc, _fields(op, options, doc))


def event_problem(event: dict[str, Any]) -> str | None:
    """Why a live event from a host (an ``@jlc`` line) cannot be shown, or None when it can: the
    reporter builds a result from a ``result`` event and writes a ``log`` event's text."""
    kind = event.get("event")
    if kind == "result":
        result = event.get("result")
        if not isinstance(result, dict):
            return "a result event without a result"
        fields: Fields = {**_RESULTS[1], "msg": _MAYBE_TEXT, "facts": (dict, type(None)), "secret": (dict, type(None))}
        if any(not _fits(result.get(f), types) for f, types in fields.items()):
            return f"a malformed result: {short(result)}"
    if kind == "log" and not isinstance(event.get("text", ""), str):
        return "a log event whose text is not text"
    return None


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int to isinstance, but never a pid or a port.
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _typed(doc: dict[str, Any], fields: Fields) -> str | None:
    for key, types in fields.items():
        if key not in doc or not _fits(doc[key], types):
            return f"its answer has no usable {key!r}"
    return None


def _rows(doc: dict[str, Any], key: str, fields: Fields) -> str | None:
    rows = doc.get(key)
    if not isinstance(rows, list):
        return f"its answer has no {key!r} list"
    for row in rows:
        if not isinstance(row, dict) or any(f not in row or not _fits(row[f], types) for f, types in fields.items()):
            return f"its answer has a malformed entry in {key!r}: {short(row)}"
    return None


def short(value: Any, limit: int = 200) -> str:
    """One line of what a host said, for a message: whitespace folded, tokens hidden, cut at ``limit``."""
    from .report import redact

    text = value if isinstance(value, str) else repr(value)
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit - 3] + "..."
