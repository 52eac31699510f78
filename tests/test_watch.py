"""status --watch: redrawn in place under a real pseudo-terminal, one table per interval without one, Ctrl-C is 130."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading

from test_cull import Lab

from conftest import SLOW, Workspace, wait_for

TITLE = "jlc status --watch 0.5s"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_watch_on_a_terminal_redraws_in_place_and_ctrl_c_exits_130(ws: Workspace) -> None:
    ws.project("p1", ws.ports[:5:4])
    ws.project("p2", ws.ports[5::4])  # ranges apart: no overlap warning on the screen
    lab = Lab(ws, "p1")
    kid = lab.new_kernel()
    # Work in a kernel: CPU % counts the server plus its kernels.
    lab.run(kid, "import time\nt = time.time()\nwhile time.time() - t < 20:\n    pass\n")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 90, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "lifecycle", "status", "--watch", "0.5"], cwd=ws.root,
                            env={**os.environ, "JLC_INVENTORY": str(ws.inventory), "TERM": "xterm"},
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        def busy_frame() -> bool:
            frames = seen.decode("utf-8", "replace").split("\x1b[H")[1:]
            rows = [ANSI.sub("", ln) for f in frames for ln in f.splitlines() if ln.startswith("p1 ")]
            return len(frames) >= 3 and any(float(r.split()[4]) > 20 for r in rows if len(r.split()) > 4
                                           and re.fullmatch(r"[0-9.]+", r.split()[4]))

        wait_for(busy_frame, SLOW, "three frames, one showing the busy kernel's CPU")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert proc.wait(timeout=SLOW) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert text.startswith("\x1b[?1049h\x1b[?25l")  # the alternate screen: the user's scrollback is kept
    assert text.count(TITLE) >= 3 and "\x1b[2J" not in text  # redrawn in place, never cleared (no flicker)
    assert "\x1b[?25h\x1b[?1049l" in text  # the terminal given back
    for line in ANSI.sub("", text).splitlines():
        assert len(line.rstrip("\r")) <= 90, line  # fits the terminal's width
    header = next(ANSI.sub("", ln) for ln in text.splitlines() if "PROJECT" in ln)
    assert header.split()[:9] == ["PROJECT", "HOST", "STATE", "PID", "CPU%", "MEMORY", "KERNELS", "RESTARTS",
                                  "UPTIME"], repr(text[-3000:])
    assert "Traceback" not in text
    assert ws.cli("stop", "p1").returncode == 0


def test_watch_without_a_terminal_prints_one_table_per_interval(ws: Workspace) -> None:
    ws.project("p1")
    proc = ws.spawn("status", "--watch", "0.5")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: sum(TITLE in ln for ln in lines) >= 2, SLOW, "two tables")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=SLOW) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    assert not any("\x1b" in ln for ln in lines)
    tables = "".join(lines).split(TITLE)[1:]
    assert all("p1 " in t and "stopped" in t for t in tables[:2])
    assert proc.stderr is not None and proc.stderr.read() == ""
