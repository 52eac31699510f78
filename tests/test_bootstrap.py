"""bootstrap against a real venv: idempotent, --check changes nothing, pip failures are readable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from test_lifecycle import start_kernel

from conftest import Workspace, alive


def pip_runs(project: Path) -> int:
    log = project / ".logs" / "bootstrap.log"
    return log.read_text().count(" -m pip install ") if log.exists() else 0


def test_bootstrap_twice_changes_then_not(ws: Workspace) -> None:
    path = ws.project("boot", display_name="Boot Camp")
    # A requirements file unique to this test: its fingerprint is not yet in the shared venv's stamp.
    (path / "requirements.txt").write_text(f"# {uuid.uuid4()}\n")
    (path / ".gitignore").write_text("# my own\n*.csv\n")

    first = ws.json("bootstrap", "boot")
    by_action = {r["action"]: r for r in first["results"]}
    assert first["recap"]["local"]["failed"] == 0
    assert first["recap"]["local"]["changed"] >= 3
    assert by_action["dirs"]["status"] == by_action["kernel"]["status"] == by_action["gitignore"]["status"] == "changed"
    assert pip_runs(path) == 1
    for d in (".jupyter_config", ".jupyter_data", ".jupyter_runtime", ".ipython", ".cache/matplotlib", ".logs"):
        assert (path / d).is_dir()
    gitignore = (path / ".gitignore").read_text()
    assert gitignore.startswith("# my own\n*.csv\n") and ".jupyter_runtime/" in gitignore and ".logs/" in gitignore
    kernel = json.loads((ws.venv / "share" / "jupyter" / "kernels" / "boot" / "kernel.json").read_text())
    assert kernel["display_name"] == "Boot Camp"
    assert kernel["env"]["IPYTHONDIR"] == str(path / ".ipython")
    assert kernel["env"]["MPLCONFIGDIR"] == str(path / ".cache" / "matplotlib")
    assert Path(kernel["argv"][0]).parent == ws.venv / "bin"

    second = ws.json("bootstrap", "boot")
    assert second["recap"]["local"] == {"ok": 5, "changed": 0, "failed": 0, "skipped": 0, "unreachable": 0}
    assert pip_runs(path) == 1  # no pip the second time
    assert (path / ".gitignore").read_text() == gitignore

    # A changed requirements file is noticed.
    (path / "requirements.txt").write_text(f"# {uuid.uuid4()}\n")
    assert ws.cli("bootstrap", "boot").returncode == 0
    assert pip_runs(path) == 2


def test_check_mode_on_a_fresh_project_changes_nothing(ws: Workspace) -> None:
    path = ws.project("fresh", venv=".venv")
    before = sorted(p.name for p in ws.root.rglob("*"))
    proc = ws.cli("bootstrap", "fresh", "--check")
    assert proc.returncode == 0, proc.stderr
    for line in ("changed: [local] fresh: dirs: would create .logs",
                 "changed: [local] fresh: gitignore: would update the managed block in .gitignore",
                 f"changed: [local] fresh: venv: would create {path / '.venv'}",
                 "changed: [local] fresh: requirements: would install requirements",
                 "changed: [local] fresh: kernel: would register kernel 'fresh'"):
        assert line in proc.stdout
    assert sorted(p.name for p in ws.root.rglob("*")) == before


def test_pip_failure_shows_log_tail_and_skips_the_kernel(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ws.project("nopkg", venv=".venv", requirements=["jlc-test-no-such-package-0"])
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # fail offline, quickly
    proc = ws.cli("bootstrap", "nopkg")
    assert proc.returncode == 1
    assert "changed: [local] nopkg: venv: created" in proc.stdout
    assert "failed: [local] nopkg: requirements: pip install failed (exit 1); last lines of" in proc.stdout
    assert "jlc-test-no-such-package-0" in proc.stdout  # pip's own words, from the log tail
    assert "skipped: [local] nopkg: kernel: skipped: an earlier step failed" in proc.stdout
    assert (path / ".venv" / "bin" / "python").exists()
    assert not (path / ".venv" / "jupyter-lifecycle-stamp.json").exists()


def test_projects_sharing_a_venv_install_once(ws: Workspace) -> None:
    # A requirement spec no earlier test used, that the installed ipykernel satisfies.
    unique = ["jupyterlab", f"ipykernel!=0.0.{uuid.uuid4().int % 10**9}"]
    ws.project("one", port_range=[ws.ports[0], ws.ports[3]], requirements=unique)
    ws.project("two", port_range=[ws.ports[4], ws.ports[7]], requirements=unique)
    doc = ws.json("bootstrap", "one,two")
    reqs = [r for r in doc["results"] if r["action"] == "requirements"]
    assert [r["msg"] for r in reqs][1] == "requirements already installed"
    assert pip_runs(ws.root / "projects" / "one") == 1 and pip_runs(ws.root / "projects" / "two") == 0


def test_second_bootstrap_is_fast_enough_to_not_run_anything(ws: Workspace) -> None:
    """No subprocess at all on an up-to-date project (the <1 s figure is measured in bench/)."""
    path = ws.project("quick")
    assert ws.cli("bootstrap", "quick").returncode == 0
    log = path / ".logs" / "bootstrap.log"
    size = log.stat().st_size if log.exists() else 0
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "bootstrap", "quick"], capture_output=True, text=True,
                          env={**os.environ, "JLC_INVENTORY": str(ws.inventory)}, timeout=60)
    assert proc.returncode == 0 and "changed=0" in proc.stdout
    assert (log.stat().st_size if log.exists() else 0) == size


def _home_entries(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


# What may appear in HOME (docs/conventions.md): the tool's own state (port claims) and pip's cache.
HOME_ALLOWED = (".local/state/jupyter-lifecycle", ".cache/pip")


def test_bootstrap_start_stop_write_nothing_into_home(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])
    assert _home_entries(home) == []
    monkeypatch.delenv("JLC_STATE_DIR")  # the tool's own state goes where it goes for a user
    # pip asks rustc for its version (for its user agent); a rustup proxy on PATH then sets up
    # ~/.rustup in an empty HOME. A HOME with rustup in use has it already; it is not ours.
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                                if not (Path(d) / "rustup").exists()))
    path = ws.project("homeless")
    (path / "requirements.txt").write_text(f"# {uuid.uuid4()}\n")  # pip runs
    boot = ws.json("bootstrap", "homeless")
    assert {r["action"]: r["status"] for r in boot["results"]} == {
        "dirs": "changed", "gitignore": "changed", "venv": "ok", "requirements": "ok", "kernel": "changed"}
    # A venv of its own too: venv creation runs ensurepip. pip may not reach an index (with network it
    # would download JupyterLab here), so the requirements step fails and the kernel step is skipped.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    ws.project("fresh", venv=".venv")
    fresh = ws.json("bootstrap", "fresh", expect=1)
    assert [(r["action"], r["status"]) for r in fresh["results"]][2] == ("venv", "changed")

    assert ws.cli("start", "homeless", "--no-open").returncode == 0
    pid = int((path / ".logs" / "jupyter.pid").read_text())
    kernel = start_kernel(path, pid)
    # JupyterLab runs npm when node is on PATH (not on every machine): npm's cache and logs go to the project.
    assert psutil.Process(pid).environ()["npm_config_cache"] == str(path / ".cache" / "npm")
    assert ws.cli("stop", "homeless").returncode == 0
    assert not alive(pid) and not alive(kernel)

    entries = _home_entries(home)
    assert all(any(e == a or e.startswith(a + "/") or a.startswith(e + "/") for a in HOME_ALLOWED)
               for e in entries), entries
    assert (home / ".local" / "state" / "jupyter-lifecycle").is_dir()  # the check above can fail
