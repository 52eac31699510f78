"""Rendering: result lines, recap, progress only on a terminal, tokens hidden, exit codes."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from lifecycle.host.results import Result
from lifecycle.report import Reporter, exit_code, fit_command, orphans_table, redact, status_table, uptime


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


SERVER = ("/tmp/pytest-of-root/pytest-12/session0/jlc0/venv/bin/python -m jupyterlab --no-browser "
          "--ip=127.0.0.1 --port=28705 --ServerApp.port_retries=0 "
          "--ServerApp.root_dir=/tmp/pytest-of-root/pytest-12/test_status0/projects/p2 --allow-root "
          "--ServerApp.iopub_data_rate_limit=1e10")
BY_HAND = ("/home/al/venv/bin/python /usr/local/bin/jupyter-lab --no-browser --port 8890 --ip=127.0.0.1 "
           "--notebook-dir=/home/al/code/autoresearch-quantum/notebooks")
KERNEL = ("/home/al/code/quantum/.venv/bin/python -m ipykernel_launcher -f "
          "/home/al/code/quantum/.jupyter_runtime/kernel-3b2f9c1e-aaaa-bbbb-cccc-1234567890ab.json")


@pytest.mark.parametrize("width", [70, 90, 120])
@pytest.mark.parametrize("command,visible", [
    (SERVER, ["python", "-m jupyterlab", "--port=28705", "projects/p2"]),
    (BY_HAND, ["jupyter-lab", "--port 8890", "notebooks"]),
    (KERNEL, ["-m ipykernel_launcher", "-f", "1234567890ab.json"]),
])
def test_commands_are_cut_in_the_middle_keeping_port_and_root(command: str, visible: list[str], width: int) -> None:
    shown = fit_command(command, width)
    assert len(shown) <= width and "…" in shown
    assert all(v in shown for v in visible), shown


def test_short_commands_stay_whole() -> None:
    assert fit_command("python -m jupyterlab --port=8888", 70) == "python -m jupyterlab --port=8888"


def test_orphans_table_shows_port_and_root_of_a_long_command() -> None:
    row = {"host": "local", "kind": "server", "pid": 42, "project": None, "started": None, "rss_bytes": None,
           "cmdline": SERVER + " --IdentityProvider.token=abcdef0123456789"}
    table = orphans_table([row], width=70)
    assert "--port=28705" in table and "projects/p2" in table and "abcdef0123456789" not in table


@pytest.mark.parametrize("show_token,show_login,expected", [
    (False, False, None), (True, True, "http://h/lab?token=sekrit0123456789"),
    (False, True, "http://h/lab?token=sekrit0123456789"),
])
def test_login_url_line(show_token: bool, show_login: bool, expected: str | None) -> None:
    out = io.StringIO()
    reporter = Reporter("start", show_token=show_token, out=out, err=io.StringIO())
    reporter.show_login = show_login
    reporter.event({"event": "result", "result": result("changed", msg="started on http://h/lab pid 1").to_dict()})
    lines = out.getvalue().splitlines()
    assert lines[0] == "changed: [local] p: started on http://h/lab pid 1"
    assert lines[1:] == ([f"    login URL: {expected}"] if expected else [])


@pytest.mark.parametrize("text,expected", [
    ("--IdentityProvider.token=abcdef012345", "--IdentityProvider.token=<hidden>"),
    ("--ServerApp.password=argon2:$argon2id$v=19$m=10240,t=10,p=8$abc", "--ServerApp.password=<hidden>"),
    ("--ServerApp.cookie_secret=0123456789abcdef", "--ServerApp.cookie_secret=<hidden>"),
    ("--ServerApp.password_required=True", "--ServerApp.password_required=True"),
    ("/lab?token=0123456789abcdef&x=1", "/lab?token=<hidden>&x=1"),
    ("token=<hidden>", "token=<hidden>"),
])
def test_redact_credentials_in_command_lines(text: str, expected: str) -> None:
    assert redact(text) == expected


# -- remote servers, seen from this machine --------------------------------------------------

def remote_start(msg: str = "started on http://127.0.0.1:8810/lab pid 7 in 3.1s") -> Result:
    return Result(host="box1", project="r1", action="start", status="changed", msg=msg,
                  facts={"pid": 7, "port": 8810, "url": "http://127.0.0.1:8810/lab"},
                  secret={"token_url": "http://127.0.0.1:8810/lab?token=sekrit0123456789"})


@pytest.mark.parametrize("task", ["start", "restart", "start-all"])
def test_a_remote_start_says_where_and_how_to_reach_it(task: str) -> None:
    out = io.StringIO()
    reporter = Reporter(task, out=out, err=io.StringIO())
    reporter.event({"event": "result", "result": remote_start().to_dict()})
    line = out.getvalue().splitlines()[0]
    label = "r1" if task == "start" else "r1: start"
    assert line == f"changed: [box1] {label}: started on box1:8810 pid 7 in 3.1s (reach it with 'jlc open r1')"
    doc = Reporter(task, as_json=True, out=io.StringIO()).public([remote_start()])[0]
    assert doc["msg"] == "started on box1:8810 pid 7 in 3.1s (reach it with 'jlc open r1')"
    assert doc["facts"] == {"pid": 7, "port": 8810, "url": "http://127.0.0.1:8810/lab", "reach": "jlc open r1"}
    assert "token_url" not in doc


def test_a_local_start_keeps_its_url_and_reach_is_that_url() -> None:
    local = Result(host="local", project="p", action="start", status="changed",
                   msg="started on http://127.0.0.1:8888/lab pid 7 in 1.0s",
                   facts={"pid": 7, "port": 8888, "url": "http://127.0.0.1:8888/lab"})
    doc = Reporter("start", as_json=True, out=io.StringIO()).public([local])[0]
    assert doc["msg"] == local.msg and doc["facts"]["reach"] == "http://127.0.0.1:8888/lab"


def test_open_start_lines_carry_no_hint_to_run_open() -> None:
    out = io.StringIO()
    Reporter("open", out=out, err=io.StringIO()).event({"event": "result", "result": remote_start().to_dict()})
    assert out.getvalue() == "changed: [box1] r1: start: started on box1:8810 pid 7 in 3.1s\n"


def test_a_remote_login_line_names_its_host_and_a_dash_h_host_gets_its_options() -> None:
    out = io.StringIO()
    reporter = Reporter("start", show_token=True, out=out, err=io.StringIO())
    reporter.via["box1"] = ["-H", "al@box1", "-i", "/keys/my key"]
    reporter.event({"event": "result", "result": remote_start().to_dict()})
    hint = "jlc -H al@box1 -i '/keys/my key' open r1"
    assert out.getvalue().splitlines() == [
        f"changed: [box1] r1: started on box1:8810 pid 7 in 3.1s (reach it with '{hint}')",
        f"    login URL on box1: http://127.0.0.1:8810/lab?token=sekrit0123456789 (from here: {hint})"]


def test_status_tables_show_remote_servers_by_place() -> None:
    from lifecycle.report import live_frame, unmanaged_table

    rows: list[dict[str, Any]] = [
        {"name": "r1", "host": "box1", "state": "running", "pid": 7, "port": 8810,
         "url": "http://127.0.0.1:8810/lab", "reach": "jlc open r1",
         "token_url": "http://127.0.0.1:8810/lab?token=sekrit0123456789"},
        {"name": "l1", "host": "local", "state": "running", "pid": 8, "port": 8888,
         "url": "http://127.0.0.1:8888/lab", "reach": "http://127.0.0.1:8888/lab",
         "token_url": "http://127.0.0.1:8888/lab?token=local0123456789"},
    ]
    plain = status_table(rows)
    assert "box1:8810 (jlc open r1)" in plain and "127.0.0.1:8810" not in plain
    assert "http://127.0.0.1:8888/lab" in plain and "token" not in plain
    shown = status_table(rows, show_token=True)
    assert "box1:8810 (jlc open r1) token=sekrit0123456789" in shown
    assert "http://127.0.0.1:8888/lab?token=local0123456789" in shown
    frame = live_frame({"projects": rows}, {}, 2.0, 10_000)
    assert "box1:8810 (jlc open r1)" in frame and "127.0.0.1:8810" not in frame and "token" not in frame
    unmanaged = unmanaged_table([{"host": "box1", "pid": 9, "port": 8899, "url": "http://127.0.0.1:8899/",
                                  "reach": None, "root_dir": "/srv", "started": None, "rss_bytes": None}])
    assert "box1:8899" in unmanaged and "127.0.0.1" not in unmanaged


def test_which_on_a_remote_host_says_the_url_is_that_hosts() -> None:
    from lifecycle.report import which_text

    doc = {"target": "8810", "kind": "port", "host": "box1", "project": "r1", "pid": 7, "port": 8810,
           "url": "http://127.0.0.1:8810/lab", "reach": "jlc open r1", "started": None}
    text = which_text(doc)
    assert "url:        http://127.0.0.1:8810/lab (on box1)" in text and "reach:      jlc open r1" in text
    local = which_text({**doc, "host": "local", "reach": doc["url"]})
    assert "(on " not in local and "reach:" not in local


def test_dash_h_words_bring_an_ad_hoc_hosts_options_along() -> None:
    from lifecycle.inventory import Host
    from lifecycle.tasks.common import dash_h

    assert dash_h(Host("box1", "10.0.0.5", identity="/k", ssh_config="/c")) == ["-H", "box1"]
    adhoc = Host("al@box2", "al@box2", identity="/keys/box2", ssh_config="/etc/ssh/lab config", adhoc=True)
    assert dash_h(adhoc) == ["-H", "al@box2", "-S", "/etc/ssh/lab config", "-i", "/keys/box2"]
    from lifecycle.report import open_command

    assert open_command("far", dash_h(adhoc)) == "jlc -H al@box2 -S '/etc/ssh/lab config' -i /keys/box2 open far"
    # -H al@10.0.0.7:2222 -i k1 -i k2: Fabric hands over the host alone, the rest comes back.
    given = Host("10.0.0.7", "10.0.0.7", user="al", port=2222, identity="/k1", more_identities=("/k2",), adhoc=True)
    assert dash_h(given) == ["-H", "al@10.0.0.7:2222", "-i", "/k1", "-i", "/k2"]
