"""Throughput of `jlc open`'s tunnel against OpenSSH's `ssh -L` and against no tunnel at all, in one run.

A remote project on the loopback sshd of the tests (box1) runs a real JupyterLab; a 50 MB file is
downloaded through `/files` directly from the server's port, through `ssh -L`, and through `jlc open`,
alternating, RUNS times each. Then many small requests over many connections at once (what a Lab does
when it loads). Prints medians and ratios. Needs sshd and ssh (the tests' loopback lab).

Usage: python bench/tunnel.py [RUNS] [MB]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import jlc, shared_venv, workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sshlab import ssh_forward, start_lab, stop_lab, timed_download  # noqa: E402

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def many_requests(port: int, token: str, n: int = 240, connections: int = 24) -> float:
    """Seconds for ``n`` /api/status requests over ``connections`` concurrent connections."""
    def one(_: int) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"})
        with OPENER.open(req, timeout=60) as resp:
            resp.read()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    root = workspace()
    lab = start_lab(root / "ssh")
    tunnel = None
    try:
        venv = shared_venv(root)
        project = root / "r1"
        project.mkdir()
        (root / "inventory.toml").write_text(lab.hosts_toml("box1") + "\n" + "\n".join([
            "[projects.r1]", f'path = "{project}"', 'host = "box1"', f'venv = "{venv}"',
            f'python = "{sys.executable}"', "port_range = [29600, 29610]", ""]))
        os.environ["JLC_INVENTORY"] = str(root / "inventory.toml")
        (project / "big.bin").write_bytes(os.urandom(size * 2**20))
        jlc("start", "r1")
        row = json.loads(jlc("status", "--json", "--show-token").stdout)["projects"][0]
        server_port, token = int(row["port"]), row["token_url"].split("?token=")[1]
        tunnel = subprocess.Popen([sys.executable, "-m", "lifecycle", "open", "r1", "--no-browser"], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert tunnel.stdout is not None
        url = tunnel.stdout.readline().strip()
        jlc_port = int(url.split("://127.0.0.1:")[1].split("/")[0])
        with ssh_forward(lab, "box1", server_port) as ssh_port:
            ways = {"direct (no tunnel)": server_port, "ssh -L": ssh_port, "jlc open": jlc_port}
            timed_download(jlc_port, "big.bin", token)  # warm caches once
            samples: dict[str, list[float]] = {k: [] for k in ways}
            burst: dict[str, list[float]] = {k: [] for k in ways}
            for _ in range(runs):
                for label, port in ways.items():  # alternate, so load from others hits all alike
                    samples[label].append(timed_download(port, "big.bin", token))
                    burst[label].append(many_requests(port, token))
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"{size} MB through /files, median of {runs}:")
        for label, seconds in med.items():
            print(f"  {label:<20} {seconds:7.3f} s   {size / seconds:8.1f} MB/s")
        print(f"  jlc open / ssh -L throughput = {med['ssh -L'] / med['jlc open']:.2f}x   "
              f"ssh -L / direct = {med['direct (no tunnel)'] / med['ssh -L']:.2f}x")
        bmed = {k: statistics.median(v) for k, v in burst.items()}
        print("240 /api/status requests over 24 connections at once, median:")
        for label, seconds in bmed.items():
            print(f"  {label:<20} {seconds:7.3f} s")
        print(f"  jlc open / ssh -L rate = {bmed['ssh -L'] / bmed['jlc open']:.2f}x")
    finally:
        if tunnel is not None:
            tunnel.send_signal(signal.SIGINT)
            tunnel.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "lifecycle", "stop", "r1"], capture_output=True)
        stop_lab(lab)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
