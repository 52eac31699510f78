"""Output as it happens: each step's line when the step ends; Ctrl-C names the step it cut."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import psutil

from lifecycle.host import api

from conftest import SLOW, Workspace, wait_for


def held_pip_venv(ws: Workspace, go: Path) -> Path:
    """A venv whose python holds ``-m pip`` until ``go`` exists; everything else runs at once."""
    venv = ws.root / "heldvenv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(ws.venv / "pyvenv.cfg", venv / "pyvenv.cfg")
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\n"
                      f'if [ "$2" = pip ]; then while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.1; done; fi\n'
                      f'exec {shlex.quote(str(ws.venv / "bin" / "python"))} "$@"\n')
    python.chmod(0o755)
    return venv


def pip_held(venv: Path) -> bool:
    wanted = str(venv / "bin" / "python")
    return any(wanted in (p.info["cmdline"] or ()) and "pip" in (p.info["cmdline"] or ())
               for p in psutil.process_iter(["cmdline"]))


def test_bootstrap_prints_each_step_as_it_ends_and_ctrl_c_names_the_step(ws: Workspace) -> None:
    venv = held_pip_venv(ws, ws.root / "go")
    ws.project("slow", venv=str(venv), requirements=["ipykernel"])
    with ws.streaming("bootstrap", "slow") as lines:
        wait_for(lambda: pip_held(venv) and len(lines) >= 3, SLOW, "the first three steps' lines while pip runs")
        # pip has not finished, yet the steps before it are on the screen.
        assert [ln.split(": ")[2] for ln in lines] == ["dirs", "gitignore", "venv"], lines
        assert not any("RECAP" in ln for ln in lines)
    out = "".join(lines)
    assert "failed: [local] slow: requirements: interrupted after " in out, out
    assert "RECAP" in out and "failed=1" in out
    assert not pip_held(venv)  # the tool stopped pip on its way out


def test_ctrl_c_with_json_still_prints_one_document_and_exits_130(ws: Workspace) -> None:
    venv = held_pip_venv(ws, ws.root / "go")
    ws.project("slow", venv=str(venv), requirements=["ipykernel"])
    code, out, err = ws.interrupted("bootstrap", "slow", "--json", when=lambda: pip_held(venv), what="pip to run")
    assert code == 130, err
    doc = json.loads(out)  # exactly one document, nothing else on stdout
    assert [(r["action"], r["status"]) for r in doc["results"]] == [
        ("dirs", "changed"), ("gitignore", "changed"), ("venv", "ok"), ("requirements", "failed")]
    assert doc["results"][-1]["msg"].startswith("interrupted after ")
    assert doc["recap"]["local"]["failed"] == 1
    assert err.strip().splitlines()[-1] == "interrupted"


def test_host_layer_emits_each_step_as_it_begins_and_ends(ws: Workspace) -> None:
    """The event stream itself (what the controller renders live, locally and over SSH)."""
    path = ws.project("ev")
    events: list[dict[str, Any]] = []
    spec = {"name": "ev", "path": str(path), "venv": str(ws.venv), "python": sys.executable}
    api.handle({"version": 1, "op": "bootstrap", "host": "local", "projects": [spec],
                "options": {"check": True}}, events.append)
    steps = [(e["event"], e.get("action") or e["result"]["action"]) for e in events if e["event"] != "progress"]
    assert steps == [("step", "bootstrap")] + [
        (kind, action) for action in ("dirs", "gitignore", "venv", "requirements", "kernel")
        for kind in ("step", "result")]
    assert all(e["host"] == "local" for e in events if e["event"] == "step")
