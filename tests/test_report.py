"""Rendering: result lines, recap, progress only on a terminal, tokens hidden, exit codes."""

from __future__ import annotations

import io
import json
from typing import Any

from lifecycle.host.results import Result
from lifecycle.report import Reporter, exit_code, status_table, uptime


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def result(status: str, action: str = "start", msg: str = "m", host: str = "local") -> Result:
    return Result(host=host, project="p", action=action, status=status, msg=msg,
                  secret={"token_url": "http://h/lab?token=sekrit0123456789"})


def test_lines_and_recap() -> None:
    out = io.StringIO()
    rep = Reporter("bootstrap", out=out, err=io.StringIO())
    results = [result("changed", "venv", "created"), result("failed", "requirements", "pip failed\nline two")]
    for r in results:
        rep.event({"event": "result", "result": r.to_dict()})
    rep.actions(results)
    text = out.getvalue()
    assert "changed: [local] p: venv: created\n" in text
    assert "failed: [local] p: requirements: pip failed\n    line two\n" in text
    assert "local : ok=0   changed=1   failed=1   skipped=0   unreachable=0" in text
    assert "\033[" not in text  # no colour when not a terminal


def test_progress_only_on_a_terminal() -> None:
    quiet, loud = io.StringIO(), Tty()
    Reporter("bootstrap", out=io.StringIO(), err=quiet).event({"event": "progress", "project": "p", "msg": "pip (3s)"})
    rep = Reporter("bootstrap", out=io.StringIO(), err=loud)
    rep.event({"event": "progress", "project": "p", "msg": "installing requirements (3s)"})
    assert quiet.getvalue() == ""
    assert "p: installing requirements (3s)" in loud.getvalue()
    rep.event({"event": "result", "result": result("ok").to_dict()})
    assert loud.getvalue().endswith("\r\033[K")  # the progress line is cleared before the result


def test_json_hides_tokens_unless_asked() -> None:
    r = result("changed", msg="log says ?token=abcdef0123456789")
    hidden, shown = io.StringIO(), io.StringIO()
    Reporter("start", as_json=True, out=hidden).actions([r])
    Reporter("start", as_json=True, show_token=True, out=shown).actions([r])
    assert "abcdef0123456789" not in hidden.getvalue() and "sekrit" not in hidden.getvalue()
    doc = json.loads(shown.getvalue())
    assert doc["results"][0]["token_url"].endswith("sekrit0123456789")


def test_exit_codes() -> None:
    assert exit_code([result("ok"), result("changed"), result("skipped")]) == 0
    assert exit_code([result("ok"), result("failed")]) == 1
    assert exit_code([result("failed"), result("unreachable")]) == 4


def test_status_table_sorted_and_humane() -> None:
    rows: list[dict[str, Any]] = [
        {"name": "b", "host": "local", "state": "running", "pid": 2, "port": 8889, "url": "http://x/lab",
         "started": "2026-01-01T00:00:00+00:00", "kernels": 2, "busy_kernels": 1, "rss_bytes": 300 * 2**20,
         "tracked": False},
        {"name": "a", "host": "local", "state": "stopped"},
    ]
    lines = status_table(rows).splitlines()
    assert lines[2].startswith("a ") and lines[3].startswith("b ")
    assert "running*" in lines[3] and "2 (1 busy)" in lines[3] and "300 MiB" in lines[3]
    assert uptime("2026-01-01T00:00:00+00:00", now=1767225600 + 3725) == "1h02m"
