"""How long an up-to-date `bootstrap` takes, against what a naive idempotent script runs instead.

Baseline, side by side: `pip install jupyterlab ipykernel` plus `ipykernel install --sys-prefix` in the
same venv (both no-ops on an up-to-date venv, but they still run). Usage: python bench/bootstrap_noop.py [RUNS]
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from _common import jlc, report, shared_venv, timed, workspace, write_inventory


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = workspace()
    try:
        venv = shared_venv(root)
        write_inventory(root, venv, ["bench"])
        jlc("bootstrap", "bench")  # first run: does the work
        py = str(venv / "bin" / "python")

        def naive() -> None:
            subprocess.run([py, "-m", "pip", "install", "-q", "jupyterlab", "ipykernel"], check=True,
                           capture_output=True)
            subprocess.run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", "bench"], check=True,
                           capture_output=True)

        ours = report("jlc bootstrap (up to date)", timed(lambda: jlc("bootstrap", "bench"), runs))
        floor = report("python -c pass (interpreter start, the floor)",
                       timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), runs))
        base = report("baseline: pip install + ipykernel install (no-ops)", timed(naive, runs))
        print(f"\nbaseline / jlc bootstrap = {base / ours:.1f}x   jlc bootstrap / interpreter start = "
              f"{ours / floor:.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
