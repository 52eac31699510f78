"""The front door: help the way people type it, only meaningful core options, mistypes answered.

Most cases run the program in-process (the same Program object `jlc` runs) to keep the matrix fast;
the ones about the real command line (exit status, broken pipes) run it as a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.cli import OPTIONS, REMOTE_OPTIONS
from lifecycle.tasks import namespace
from lifecycle.tasks.common import LifecycleTask

from conftest import REPO
from inprocess import jlc

TASKS = list(namespace.task_names)
POSITIONAL = {"bootstrap": "NAME", "start": "NAME", "stop": "NAME", "restart": "NAME", "logs": "NAME",
              "open": "NAME", "which": "TARGET", "trust": "HOST", "stop-server": "TARGET", "adopt": "NAME",
              "service": "ACTION", "close": "NAME"}


@pytest.fixture(autouse=True)
def no_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Help must work anywhere, before any inventory exists.
    monkeypatch.setenv("JLC_INVENTORY", str(tmp_path / "missing.toml"))
    monkeypatch.setenv("COLUMNS", "100")


def test_every_task_is_described_and_has_a_kind_for_every_value_flag() -> None:
    assert set(POSITIONAL) | {"status", "ports", "orphans", "stop-all", "start-all", "config", "discover",
                              "audit", "cull", "supervise", "tunnels"} == set(TASKS)
    for name in TASKS:
        task = namespace[name]
        assert isinstance(task, LifecycleTask) and task.__doc__, name
        for arg in task.get_arguments():
            assert arg.help, f"{name} {arg.name} has no help text"
            if arg.kind is not bool:
                assert arg.name in task.kinds, f"{name} --{arg.name} has no Kind (help would say VALUE)"


@pytest.mark.parametrize("task", TASKS)
def test_task_help_every_spelling(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    answers = {tuple(argv): jlc(argv, capsys) for argv in
               ([task, "--help"], [task, "-h"], ["help", task], ["--help", task], ["-h", task])}
    for argv, (code, out, err) in answers.items():
        assert (code, err) == (0, ""), (argv, err)
        assert out == answers[(task, "--help")][1], f"{argv} differs from {task} --help"
    text = answers[(task, "--help")][1]
    usage = text.split("\n\n")[0]
    assert usage.startswith(f"Usage: jlc {task}")
    if task in POSITIONAL:
        assert usage.startswith(f"Usage: jlc {task} {POSITIONAL[task]}"), usage
        assert f"--{'name' if POSITIONAL[task] == 'NAME' else POSITIONAL[task].lower()}=" not in text
    for absent in ("STRING", "VALUE", "[other tasks here", "--core-opts", "Docstring:"):
        assert absent not in text, absent
    # Each value flag shows the kind of value it takes.
    for arg in namespace[task].get_arguments():
        if arg.kind is not bool and not arg.positional:
            metavar = namespace[task].kinds[arg.name].metavar
            assert f"--{arg.name.replace('_', '-')}={metavar}" in text, (task, arg.name)


def test_usage_lines_the_issue_names(capsys: pytest.CaptureFixture[str]) -> None:
    start = jlc(["start", "--help"], capsys)[1]
    assert "Usage: jlc start NAME [--port=INT]" in start and "--tag=TAG" in start
    assert "--timeout=SECONDS" in jlc(["stop", "--help"], capsys)[1]
    assert "--root=DIR" in jlc(["discover", "--help"], capsys)[1]
    assert "-n INT, --lines=INT" in jlc(["logs", "--help"], capsys)[1]


def test_bare_program_help_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    bare, long_help, short_help, help_cmd = (jlc(a, capsys) for a in ([], ["--help"], ["-h"], ["help"]))
    assert bare == long_help == short_help == help_cmd
    code, text, err = bare
    assert code == 0 and err == ""
    for task in TASKS:
        assert re.search(rf"^  {re.escape(task)}\b", text, re.M), task
    for name in (*OPTIONS, *REMOTE_OPTIONS):
        assert f"--{name}" in text
    for refused in ("--dry", "--write-pyc", "--prompt-for-sudo-password", "--warn-only", "--pty", "--echo",
                    "--hide", "--command-timeout", "--config", "--debug", "--list-depth", "--list-format",
                    "--prompt-for-passphrase", "--list-agent-keys", "-R,", "-w,", "-p,"):
        assert refused not in text, refused
    code, listing, _ = jlc(["--list"], capsys)
    assert code == 0 and all(re.search(rf"^  {re.escape(t)}\b", listing, re.M) for t in TASKS)


REFUSED = ["-R", "--dry", "-e", "--echo", "-w", "--warn-only", "-p", "--pty", "--write-pyc", "-d",
           "--prompt-for-sudo-password", "--hide=both", "-T5", "--command-timeout=abc", "-f/x.yaml",
           "--config=/x.yaml", "--list-depth=2", "-Fjson"]


@pytest.mark.parametrize("flag", REFUSED)
def test_core_flags_that_do_nothing_here_are_refused_before_anything_runs(
        flag: str, lone_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-R` promised to only echo and really started/stopped servers: now nothing runs."""
    path = lone_project
    flag_args = flag.split("/", 1) if flag.startswith("-f/") else [flag]
    for argv in ([*flag_args, "start", "alpha"], ["start", "alpha", *flag_args]):
        code, out, err = jlc(argv, capsys)
        assert code == 2, (argv, out, err)
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1
        assert not (path / ".logs").exists(), "the task ran"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True, timeout=60)


