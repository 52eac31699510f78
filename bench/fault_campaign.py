"""The fault campaign as counts: wrong kills, double servers, processes left after a crash.

Runs the same scenarios as tests/test_fault_*.py, but counts instead of
asserting, so a checkout can be compared with another:

    python bench/fault_campaign.py                      # this checkout
    python bench/fault_campaign.py --code /path/to/old  # another checkout's lifecycle package

Machine-wide effects are limited to the throwaway workspace's own projects;
still, run it in a private process namespace (../shared/tools/sandbox) when
other Jupyter servers of yours are running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import shared_venv, workspace, write_inventory  # noqa: E402

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def jlc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True, timeout=300)


def launch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lifecycle", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def servers_in(path: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and f"--ServerApp.root_dir={path}" in (p.info["cmdline"] or [])]


def pid_of(root: Path, name: str) -> int:
    return int((root / name / ".logs" / "jupyter.pid").read_text())


def wait(pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def wrong_kills(root: Path, trials: int) -> tuple[int, int]:
    """Plant misleading evidence in p1/p3copy pointing at p10's/p3's server; count kills of the victim."""
    kills = runs = 0
    for _ in range(trials):
        jlc("start", "p10", "--no-open")
        victim = pid_of(root, "p10")
        meta = (root / "p10" / ".logs" / "jupyter.meta.json").read_text()
        for plant_meta in (False, True):
            logs = root / "p1" / ".logs"
            logs.mkdir(parents=True, exist_ok=True)
            (logs / "jupyter.pid").write_text(f"{victim}\n")
            if plant_meta:
                (logs / "jupyter.meta.json").write_text(meta)
            jlc("stop", "p1")
            runs += 1
            if not alive(victim):
                kills += 1
                jlc("start", "p10", "--no-open")
                victim = pid_of(root, "p10")
        # A copied runtime file in p2, then start p2 (adopts?) and stop p2.
        rt = root / "p2" / ".jupyter_runtime"
        rt.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "p10" / ".jupyter_runtime" / f"jpserver-{victim}.json", rt)
        jlc("start", "p2", "--no-open")
        jlc("stop", "p2")
        runs += 1
        if not alive(victim):
            kills += 1
        for f in rt.glob("jpserver-*"):
            f.unlink()
        jlc("stop", "p10")
        jlc("stop", "p1")
    return kills, runs


def double_servers(root: Path, rounds: int) -> tuple[int, int]:
    extra = 0
    for _ in range(rounds):
        procs = [launch("start", "p1", "--no-open") for _ in range(5)]
        for p in procs:
            p.communicate(timeout=300)
        extra += max(0, len(servers_in(root / "p1")) - 1)
        for pid in servers_in(root / "p1"):
            psutil.Process(pid).terminate()
        wait(lambda: not servers_in(root / "p1"), 30)
        jlc("stop", "p1")
    return extra, rounds


def left_after_crash(root: Path, rounds: int) -> tuple[int, int]:
    """SIGKILL a server with a busy kernel that started a child; stop; count processes left."""
    from jupyter_client.blocking.client import BlockingKernelClient

    left = 0
    for _ in range(rounds):
        jlc("start", "p1", "--no-open")
        pid = pid_of(root, "p1")
        info = json.loads((root / "p1" / ".jupyter_runtime" / f"jpserver-{pid}.json").read_text())
        req = urllib.request.Request(f"{info['url'].rstrip('/')}/api/kernels", data=b'{"name": "python3"}',
                                     method="POST", headers={"Authorization": f"token {info['token']}"})
        kernel_id = json.loads(_OPENER.open(req, timeout=30).read())["id"]
        conn = root / "p1" / ".jupyter_runtime" / f"kernel-{kernel_id}.json"
        wait(conn.exists, 30)
        client = BlockingKernelClient(connection_file=str(conn))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        marker = root / "child.pid"
        client.execute(f"import subprocess,time\np=subprocess.Popen(['sleep','600'])\n"
                       f"open({str(marker)!r},'w').write(str(p.pid))\ntime.sleep(600)\n")
        wait(lambda m=marker: m.exists() and m.read_text(), 30)
        client.stop_channels()
        under = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        os.kill(pid, signal.SIGKILL)
        wait(lambda p=pid: not alive(p), 10)
        jlc("stop", "p1")
        survivors = [p for p in under if alive(p)]
        left += len(survivors)
        for p in survivors:
            psutil.Process(p).kill()
        marker.unlink(missing_ok=True)
    return left, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", help="a checkout whose lifecycle package to run (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.code:
        os.environ["PYTHONPATH"] = os.path.abspath(args.code)
    root = workspace()
    # `python -m` puts the cwd first on sys.path: run from the workspace so --code decides.
    os.chdir(root)
    venv = shared_venv(root)
    write_inventory(root, venv, ["p1", "p10", "p2", "p3"], first_port=29600)
    kills, runs = wrong_kills(root, args.rounds)
    print(f"wrong kills                 {kills} in {runs} plantings")
    extra, rounds = double_servers(root, args.rounds)
    print(f"extra servers               {extra} over {rounds} rounds of 5 concurrent starts")
    left, rounds = left_after_crash(root, args.rounds)
    print(f"processes left after stop   {left} over {rounds} server crashes (busy kernel + its child)")


if __name__ == "__main__":
    main()
