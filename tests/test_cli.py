"""The command line: exit codes, one JSON document, any directory, inv and the installed command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO, SLOW, Workspace, wait_for


def test_unknown_project_is_exit_2_one_line(ws: Workspace) -> None:
    ws.project("alpha")
    proc = ws.cli("start", "nope")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: no project named 'nope'; projects: alpha"
    typo = ws.cli("start", "alpah")
    assert typo.returncode == 2
    assert typo.stderr.strip() == "error: no project named 'alpah'; did you mean: alpha?; projects: alpha"


@pytest.mark.parametrize("args", [["statuss"], ["start", "alpha", "--port", "abc"], ["start"],
                                  ["logs", "alpha", "-f", "--json"]])
def test_usage_errors_exit_2_without_traceback(ws: Workspace, args: list[str]) -> None:
    ws.project("alpha")
    proc = ws.cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_json_is_the_only_thing_on_stdout(ws: Workspace) -> None:
    ws.project("alpha")
    for args in (["status"], ["config"], ["bootstrap", "alpha", "--check"], ["stop", "alpha"], ["logs", "alpha"]):
        proc = ws.cli(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)  # the whole of stdout parses as one document
        assert doc["version"] == 1


def test_config_json_shape(ws: Workspace) -> None:
    ws.extra_toml = '[defaults]\nstop_timeout = 3\n[hosts.box]\naddress = "me@box"\n'
    ws.project("alpha", tags=["t"])
    doc = ws.json("config")
    assert set(doc) == {"version", "source", "defaults", "hosts", "projects", "discover"}
    assert doc["source"] == str(ws.inventory)
    assert doc["defaults"]["stop_timeout"] == 3
    assert doc["hosts"]["box"]["address"] == "me@box"
    assert doc["projects"]["alpha"]["tags"] == ["t"]


def test_runs_from_any_directory_and_dot_selects_the_cwd_project(ws: Workspace) -> None:
    path = ws.project("alpha")
    (path / "sub").mkdir()
    elsewhere = ws.cli("bootstrap", "alpha", "--check", cwd=Path("/"))
    assert elsewhere.returncode == 0
    # Without JLC_INVENTORY the nearest inventory.toml upward is used, and '.' is the project we stand in.
    env = {k: v for k, v in os.environ.items() if k != "JLC_INVENTORY"}
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "bootstrap", ".", "--check"], cwd=path / "sub",
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "[local] alpha:" in proc.stdout
    outside = subprocess.run([sys.executable, "-m", "lifecycle", "bootstrap", "."], cwd=ws.root, env=env,
                             capture_output=True, text=True, timeout=60)
    assert outside.returncode == 2 and "is in none; projects: alpha" in outside.stderr


def test_inv_in_the_checkout(ws: Workspace) -> None:
    ws.project("alpha")
    listing = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "--list"],
                             capture_output=True, text=True, timeout=60)
    for name in ("bootstrap", "start", "stop", "restart", "status", "logs", "config"):
        assert name in listing.stdout
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "status", "--json"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "JLC_INVENTORY": str(ws.inventory)})
    assert proc.returncode == 0 and json.loads(proc.stdout)["projects"][0]["name"] == "alpha"


def test_pip_install_gives_the_command(ws: Workspace, tmp_path: Path) -> None:
    """`pip install .` into a fresh venv: jupyter-lifecycle and jlc work from any directory."""
    ws.project("alpha")
    venv = tmp_path / "tool"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=180)
    # Dependencies come from this interpreter's environment so nothing is downloaded.
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (purelib / "_outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build = tmp_path / "src"  # the working tree as it is now, without venvs and caches
    shutil.copytree(REPO, build, ignore=shutil.ignore_patterns(".git", ".venv", ".tool", "*cache*", "*.egg-info"))
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(build)], capture_output=True, text=True, timeout=300)
    assert wheel.returncode == 0, wheel.stderr
    (whl,) = (tmp_path / "dist").glob("jupyter_lifecycle-*.whl")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(whl)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "JLC_INVENTORY": str(ws.inventory)}
    version = subprocess.run([str(venv / "bin" / "jupyter-lifecycle"), "--version"], capture_output=True,
                             text=True, cwd="/", env=env, timeout=60)
    assert version.stdout.startswith("jupyter-lifecycle ")
    # bootstrap --check renders the packaged .gitignore template: package data is installed.
    check = subprocess.run([str(venv / "bin" / "jlc"), "bootstrap", "alpha", "--check", "--json"],
                           capture_output=True, text=True, cwd="/", env=env, timeout=60)
    assert check.returncode == 0, check.stderr
    results = json.loads(check.stdout)["results"]
    gitignore = next(r for r in results if r["action"] == "gitignore")
    assert ".jupyter_runtime/" in gitignore["diff"]["after"]


def test_flags_for_one_project_refuse_several(ws: Workspace) -> None:
    ws.project("alpha", port_range=[ws.ports[0], ws.ports[3]])
    ws.project("beta", port_range=[ws.ports[4], ws.ports[7]])
    for flag in (["--foreground"], ["--port", str(ws.ports[0])]):
        proc = ws.cli("start", "*", *flag)
        assert proc.returncode == 2
        assert proc.stderr.strip().endswith("selects 2: alpha, beta")
    assert not (ws.root / "projects" / "alpha" / ".logs").exists()


def test_logs_follow_streams_across_rotation(ws: Workspace) -> None:
    path = ws.project("alpha")
    log = path / ".logs" / "jupyterlab.log"
    log.parent.mkdir()
    log.write_text("older line\nold line\n")
    with ws.streaming("logs", "alpha", "-f", "-n", "1") as seen:
        wait_for(lambda: "old line\n" in seen, SLOW, "the last line before following")
        with open(log, "a") as fh:
            fh.write("appended token=abcdef0123456789\n")
        wait_for(lambda: "appended token=<hidden>\n" in seen, SLOW, "the appended line, token hidden")
        log.rename(log.with_suffix(".log.1"))  # what a restart does
        log.write_text("after rotation\n")
        wait_for(lambda: "after rotation\n" in seen, SLOW, "the first line of the new log")
    assert "older line\n" not in seen
