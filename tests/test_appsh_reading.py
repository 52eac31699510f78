"""Reading a project's app.sh: the contract's commands, the isolation variables, where the pid file goes.

Pure text checks, on scripts written the ways projects write them (the spec's own snippets, a case
dispatcher, per-command functions), and on the script `adopt` generates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.app_script import render_app_sh
from lifecycle.host import appsh
from lifecycle.inventory import parse_inventory

ISOLATION = """\
PROJECT_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export JUPYTER_CONFIG_DIR="$PROJECT_ROOT/.jupyter_config"
export JUPYTER_DATA_DIR="$PROJECT_ROOT/.jupyter_data"
export JUPYTER_RUNTIME_DIR="$PROJECT_ROOT/.jupyter_runtime"
export IPYTHONDIR="$PROJECT_ROOT/.ipython"
export MPLCONFIGDIR="$PROJECT_ROOT/.cache/matplotlib"
PID_FILE="$PROJECT_ROOT/.logs/jupyter.pid"
JUPYTER="$PROJECT_ROOT/.venv/bin/jupyter"
"""

CASE_SCRIPT = ISOLATION + """\
start() {
  local fg=0 open=1 port=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --foreground) fg=1 ;;
      --no-open) open=0 ;;
      --port) port="$2"; shift ;;
    esac
    shift
  done
  nohup "$JUPYTER" lab --port="$port" > "$LOG_FILE" 2>&1 &
  echo $! > "$PID_FILE"
}
case "${1:-}" in
  bootstrap) bootstrap ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  logs)
    case "${2:-}" in
      -f) tail -f "$LOG_FILE" ;;
      *) cat "$LOG_FILE" ;;
    esac ;;
esac
"""


def test_a_complete_case_dispatcher_keeps_the_contract() -> None:
    assert appsh.contract_gaps(CASE_SCRIPT) == []
    assert appsh.isolation_gaps(CASE_SCRIPT) == []
    assert appsh.pid_file_paths(CASE_SCRIPT) == ["$PROJECT_ROOT/.logs/jupyter.pid"]


def test_function_per_command_style_is_understood() -> None:
    script = ISOLATION + "\n".join(f"cmd_{c}() {{ :; }}" for c in appsh.COMMANDS) + \
        '\ncmd_start() { [ "$1" = --foreground ] || [ "$1" = --no-open ] || [ "$1" = --port ]; }\n' \
        'cmd_logs() { tail -F "$LOG"; }\n"cmd_$1" "$@"\n'
    assert appsh.contract_gaps(script) == []


@pytest.mark.parametrize("edit,gaps", [
    (lambda s: s.replace("  restart) stop; start ;;\n", ""), ["restart"]),
    (lambda s: s.replace("      -f) tail -f \"$LOG_FILE\" ;;\n", ""), ["logs -f"]),
    (lambda s: s.replace("--no-open) open=0 ;;", ""), ["start --no-open"]),
    # A command named only in a comment is not implemented.
    (lambda s: s.replace("  status) status ;;\n", "  # status) not yet\n"), ["status"]),
])
def test_missing_commands_and_options_are_named(edit: object, gaps: list[str]) -> None:
    assert appsh.contract_gaps(edit(CASE_SCRIPT)) == gaps  # type: ignore[operator]


def test_rm_dash_f_is_not_logs_follow() -> None:
    script = CASE_SCRIPT.replace('      -f) tail -f "$LOG_FILE" ;;\n', '      x) rm -f "$PID_FILE"; [ -f x ] ;;\n')
    assert appsh.contract_gaps(script) == ["logs -f"]


def test_isolation_variables_must_come_before_jupyter_and_point_into_the_project() -> None:
    late = CASE_SCRIPT.replace('export IPYTHONDIR="$PROJECT_ROOT/.ipython"\n', "") + \
        'export IPYTHONDIR="$PROJECT_ROOT/.ipython"\n'
    lines = late.splitlines()
    call = next(i for i, line in enumerate(lines) if "nohup" in line) + 1
    assert appsh.isolation_gaps(late) == [f"IPYTHONDIR is set (line {len(lines)}) only after Jupyter is called "
                                          f"(line {call})"]
    shared = CASE_SCRIPT.replace('"$PROJECT_ROOT/.jupyter_data"', '"$HOME/.local/share/jupyter"')
    assert appsh.isolation_gaps(shared) == ['JUPYTER_DATA_DIR is set to "$HOME/.local/share/jupyter", '
                                            "not the project's .jupyter_data"]
    unexported = CASE_SCRIPT.replace("export MPLCONFIGDIR=", "MPLCONFIGDIR=")
    assert appsh.isolation_gaps(unexported) == ["MPLCONFIGDIR is set but not exported"]
    assert appsh.isolation_gaps("#!/bin/bash\njupyter lab\n") == [
        f"{var} is never set" for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                                          "IPYTHONDIR", "MPLCONFIGDIR")]


def test_pid_file_paths_expand_the_scripts_own_variables() -> None:
    script = 'RUN_DIR="$ROOT/run"\nPIDFILE="$RUN_DIR/jupyter.pid"\nOTHER_PID_FILE=$ROOT/.run/jupyter.pid\n'
    paths = appsh.pid_file_paths(script)
    assert paths == ["$ROOT/run/jupyter.pid", "$ROOT/.run/jupyter.pid"]
    assert [appsh.conventional_pid_path(p) for p in paths] == [False, True]
    assert appsh.conventional_pid_path("$PIDFILE_FROM_ENV") is None


def test_the_marker_names_the_template_version() -> None:
    assert appsh.generated_version(f"#!/usr/bin/env bash\n{appsh.MARKER}7. more\n") == 7
    assert appsh.generated_version(CASE_SCRIPT) is None
    # Only at the top: a script that quotes the marker further down is not ours.
    assert appsh.generated_version("#!/bin/sh\n" + "\n" * 10 + f"{appsh.MARKER}1\n") is None


def test_the_generated_script_keeps_the_contract_by_these_same_checks(tmp_path: Path) -> None:
    inv = parse_inventory(f'[projects.demo]\npath = "{tmp_path}"\nnotebook_dir = "notebooks"\n',
                          tmp_path / "inventory.toml")
    text = render_app_sh(inv.projects["demo"], inv.source)
    assert appsh.contract_gaps(text) == []
    assert appsh.isolation_gaps(text) == []
    assert all(appsh.conventional_pid_path(p) for p in appsh.pid_file_paths(text))
    assert appsh.generated_version(text) is not None
