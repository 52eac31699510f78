"""What a supervisor that runs all day costs: CPU per hour and resident memory of `jlc supervise`.

20 projects, 10 of them running, every project with a restart policy and cull timeouts (so each
round does everything it does in steady state: the cheap liveness look for all 20, the two API
reads of the cull look for the 10 running, a stat of each log), at the default interval.

Baseline, side by side: a `jlc status` of the same inventory every interval (what a cron job or a
shell loop that polls would cost), measured as the CPU of one status run times the runs per hour.

Usage: python bench/supervise_cost.py [MINUTES] [INTERVAL]   (default 5 minutes, the default interval)
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time

import psutil
from _common import jlc, shared_venv, workspace, write_inventory

from lifecycle.tasks.supervise import DEFAULT_INTERVAL

POLICY = '[defaults]\nrestart = "on-failure"\nidle_timeout = "1d"\nkernel_idle_timeout = "1d"\n\n'


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_INTERVAL
    root = workspace()
    names = [f"p{i:02d}" for i in range(20)]
    sup: subprocess.Popen[bytes] | None = None
    try:
        venv = shared_venv(root)
        inv = write_inventory(root, venv, names)
        inv.write_text(POLICY + inv.read_text())
        jlc("start", ",".join(names[:10]))
        with open(root / "supervise.out", "wb") as out:
            sup = subprocess.Popen([sys.executable, "-m", "lifecycle", "supervise", "--interval", str(interval)],
                                   stdout=out, stderr=subprocess.DEVNULL)
        proc = psutil.Process(sup.pid)
        time.sleep(max(5.0, interval))  # past start-up (imports) and the first round
        t0 = time.monotonic()
        c0 = sum(proc.cpu_times()[:2])
        peak = 0
        while time.monotonic() - t0 < minutes * 60:
            peak = max(peak, proc.memory_info().rss)
            time.sleep(1.0)
        wall = time.monotonic() - t0
        cpu = sum(proc.cpu_times()[:2]) - c0
        rss = proc.memory_info().rss
        per_hour = cpu / wall * 3600
        print(f"jlc supervise, 20 projects (10 running), every {interval:g}s, measured {wall / 60:.1f} min")
        print(f"  CPU            {cpu:7.2f} s   = {per_hour:6.1f} s per hour = {100 * cpu / wall:5.2f} % of one core")
        print(f"  memory (RSS)   {rss / 2**20:7.1f} MiB now, {peak / 2**20:.1f} MiB at most")
        # Baseline: one status of the same fleet, as often.
        before = _children_cpu()
        runs = 5
        t1 = time.monotonic()
        for _ in range(runs):
            jlc("status")
        status_cpu = (_children_cpu() - before) / runs
        status_wall = (time.monotonic() - t1) / runs
        polls = 3600 / interval
        print(f"baseline: jlc status every {interval:g}s: {status_cpu:.2f} s CPU ({status_wall:.2f} s wall) per run,"
              f" {status_cpu * polls:.0f} s per hour = {100 * status_cpu / interval:.2f} % of one core"
              f"   -> supervise costs {per_hour / (status_cpu * polls):.2f}x of it")
        actions = (root / "supervise.out").read_text().splitlines()
        print(f"  actions taken  {len(actions)} (steady state: none expected)")
    finally:
        if sup is not None and sup.poll() is None:
            sup.terminate()
            sup.wait(timeout=60)
        subprocess.run([sys.executable, "-m", "lifecycle", "stop-all", "--force"], capture_output=True,
                       env=os.environ)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
