"""Every flag value is checked before anything happens: one line, exit 2, nothing changed.

The matrix is built from the task collection itself, so a numeric flag added later is covered too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle.errors import UsageError
from lifecycle.tasks import flags, namespace
from lifecycle.tasks.flags import COUNT, DURATION, LINES, PORT, SECONDS, TARGET

from conftest import Workspace
from inprocess import jlc

BAD: dict[flags.Kind, list[str]] = {
    PORT: ["abc", "70000", "1023", "0", "-1", "80.5", "", "9" * 5000],
    SECONDS: ["abc", "nan", "inf", "-inf", "-1", "0", "1e400", "86401", ""],
    COUNT: ["abc", "0", "-5", "1.5", "1e3", "", "9" * 5000],
    LINES: ["abc", "-5", "1.5", "", "1_000"],
    DURATION: ["abc", "0", "0s", "-5m", "2x", "", "h", "1e400", "inf"],
}
ARGUMENT = {"NAME": "alpha", "TARGET": "1", "HOST": "box", "ACTION": "status"}


def numeric_flags() -> list[tuple[str, str, str, flags.Kind]]:
    """(task, its positional value or '', flag, kind) for every numeric flag of every task."""
    out = []
    for name in namespace.task_names:
        task = namespace[name]
        positional = [ARGUMENT[task.kinds[p].metavar] for p in task.positional]
        for arg in task.get_arguments():
            kind = task.kinds.get(arg.name)
            if kind in BAD:
                out.append((name, " ".join(positional), "--" + arg.name.replace("_", "-"), kind))
    return out


CASES = [(t, pos, flag, value) for t, pos, flag, kind in numeric_flags() for value in BAD[kind]]


def test_the_matrix_covers_the_flags_the_issue_names() -> None:
    covered = {(t, f) for t, _, f, _ in numeric_flags()}
    assert {("logs", "--lines"), ("stop-all", "--forks"), ("start-all", "--forks"), ("discover", "--depth"),
            ("start", "--port"), ("restart", "--port"), ("stop", "--timeout"), ("restart", "--timeout"),
            ("stop-all", "--timeout"), ("orphans", "--timeout"), ("open", "--local-port"),
            ("stop-server", "--timeout")} <= covered


@pytest.mark.parametrize("task,positional,flag,value", CASES)
def test_bad_values_are_one_line_exit_2_and_change_nothing(
        task: str, positional: str, flag: str, value: str, lone_project: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = lone_project
    argv = [task, *positional.split(), flag, value]
    code, out, err = jlc(argv, capsys)
    assert code == 2, (argv, out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    label = "-n/--lines" if flag == "--lines" else flag
    assert err.startswith(f"error: {label}: expected "), err
    assert not (path / ".logs").exists()


def test_every_task_is_checked_before_the_first_runs(ws: Workspace, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`jlc start a stop a --timeout x` must not start a and then complain (a real venv: it would start)."""
    path = ws.project("alpha")
    monkeypatch.setenv("JLC_INVENTORY", str(ws.inventory))
    code, _, err = jlc(["start", "alpha", "stop", "alpha", "--timeout", "x"], capsys)
    assert code == 2 and err.startswith("error: --timeout: ")
    assert not (path / ".logs").exists()


def test_the_short_flag_is_named_as_typed(lone_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = jlc(["logs", "alpha", "-n", "-5"], capsys)
    assert proc[0] == 2 and proc[2] == "error: -n/--lines: expected a whole number, at least 0, got '-5'\n"


def test_the_real_command_line_exits_2(ws: Workspace) -> None:
    ws.project("alpha")
    proc = ws.cli("logs", "alpha", "-n", "-5")
    assert proc.returncode == 2
    assert proc.stderr == "error: -n/--lines: expected a whole number, at least 0, got '-5'\n"


@pytest.mark.parametrize("argv", [
    ["start", "alpha", "--check", "--port", "1024"],
    ["start", "alpha", "--check", "--port", "65535"],
    ["stop", "alpha", "--timeout", "0.5"],
    ["stop-all", "--forks", "1", "--check"],
    ["logs", "alpha", "-n", "0"],
    ["discover", "--depth", "1"],
])
def test_good_values_pass(argv: list[str], ws: Workspace, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    ws.project("alpha")
    monkeypatch.setenv("JLC_INVENTORY", str(ws.inventory))
    code, _, err = jlc(argv, capsys)
    assert code == 0, err


@pytest.mark.parametrize("target", ["", "eighty", "port:99999", "pid:0", "socket:3", "-1"])
def test_stop_server_targets_are_checked(target: str, lone_project: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = jlc(["stop-server", target], capsys)
    assert code == 2 and out == "", out
    assert err.startswith("error: TARGET: expected a server's port or pid"), err


@pytest.mark.parametrize("target,message", [
    ("", "expected a port, a pid or a path, not an empty string"),
    ("   ", "expected a port, a pid or a path, not an empty string"),
    ("port:99999", "expected a port number from 1 to 65535 after 'port:'"),
    ("port:0", "expected a port number from 1 to 65535 after 'port:'"),
    ("port:", "expected a port number from 1 to 65535 after 'port:'"),
    ("pid:abc", "expected a pid number from 1 to 4194304 after 'pid:'"),
    ("pid:-3", "expected a pid number from 1 to 4194304 after 'pid:'"),
])
def test_which_targets_are_checked(target: str, message: str, lone_project: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = jlc(["which", target], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: TARGET: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize("kind,value,expected", [
    (PORT, "8888", 8888), (PORT, 8888, 8888), (SECONDS, "2.5", 2.5), (SECONDS, 3, 3.0), (COUNT, " 7", 7),
    (LINES, "0", 0), (TARGET, "port:80", "port:80"), (TARGET, "/tmp", "/tmp"), (flags.DIR, ["a", "b"], ["a", "b"]),
])
def test_kinds_convert(kind: flags.Kind, value: Any, expected: Any) -> None:
    assert kind.convert("--x", value) == expected


@pytest.mark.parametrize("kind,value", [(PORT, True), (SECONDS, False), (flags.DIR, ["ok", " "])])
def test_kinds_refuse_odd_values(kind: flags.Kind, value: Any) -> None:
    with pytest.raises(UsageError):
        kind.convert("--x", value)


def test_python_api_gets_the_same_checks(tmp_path: Path) -> None:
    """Calling a task object directly (as `inv` does) converts and checks too."""
    from invoke.context import Context
    from invoke.exceptions import Exit

    with pytest.raises(Exit) as err:
        namespace["logs"](Context(), "alpha", lines="x")
    assert err.value.code == 2 and "-n/--lines" in str(err.value.message)


@pytest.mark.parametrize("flags_given,message", [
    (["--check"], "--check only applies with --kill"),
    (["--include-unmanaged", "--timeout", "3"], "--include-unmanaged, --timeout only apply with --kill"),
])
def test_orphans_flags_that_need_kill(flags_given: list[str], message: str, lone_project: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`orphans --check` looked like a dry run of something; without --kill there is nothing to check."""
    code, out, err = jlc(["orphans", *flags_given], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {message}: orphans without --kill only lists them"), err
    assert jlc(["orphans", "--kill", "--check", "--only", "alpha"], capsys)[0] == 0
