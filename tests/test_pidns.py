"""The suite's private process namespace (tests/pidns.py): exit codes, output, Ctrl-C, skips.

Each test runs a small pytest session of its own, the way a user runs the suite, with the suite's
conftest hooks and without the marker that says "already inside".
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import threading
import uuid
from pathlib import Path

import psutil
import pytest

import pidns
from conftest import SLOW, alive, wait_for

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import importlib.util, sys
sys.path.insert(0, {str(TESTS)!r})
spec = importlib.util.spec_from_file_location("jlc_suite_conftest", {str(TESTS / "conftest.py")!r})
suite = sys.modules["jlc_suite_conftest"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
globals().update({{k: v for k, v in vars(suite).items() if k.startswith("pytest_")}})
"""

INSIDE = """
import os, subprocess, sys, threading
import pytest
import pidns

def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\\0", b" ").decode()

def test_inside():
    assert pidns.private() and os.getpid() == 2
    print("PID1:", cmdline(1))
    seen = [cmdline(p) for p in os.listdir("/proc") if p.isdigit()]
    print("BYSTANDER SEEN:", any(os.environ["MARK"] in c for c in seen))

def test_fails():
    assert os.environ.get("FAIL") != "1"

@pytest.mark.machine_wide
def test_machine_wide():
    assert pidns.private()

def test_hangs(tmp_path):
    # A process in its own session that no fixture will clean up, then wait to be interrupted.
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", os.environ["MARK"]],
                     start_new_session=True)
    open(os.environ["READY"], "w").close()
    threading.Event().wait()
"""


@pytest.fixture
def nested(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_nested.py").write_text(INSIDE)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (pidns.ENV, pidns.REQUIRE, pidns.OPT_OUT)}
    return {**env, "MARK": "unused", "READY": "/nonexistent", **extra}


def _pytest(where: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=where,
                          capture_output=True, text=True, env=_env(**env), timeout=SLOW)


def _need_unshare() -> None:
    why = pidns.unshare_command(honour_opt_out=False)
    if isinstance(why, str):
        if os.environ.get(pidns.REQUIRE) == "1":
            pytest.fail(why)
        pytest.skip(why)


def test_the_run_goes_into_a_namespace_and_its_exit_code_comes_back(
        nested: Path, spawned: list[subprocess.Popen[bytes]]) -> None:
    _need_unshare()
    mark = f"jlc-bystander-{uuid.uuid4()}"
    spawned.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", mark],
                                    stdin=subprocess.PIPE, start_new_session=True))
    ok = _pytest(nested, "-s", "-k", "inside or machine_wide", MARK=mark)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "process namespace: private" in ok.stdout and "2 passed" in ok.stdout
    assert f"PID1: {sys.executable} {pidns.SCRIPT} init -- " in ok.stdout
    assert "BYSTANDER SEEN: False" in ok.stdout  # the rest of the machine is out of sight
    failed = _pytest(nested, "-k", "fails", FAIL="1")
    assert failed.returncode == 1 and "1 failed" in failed.stdout, failed.stdout
    none = _pytest(nested, "-k", "no_such_test")
    assert none.returncode == 5 and "deselected" in none.stdout, none.stdout


def test_without_a_namespace_machine_wide_tests_skip_or_fail_in_ci(nested: Path) -> None:
    out = _pytest(nested, "-rs", "-k", "inside or machine_wide", **{pidns.OPT_OUT: "0"})
    assert out.returncode == 1, out.stdout  # test_inside asserts it is private: it fails here
    assert "process namespace: the machine's (disabled by JLC_TEST_NAMESPACE=0)" in out.stdout
    assert "machine-wide test outside a private process namespace: disabled by JLC_TEST_NAMESPACE=0" in out.stdout
    required = _pytest(nested, "-k", "machine_wide", **{pidns.OPT_OUT: "0", pidns.REQUIRE: "1"})
    assert required.returncode == 1 and "1 error" in required.stdout, required.stdout


def _run_until_ready(nested: Path, tty: bool) -> tuple[subprocess.Popen[bytes], list[bytes], int | None, str]:
    """Start the nested run of test_hangs (on a pseudo-terminal if ``tty``) and wait until it hangs."""
    mark, ready = f"jlc-pidns-{uuid.uuid4()}", nested / "ready"
    master: int | None = None
    if tty:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "hangs"],
                                cwd=nested, env=_env(MARK=mark, READY=str(ready)), stdin=slave, stdout=slave,
                                stderr=slave, start_new_session=True,
                                # the pty becomes the session's terminal, as in a shell
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
    else:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "hangs"],
                                cwd=nested, env=_env(MARK=mark, READY=str(ready)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    out: list[bytes] = []

    def read() -> None:
        fd = master if master is not None else proc.stdout.fileno()  # type: ignore[union-attr]
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the pty's other side is closed
                return
            if not chunk:
                return
            out.append(chunk)

    threading.Thread(target=read, daemon=True).start()
    wait_for(lambda: ready.exists() or proc.poll() is not None, SLOW, "the nested test to start hanging")
    assert proc.poll() is None, b"".join(out).decode()
    return proc, out, master, mark


def _marked(mark: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if mark in (p.info["cmdline"] or ())]


@pytest.mark.parametrize("how", ["ctrl-c on the terminal", "SIGINT to the pytest process", "SIGTERM"])
def test_interrupting_the_run_stops_pytest_and_everything_it_left(nested: Path, how: str) -> None:
    _need_unshare()
    proc, out, master, mark = _run_until_ready(nested, tty=how.startswith("ctrl-c"))
    try:
        assert _marked(mark) and all(alive(pid) for pid in _marked(mark))
        if master is not None:
            os.write(master, b"\x03")  # the terminal turns this into SIGINT for the foreground job
        else:
            proc.send_signal(signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM)
        code = proc.wait(timeout=SLOW)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if master is not None:
            os.close(master)
    text = b"".join(out).decode(errors="replace")
    if how == "SIGTERM":
        assert code == 128 + signal.SIGTERM, text
    else:
        assert code == 2 and "KeyboardInterrupt" in text, text
    # The process the test left behind in its own session died with the namespace.
    wait_for(lambda: not _marked(mark), SLOW, "the leftover process to go with the namespace")
