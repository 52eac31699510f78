"""Bad state files against the real CLI: status, stop and start on a project whose pid file,
metadata, runtime file or port claims are junk.  Each run ends within its deadline with the right
exit code, no traceback and at most one line on stderr; the junk is reported and repaired; a
bystander process whose pid a file names is never touched; the project then starts and stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_state_files import make

from conftest import Workspace, alive

# (what, kind): what is the file put in the project (or the state dir), kind what sits there.
CASES = [
    ("pid", "fifo"), ("pid", "directory"), ("pid", "dev-zero"), ("pid", "digits-5000"), ("pid", "binary"),
    ("pid", "huge"), ("pid", "bystander"), ("pid", "zero"), ("run-pid", "fifo"), ("run-pid", "dev-zero"),
    ("meta", "fifo"), ("meta", "directory"), ("meta", "dev-zero"), ("meta", "wrong-types"), ("meta", "deep-json"),
    ("runtime", "fifo"), ("runtime", "directory"), ("runtime", "dev-zero"), ("runtime", "huge"),
    ("runtime", "binary"), ("runtime", "wrong-types"), ("claims", "fifo"), ("claims", "directory"),
    ("claims", "binary"), ("claims-lock", "fifo"), ("lock", "fifo"), ("lock", "directory"), ("lock", "dev-zero"),
]
# Short deadlines: a blocking read would hang forever; these fail the test instead.
QUICK = 30
START = 90


def check_clean(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) <= 1, proc.stderr


def plant(ws: Workspace, root: Path, what: str, kind: str, bystander: int) -> Path:
    """Put the junk in place; returns its path."""
    state = Path(os.environ["JLC_STATE_DIR"])
    path = {"pid": root / ".logs" / "jupyter.pid", "run-pid": root / ".run" / "jupyter.pid",
            "meta": root / ".logs" / "jupyter.meta.json",
            "runtime": root / ".jupyter_runtime" / f"jpserver-{bystander}.json",
            "claims": state / "port-claims.json", "claims-lock": state / "port-claims.lock",
            "lock": root / ".logs" / "jupyter.lock"}[what]
    if kind == "bystander":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{bystander}\n")
    elif kind == "zero":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("0\n")
    elif kind == "wrong-types" and what == "meta":
        # The identity names the bystander, with values of the wrong type: never a reason to signal it.
        (root / ".logs").mkdir(exist_ok=True)
        (root / ".logs" / "jupyter.pid").write_text(f"{bystander}\n")
        path.write_text(json.dumps({"pid": bystander, "create_time": "yesterday", "cmdline": 7,
                                    "root": str(root), "port": "8888"}))
    elif kind == "wrong-types":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": str(bystander), "port": "x", "token": 5, "root_dir": str(root)}))
    else:
        make(path, kind)
    return path


@pytest.mark.parametrize("what,kind", CASES, ids=[f"{w}-{k}" for w, k in CASES])
def test_bad_state_file(ws: Workspace, spawned: list[subprocess.Popen[bytes]], what: str, kind: str) -> None:
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    spawned.append(bystander)
    # The bare jupyter_server starts in a fraction of Lab's time; what is under test is the files around it.
    root = ws.project("alpha", app="server")
    junk = plant(ws, root, what, kind, bystander.pid)

    status = ws.cli("status", "--json", timeout=QUICK)
    check_clean(status, 0)
    row = json.loads(status.stdout)["projects"][0]
    # A pid file that names no server of ours is stale, with the reason; anything else is just stopped.
    assert row["state"] == ("stale" if what in ("pid", "run-pid") or kind == "wrong-types" and what == "meta"
                            else "stopped"), row
    if row["state"] == "stale":
        assert row["note"], row

    stop = ws.cli("stop", "alpha", timeout=QUICK)
    check_clean(stop, 0)
    if what in ("pid", "run-pid"):
        assert not os.path.lexists(junk), "the stale pid file is repaired by stop"
        assert "stale pid file" in stop.stdout, stop.stdout
    after = ws.json("status")["projects"][0]
    assert after["state"] == "stopped", after

    start = ws.cli("start", "alpha", "--no-open", "--json", timeout=START)
    check_clean(start, 0)
    started = [r for r in json.loads(start.stdout)["results"] if r["action"] == "start"]
    assert started and started[0]["status"] == "changed", start.stdout
    assert started[0]["facts"]["pid"] != bystander.pid
    check_clean(ws.cli("stop", "alpha", timeout=QUICK), 0)

    assert alive(bystander.pid), "a process named only by a bad file was touched"


def test_remote_style_host_entry_is_as_safe(tmp_path: Path) -> None:
    """The host layer's JSON entry (what remotes run) reads the same junk without blocking."""
    root = tmp_path / "p"
    make(root / ".logs" / "jupyter.pid", "fifo")
    make(root / ".jupyter_runtime" / "jpserver-1.json", "fifo")
    request = {"version": 1, "op": "status", "host": "box", "options": {},
               "projects": [{"name": "p", "path": str(root)}]}
    proc = subprocess.run([sys.executable, "-m", "lifecycle.host"], input=json.dumps(request), text=True,
                          capture_output=True, timeout=QUICK)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["projects"][0]
    assert row["state"] == "stale" and "FIFO" in row["note"]
