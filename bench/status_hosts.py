"""Wall time of `status` over 1 remote host and over 2, against a local-only status and against asking
the 2 hosts one after another (what `fab -H a,b` does). Needs sshd (the tests' loopback lab).

Usage: python bench/status_hosts.py [RUNS]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from _common import jlc, report, shared_venv, timed, workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sshlab import start_lab, stop_lab  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = workspace()
    lab = start_lab(root / "ssh")
    try:
        venv = shared_venv(root)
        lines = [lab.hosts_toml("box1", "box2")]
        for i, host in enumerate(["local", "local", "box1", "box1", "box2", "box2"]):
            path = root / f"p{i}"
            path.mkdir()
            lines += [f"[projects.p{i}]", f'path = "{path}"', f'host = "{host}"', f'venv = "{venv}"', ""]
        (root / "inventory.toml").write_text("\n".join(lines))
        os.environ["JLC_INVENTORY"] = str(root / "inventory.toml")
        jlc("status")  # first contact provisions the remotes; not what we measure
        local = report("status, local only (baseline)", timed(lambda: jlc("status", "--host", "local"), runs))
        one = report("status, 1 remote host", timed(lambda: jlc("status", "--host", "box1"), runs))
        two = report("status, 2 remote hosts", timed(lambda: jlc("status", "--host", "box1,box2"), runs))
        seq = report("baseline: 2 remote hosts one after another",
                     timed(lambda: [jlc("status", "--host", h) for h in ("box1", "box2")], runs))
        report("status, local + 2 remote hosts", timed(lambda: jlc("status"), runs))
        print(f"\n2 hosts / 1 host = {two / one:.2f}x   sequential / parallel = {seq / two:.2f}x   "
              f"1 remote host / local = {one / local:.2f}x")
    finally:
        stop_lab(lab)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