def test_dry_run_flag_points_at_check(lone_project: Path) -> None:
    proc = cli("-R", "start", "alpha")
    assert proc.returncode == 2 and "--check" in proc.stderr and not (lone_project / ".logs").exists()


def test_fabric_flags_that_are_ignored_here_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--prompt-for-passphrase", "--prompt-for-login-password", "--list-agent-keys"):
        code, out, err = jlc([flag, "status"], capsys)
        assert code == 2 and out == "" and err.startswith(f"error: {flag} ") and err.count("\n") == 1, err
    code, _, err = jlc(["-t", "abc", "-H", "box", "status"], capsys)
    assert code == 2 and "-t/--connect-timeout: expected a positive number of seconds" in err


@pytest.mark.parametrize("argv,message", [
    (["statsu"], "error: unknown task 'statsu'; did you mean: status"),
    (["help", "statsu"], "error: unknown task 'statsu'; did you mean: status"),
    (["--help", "stpo"], "error: unknown task 'stpo'; did you mean: stop"),
    (["frobnicate"], "error: unknown task 'frobnicate'; tasks: bootstrap, start, stop,"),
    (["status", "--jsno"], "error: status has no option --jsno; did you mean: --json?"),
    (["--json", "status"], "error: unknown option --json; task options go after the task name"),
    (["start"], "error: start needs NAME; see jlc start --help"),
    (["which"], "error: which needs TARGET"),
    (["start", "a", "b"], "error: start takes one NAME; unexpected 'b'"),
    (["status", "extra"], "error: status takes no argument; unexpected 'extra'"),
    (["start", "a", "--port"], "error: --port needs a value (INT)"),
    (["logs", "a", "-n"], "error: -n/--lines needs a value (INT)"),
    (["status", "--json=yes"], "error: --json is an on/off flag and takes no value"),
    (["help", "start", "stop"], "error: help takes one task name"),
])
def test_mistakes_get_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = jlc(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_the_installed_spellings_agree(lone_project: Path) -> None:
    """`python -m lifecycle` names itself so; the exit status of a mistype is 2 from the real command line."""
    proc = cli("start", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: python -m lifecycle start NAME")
    assert cli("statsu").returncode == 2
    version = cli("-V")
    assert version.returncode == 0 and version.stdout.startswith("jupyter-lifecycle ")


def _head(cmd: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`CMD | head -1` with unbuffered output (where a closed pipe shows up mid-write)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}
    shell = " ".join(f"'{c}'" for c in cmd) + " | head -1"
    return subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


@pytest.mark.parametrize("args", [["--list"], ["--help", "status"], ["status", "--help"], ["-l"]])
def test_inv_help_piped_into_head_ends_quietly(args: list[str]) -> None:
    for _ in range(3):  # the race with head is won or lost at random; a few tries catch it
        proc = _head([sys.executable, "-m", "invoke", *args])
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
        assert proc.stdout.strip()


@pytest.mark.parametrize("args", [[], ["--help"], ["help", "start"], ["--list"]])
def test_jlc_help_piped_into_head_ends_quietly(args: list[str]) -> None:
    for _ in range(3):
        proc = _head([sys.executable, "-m", "lifecycle", *args])
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
        assert proc.stdout.startswith(("Usage:", "Tasks:"))
