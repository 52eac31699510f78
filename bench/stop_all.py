"""Wall time of stop-all for N servers against one: parallel stops should cost about the slowest one.

Baseline, side by side: stopping the same N servers one `stop` after another (the sum).
Usage: python bench/stop_all.py [N]
"""

from __future__ import annotations

import shutil
import sys

from _common import jlc, report, shared_venv, timed, workspace, write_inventory


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    root = workspace()
    names = [f"srv{i}" for i in range(n)]
    try:
        venv = shared_venv(root)
        write_inventory(root, venv, names)

        def start(selection: str) -> None:
            jlc("start", selection)

        one = []
        many = []
        sequential = []
        for _ in range(3):
            start(names[0])
            one += timed(lambda: jlc("stop-all", "--only", names[0]), 1)
            start("srv*")
            many += timed(lambda: jlc("stop-all"), 1)
            start("srv*")
            sequential += timed(lambda: [jlc("stop", name) for name in names], 1)
        t1 = report("stop-all, 1 server", one)
        tn = report(f"stop-all, {n} servers", many)
        ts = report(f"baseline: stop one after another, {n} servers", sequential)
        print(f"\nstop-all {n} / stop-all 1 = {tn / t1:.2f}x   sequential / stop-all = {ts / tn:.2f}x")
    finally:
        jlc("stop-all", "--force")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
