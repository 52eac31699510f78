"""Ctrl-C at any moment of a run, the first milliseconds included: one line, exit 130, no traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lifecycle

from conftest import Workspace

PACKAGE = str(Path(lifecycle.__file__).parent) + os.sep

# Moments after the spawn, in seconds: Python's own start (a few ms), the imports of invoke and
# the tasks (tens of ms), loading the inventory and the work.  Dense early, where tracebacks were.
MOMENTS = [0.0, 0.005, 0.01, 0.02, 0.03, 0.045, 0.06, 0.08, 0.1, 0.13, 0.17, 0.22, 0.3, 0.4, 0.6]


def outcome(proc: subprocess.Popen[str], delay: float) -> tuple[str, str]:
    # The sleep is the experiment's variable (when the signal lands), not a wait for a condition.
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)  # the deadline: an interrupted run must end
    frames = re.findall(r'File "([^"]+)"', err)
    if proc.returncode == 130:
        assert err == "interrupted\n", err
        return "interrupted", err
    if proc.returncode == 0:
        assert not frames, err
        return "finished first", err
    # Before any code of ours ran, Python handles the signal itself: it dies of it, its own start-up
    # (site, .pth files) fails with "Fatal Python error", or the import of our package by runpy or
    # the console script is cut short.  Never a frame of our package or of a library it imports.
    assert proc.returncode in (-signal.SIGINT, 1), (proc.returncode, err)
    if "Fatal Python error: init_" in err:
        return "python start-up", err
    ours = [f for f in frames if f.startswith(PACKAGE) or ("site-packages" in f and "__editable__" not in f)]
    assert not ours, f"traceback through our code at {delay * 1000:.0f} ms:\n{err}"
    return "python start-up", err


def command(kind: str) -> list[str]:
    if kind == "module":
        return [sys.executable, "-m", "lifecycle", "status"]
    script = Path(sys.executable).parent / "jlc"
    if not script.exists() or "lifecycle.entry" not in script.read_text(errors="replace"):
        pytest.skip("the jlc script is missing or predates lifecycle.entry: reinstall with pip install -e .")
    return [str(script), "status"]


@pytest.mark.parametrize("kind", ["module", "script"])
def test_ctrl_c_at_every_early_moment(ws: Workspace, kind: str) -> None:
    ws.project("alpha")
    seen: dict[str, int] = {}
    for delay in MOMENTS:
        proc = subprocess.Popen(command(kind), cwd=ws.root, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, "JLC_INVENTORY": str(ws.inventory)})
        what, _ = outcome(proc, delay)
        seen[what] = seen.get(what, 0) + 1
    # Unless the machine is so slow that every signal landed in Python's start-up or so fast that
    # every run finished first, some landed in our code: those are the ones under test.
    assert seen.get("interrupted", 0) >= 3, seen
