"""answers.problem: a host answer missing any key a task indexes is refused (the host is then
`unreachable`), so no task meets it as a KeyError; the host layer's own answers pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lifecycle import answers
from lifecycle.host import api

# One well-formed answer per operation, with a row in every list the tasks read.
GOOD: dict[str, dict[str, Any]] = {
    "status": {"version": 1, "machine": "m1",
               "projects": [{"name": "p", "host": "b", "state": "running", "pid": 7, "url": None}],
               "unmanaged": [{"host": "b", "pid": 8, "url": None}]},
    "ports": {"version": 1, "machine": "m1", "ports": [{"host": "b", "port": 8800, "state": "free"}]},
    "orphans": {"version": 1, "machine": "m1",
                "orphans": [{"host": "b", "kind": "kernel", "pid": 9, "project": None, "cmdline": "python"}]},
    "logs": {"version": 1, "logs": [{"project": "p", "path": "/x", "exists": True, "lines": ["a"],
                                     "missing": None}]},
    "audit": {"version": 1, "projects": [{"name": "p", "host": "b", "rules": []}],
              "results": [{"host": "b", "action": "audit", "status": "ok"}]},
}


def _indexed() -> list[tuple[str, str, str]]:
    return [(op, member, key) for op, doc in GOOD.items() for member, rows in doc.items()
            if isinstance(rows, list) for key in rows[0]
            if key not in ("url", "missing")]  # read with .get: optional


def _asked(op: str) -> dict[str, Any]:
    return {"op": op, "projects": [{"name": "p"}]}


@pytest.mark.parametrize("op", sorted(GOOD))
def test_good_answers_pass(op: str) -> None:
    assert answers.problem(_asked(op), GOOD[op]) is None


def test_an_audit_row_of_a_project_not_asked_about_is_refused() -> None:
    doc = copy.deepcopy(GOOD["audit"])
    doc["projects"][0]["name"] = "other"
    assert "not asked about" in str(answers.problem(_asked("audit"), doc))


@pytest.mark.parametrize("op,member,key", _indexed())
def test_an_indexed_key_missing_is_refused(op: str, member: str, key: str) -> None:
    doc = copy.deepcopy(GOOD[op])
    del doc[member][0][key]
    assert answers.problem(_asked(op), doc), f"{op}: a {member} row without {key!r} was accepted"


@pytest.mark.parametrize("op,member", [(op, m) for op, d in GOOD.items() for m, v in d.items()
                                       if isinstance(v, list)])
def test_a_missing_list_is_refused(op: str, member: str) -> None:
    doc = copy.deepcopy(GOOD[op])
    del doc[member]
    assert answers.problem(_asked(op), doc)


@pytest.mark.parametrize("bad", [{"pid": [1]}, {"pid": "7"}, {"pid": True}])
def test_a_pid_that_cannot_be_a_key_is_refused(bad: dict[str, Any]) -> None:
    doc = copy.deepcopy(GOOD["status"])
    doc["unmanaged"][0].update(bad)
    assert answers.problem({"op": "status"}, doc)


def test_a_machine_id_that_is_not_text_is_refused() -> None:
    doc = {**copy.deepcopy(GOOD["ports"]), "machine": ["m1"]}
    assert answers.problem({"op": "ports"}, doc)


@pytest.mark.parametrize("op", ["status", "ports", "orphans", "machine"])
def test_the_host_layers_own_answers_pass(op: str) -> None:
    request = {"version": api.PROTOCOL, "op": op, "host": "local", "projects": [], "known": [], "options": {}}
    assert answers.problem(request, api.handle(request)) is None


@pytest.mark.parametrize("line", [
    '@jlc {"event": "result"}',
    '@jlc {"event": "result", "result": {"host": "b", "action": "start"}}',
    '@jlc {"event": "result", "result": {"host": "b", "action": "start", "status": "ok", "msg": 3}}',
    '@jlc {"event": "log", "project": "p", "text": ["a"]}',
])
def test_a_malformed_live_event_is_not_shown(line: str) -> None:
    """Live events reach the reporter, which builds results from them: a malformed one is stray text,
    never a KeyError in the middle of a task."""
    from lifecycle.remote_run import _Reader
    from lifecycle.report import Reporter

    shown: list[dict[str, Any]] = []
    reader = _Reader(None, shown.append)
    reader._line(line)
    assert shown == [] and reader.stray == [line]
    good = '@jlc {"event": "result", "result": {"host": "b", "action": "start", "status": "ok", "msg": "m"}}'
    reader._line(good)
    assert len(shown) == 1
    Reporter("start", as_json=True).event(shown[0])  # what the reporter does with it does not raise
