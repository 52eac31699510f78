"""jlc service: the supervisor handed to systemd or launchd; files verified, installs undone exactly."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lifecycle import service_units
from lifecycle.host.service import LABEL, MARKER

from conftest import REPO, Workspace

UNIT = Path(".config/systemd/user/jupyter-lifecycle.service")
WANTS = Path(".config/systemd/user/default.target.wants/jupyter-lifecycle.service")
PLIST = Path(f"Library/LaunchAgents/{LABEL}.plist")
COMMAND = str(REPO / ".tool" / "bin" / "jupyter-lifecycle")


def tree(*roots: Path) -> list[str]:
    """Every path under the roots (the roots included), with symlink targets: what install may touch."""
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            out.append(dirpath)
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                out.append(full + (" -> " + os.readlink(full) if os.path.islink(full) else ""))
    return sorted(out)


def svc(ws: Workspace, manager: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JLC_SERVICE_MANAGER"}
    if manager:
        env["JLC_SERVICE_MANAGER"] = manager
    return subprocess.run([COMMAND, "service", *args], capture_output=True, text=True, timeout=120, cwd=ws.root,
                          env={**env, "JLC_INVENTORY": str(ws.inventory)})


def actions(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    assert proc.returncode in (0, 1), proc.stderr
    return [(r["action"], r["status"]) for r in json.loads(proc.stdout)["results"]]


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


def test_systemd_install_is_idempotent_and_uninstall_removes_exactly_what_it_wrote(ws: Workspace, home: Path) -> None:
    ws.project("p1")
    state = Path(os.environ["JLC_STATE_DIR"])
    before = tree(home)
    assert not state.exists()

    would = svc(ws, "systemd", "install", "--check", "--json")
    assert ("unit", "changed") in actions(would) and ("enable", "changed") in actions(would)
    assert tree(home) == before and not state.exists()

    first = svc(ws, "systemd", "install", "--json")
    assert actions(first) == [("unit", "changed"), ("enable", "changed"), ("activate", "skipped"), ("linger", "ok")]
    text = (home / UNIT).read_text()
    assert text.startswith(f"# {MARKER}") and f"ExecStart={COMMAND} supervise\n" in text
    assert f"Environment=JLC_INVENTORY={ws.inventory}\n" in text and "KillMode=process\n" in text
    assert os.readlink(home / WANTS) == "../jupyter-lifecycle.service"

    again = svc(ws, "systemd", "install", "--json")
    assert [s for _, s in actions(again)] == ["ok", "ok", "skipped", "ok"]
    status = json.loads(svc(ws, "systemd", "status", "--json").stdout)
    assert (status["installed"], status["current"], status["enabled"]) == (True, True, True)
    assert status["manager"] == "systemd"

    text_status = svc(ws, "systemd", "status")
    assert "installed, up to date" in text_status.stdout and "enabled:   yes" in text_status.stdout

    # Edited by hand: --check shows the diff back to what install writes, install puts it back.
    (home / UNIT).write_text(text.replace("RestartSec=5", "RestartSec=9"))
    check = svc(ws, "systemd", "install", "--check")
    assert "changed: [local] supervisor: unit: would write" in check.stdout
    assert "-RestartSec=9" in check.stdout and "+RestartSec=5" in check.stdout
    assert "RestartSec=9" in (home / UNIT).read_text()
    assert actions(svc(ws, "systemd", "install", "--json"))[0] == ("unit", "changed")

    gone = svc(ws, "systemd", "uninstall", "--json")
    assert actions(gone) == [("unit", "changed"), ("unit", "changed")]
    assert tree(home) == before and not state.exists()
    assert actions(svc(ws, "systemd", "uninstall", "--json")) == [("unit", "ok")]


def test_a_unit_someone_else_wrote_is_left_alone(ws: Workspace, home: Path) -> None:
    ws.project("p1")
    (home / UNIT).parent.mkdir(parents=True)
    (home / UNIT).write_text("[Service]\nExecStart=/bin/true\n")
    refused = svc(ws, "systemd", "install")
    assert refused.returncode == 1 and "was not written by jupyter-lifecycle; left alone" in refused.stdout
    assert (home / UNIT).read_text() == "[Service]\nExecStart=/bin/true\n"
    kept = svc(ws, "systemd", "uninstall")
    assert kept.returncode == 1 and (home / UNIT).exists()


def test_without_a_service_manager_it_says_what_to_run(ws: Workspace) -> None:
    ws.project("p1")
    out = svc(ws, None if not os.path.isdir("/run/systemd/system") else "none", "install")
    assert out.returncode == 1, out.stdout
    assert "no service manager on local" in out.stdout
    assert f"tmux new-session -d -s jlc-supervise 'JLC_INVENTORY={ws.inventory} {COMMAND} supervise'" in out.stdout
    assert f"@reboot JLC_INVENTORY={ws.inventory} {COMMAND} supervise >> " in out.stdout


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        if os.environ.get("JLC_REQUIRE_SYSTEMD_ANALYZE"):
            pytest.fail("systemd-analyze is required here (.ci/run installs Debian's systemd package)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    return found


@pytest.mark.parametrize("inventory", ["/srv/labs/inventory.toml", "/srv/my labs/100% \"q\" $HOME;x/inventory.toml"])
def test_the_rendered_unit_verifies(tmp_path: Path, inventory: str) -> None:
    analyze = _systemd_analyze()
    bindir = tmp_path / "venv dir" / "bin"
    bindir.mkdir(parents=True)
    command = bindir / "jupyter-lifecycle"
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    unit = tmp_path / "jupyter-lifecycle.service"
    unit.write_text(service_units.render("systemd", str(command), inventory))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([analyze, "--user", "verify", str(path)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})

    good = verify(unit)
    assert good.returncode == 0 and good.stderr.strip() == "" and good.stdout.strip() == "", good.stderr
    # The control: a broken unit is caught (so the check above can fail).
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("KillMode=process", "KillMode=proces"))
    assert "Failed to parse kill mode" in verify(broken).stderr
    # systemd's own quoting rules give back exactly our words (unquote as systemd does).
    exec_start = next(ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart="))
    assert _systemd_words(exec_start.split("=", 1)[1]) == [str(command), "supervise"]
    env_line = next(ln for ln in unit.read_text().splitlines() if ln.startswith("Environment=JLC") or
                    ln.startswith('Environment="JLC'))
    assert _systemd_words(env_line.split("=", 1)[1]) == [f"JLC_INVENTORY={inventory}"]


def _systemd_words(text: str) -> list[str]:
    """Split a unit value the way systemd does: double quotes, backslash escapes, %% and $$."""
    words: list[str] = []
    current: list[str] | None = None
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted:
            current = (current or []) + [text[i + 1]]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
            current = current or []
        elif ch == " " and not quoted:
            if current is not None:
                words.append("".join(current))
            current = None
        else:
            current = (current or []) + [ch]
        i += 1
    if current is not None:
        words.append("".join(current))
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def test_launchd_agent_is_a_valid_plist_and_uninstall_removes_it(ws: Workspace, home: Path) -> None:
    odd = ws.root / "a & <b>"
    odd.mkdir()
    ws.project("p1")
    before = tree(home)
    out = svc(ws, "launchd", "install", "--json")
    assert actions(out) == [("unit", "changed"), ("activate", "skipped")]
    plist = plistlib.loads((home / PLIST).read_bytes())  # what plutil -lint checks: well-formed, a plist dict
    assert plist["Label"] == LABEL and plist["ProgramArguments"] == [COMMAND, "supervise"]
    assert plist["EnvironmentVariables"]["JLC_INVENTORY"] == str(ws.inventory)
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["AbandonProcessGroup"] is True
    log = Path(plist["StandardOutPath"])
    assert log.parent.is_dir() and log.parent == home / "Library" / "Logs" / "jupyter-lifecycle"
    assert [s for _, s in actions(svc(ws, "launchd", "install", "--json"))] == ["ok", "skipped"]
    # Escaping: a path with XML's special characters comes back intact.
    rendered = service_units.render("launchd", str(odd / "jlc"), str(odd / "inventory.toml"), str(log))
    assert plistlib.loads(rendered.encode())["ProgramArguments"][0] == str(odd / "jlc")
    assert actions(svc(ws, "launchd", "uninstall", "--json")) == [("unit", "changed")]
    assert tree(home) == before


def test_remote_install_finds_the_command_there_or_says_what_to_do(ws: Workspace, ssh_lab: Any) -> None:
    ws.extra_toml = ssh_lab.hosts_toml("box1")
    ws.project("p1")
    remote_home = ssh_lab.hosts["box1"].home
    missing = svc(ws, None, "install", "--host", "box1")
    assert missing.returncode == 1
    assert "jupyter-lifecycle is not installed on box1" in missing.stdout, missing.stdout
    # Installed there the way pip --user / pipx do it, with the host's own inventory.
    local_bin = remote_home / ".local" / "bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    (local_bin / "jupyter-lifecycle").symlink_to(COMMAND)
    own = remote_home / ".config" / "jupyter-lifecycle" / "inventory.toml"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("")
    try:
        status = json.loads(svc(ws, None, "status", "--host", "box1", "--json").stdout)
        assert status["host"] == "box1" and status["command"] == str(local_bin / "jupyter-lifecycle")
        assert status["inventory"] == str(own)
        out = svc(ws, None, "install", "--host", "box1")
        if status["manager"] == "none":
            assert out.returncode == 1 and "no service manager on box1" in out.stdout
            assert f"JLC_INVENTORY={own} {local_bin / 'jupyter-lifecycle'} supervise" in out.stdout
        else:
            assert out.returncode == 0, out.stdout
            assert svc(ws, None, "uninstall", "--host", "box1").returncode == 0
    finally:
        (local_bin / "jupyter-lifecycle").unlink()
        own.unlink()


def test_an_unknown_action_is_a_usage_error(ws: Workspace) -> None:
    ws.project("p1")
    out = svc(ws, "systemd", "start")
    assert out.returncode == 2 and out.stderr == "error: ACTION: expected install, uninstall or status, got 'start'\n"
