"""Shared helpers for the benchmarks: a throwaway workspace and a timer."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="jlc-bench-"))
    os.environ["HOME"] = str(root / "home")
    os.environ["JLC_STATE_DIR"] = str(root / "state")
    (root / "home").mkdir()
    return root


def shared_venv(root: Path) -> Path:
    """A venv that imports this interpreter's packages, so nothing is downloaded."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (purelib / "_outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def write_inventory(root: Path, venv: Path, names: list[str], first_port: int = 29500) -> Path:
    lines = []
    for i, name in enumerate(names):
        path = root / name
        path.mkdir()
        lo = first_port + i * 5
        lines += [f"[projects.{name}]", f'path = "{path}"', f'venv = "{venv}"', f'python = "{sys.executable}"',
                  f"port_range = [{lo}, {lo + 4}]", ""]
    inv = root / "inventory.toml"
    inv.write_text("\n".join(lines))
    os.environ["JLC_INVENTORY"] = str(inv)
    return inv


def jlc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True, check=True)


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def report(label: str, samples: list[float]) -> float:
    med = statistics.median(samples)
    print(f"{label:<52} median {med * 1000:8.0f} ms   min {min(samples) * 1000:8.0f} ms   n={len(samples)}")
    return med
