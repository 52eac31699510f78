"""Logs that do not grow forever: rotation while a writer appends loses no line; logs -n reads across files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from test_cull import Lab

from lifecycle.host import logrotate

from conftest import Workspace, wait_for

N = 60_000
# Two threads appending numbered lines as fast as they can, the way a server's log is written (O_APPEND).
WRITER = r"""
import os, sys, threading
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
def run(tag):
    for i in range(int(sys.argv[2])):
        os.write(fd, f"{tag}{i:07d} {'x' * 40}\n".encode())
threads = [threading.Thread(target=run, args=(t,)) for t in "ab"]
for t in threads: t.start()
for t in threads: t.join()
os.write(fd, b"done\n")
"""


def naive_rotate(log: Path) -> bool:
    """Plain copy-and-truncate, as logrotate's copytruncate does it: the control."""
    if log.stat().st_size <= 64 * 1024:
        return False
    data = log.read_bytes()
    os.truncate(log, 0)
    logrotate.rotated(log, 1).write_bytes(data)
    return True


def rotate_while_writing(tmp_path: Path, frozen: bool) -> tuple[list[str], int]:
    log = tmp_path / ("frozen.log" if frozen else "naive.log")
    log.touch()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(N)])
    chunks: list[bytes] = []
    rotations = 0
    try:
        handle = psutil.Process(writer.pid)
        while writer.poll() is None:
            done = (logrotate.rotate_live(log, 1, [handle], 64 * 1024)[0] if frozen else naive_rotate(log))
            if done:
                rotations += 1
                chunks.append(logrotate.rotated(log, 1).read_bytes())
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(timeout=30)
    chunks.append(log.read_bytes())
    return b"".join(chunks).decode().splitlines(), rotations


def test_rotation_under_a_running_writer_loses_no_line(tmp_path: Path) -> None:
    lines, rotations = rotate_while_writing(tmp_path, frozen=True)
    assert rotations >= 5, rotations
    for tag in "ab":
        numbers = [int(ln[1:8]) for ln in lines if ln.startswith(tag)]
        assert numbers == list(range(N)), f"{tag}: {N - len(numbers)} lines lost or {len(numbers) - N} extra"
    assert lines[-1] == "done"
    assert all(len(ln) == 49 for ln in lines[:-1])  # no line torn apart either


def test_plain_copy_and_truncate_does_lose_lines(tmp_path: Path) -> None:
    """The control: the same writer and check catch what copytruncate without the freeze loses."""
    lines, rotations = rotate_while_writing(tmp_path, frozen=False)
    assert rotations >= 5, rotations
    kept = sum(1 for ln in lines if ln[:1] in ("a", "b"))
    assert kept < 2 * N, "copytruncate lost nothing this time: the writer was too slow to show it"


def test_tail_reads_across_rotated_files_and_joins_a_cut_line(tmp_path: Path) -> None:
    log = tmp_path / "j.log"
    logrotate.rotated(log, 2).write_text("one\ntwo\n")
    logrotate.rotated(log, 1).write_text("three\nfou")  # the rotation cut this line
    log.write_text("r\nfive\n")
    assert logrotate.tail(log, 2, 3) == ["four", "five"]
    assert logrotate.tail(log, 4, 3) == ["two", "three", "four", "five"]
    assert logrotate.tail(log, 50, 3) == ["one", "two", "three", "four", "five"]
    assert logrotate.tail(log, 50, 1) == ["three", "four", "five"]  # .2 is beyond log_keep


def test_begin_new_log_keeps_log_keep_files(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    for run in range(5):
        logrotate.begin_new_log(log, 3)
        log.write_text(f"run {run}\n")
    assert [logrotate.rotated(log, i).read_text() for i in (1, 2, 3)] == ["run 3\n", "run 2\n", "run 1\n"]
    assert not logrotate.rotated(log, 4).exists()


def test_supervisor_rotates_a_live_server_log_losing_nothing(ws: Workspace) -> None:
    ws.project("p1", log_max_size="16K", log_keep=40)
    lab = Lab(ws, "p1")
    log = lab.path / ".logs" / "jupyterlab.log"
    kid = lab.new_kernel()
    # A writer inside the server's tree (as kernels are): numbered lines into the server's own log.
    lab.run(kid, f"import os, time\nfd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND)\n"
                 "for i in range(4000):\n    os.write(fd, f'line-{i:05d}\\n'.encode())\n    time.sleep(0.0005)\n"
                 "os.write(fd, b'line-END\\n')\n")
    rotations = 0

    def written() -> bool:
        nonlocal rotations
        out = ws.cli("supervise", "--once")
        assert out.returncode == 0, out.stderr + out.stdout
        rotations += out.stdout.count("p1: rotate: jupyterlab.log over 16K")
        return any("line-END" in p.read_text() for p in log.parent.glob("jupyterlab.log*"))

    wait_for(written, 120, "the kernel to write its lines", interval=0.0)
    assert rotations >= 2, rotations
    files = [logrotate.rotated(log, i) for i in range(40, 0, -1)] + [log]
    text = "".join(p.read_text() for p in files if p.exists())
    numbered = [ln for ln in text.splitlines() if ln.startswith("line-")]
    assert numbered == [f"line-{i:05d}" for i in range(4000)] + ["line-END"]
    assert all(oct(p.stat().st_mode & 0o777) == oct(0o600) for p in files if p.exists())
    # logs -n reads on into the rotated files when the current one holds fewer lines.
    current = len(log.read_text().splitlines())
    want = current + 25
    shown = ws.cli("logs", "p1", "-n", str(want), "--show-token")
    assert shown.stdout.splitlines() == text.splitlines()[-want:]
    assert ws.cli("stop", "p1").returncode == 0


def test_a_follower_loses_nothing_across_either_rotation(tmp_path: Path) -> None:
    """`logs -f`'s reader, stepped by hand around each kind of rotation: every byte once, in order."""
    from lifecycle.host.logs import _Followed

    log = tmp_path / "jupyterlab.log"
    log.write_text("a1\n")
    reader = _Followed(log)
    with open(log, "a") as fh:
        fh.write("a2\n")
    assert reader.step() == "a2\n"
    # A restart: the old log is renamed to .1 (after a last line the reader has not seen), a new one begins.
    with open(log, "a") as fh:
        fh.write("a3 unseen before the rename\n")
    logrotate.begin_new_log(log, keep=3)
    log.write_text("b1\n")
    assert reader.step() == "a3 unseen before the rename\nb1\n"
    # The supervisor: copy-and-truncate, and the new log grows past the old offset before the next look.
    with open(log, "a") as fh:
        fh.write("b2 unseen before the truncate\n")
    assert logrotate.rotate_live(log, 3, [], max_size=1)[0]
    with open(log, "a") as fh:
        fh.write("c1 " + "x" * 200 + "\n")
    assert reader.step() == "b2 unseen before the truncate\n" + "c1 " + "x" * 200 + "\n"
    # Seen mid-rotation (truncated, the copy not yet in .1): nothing is read until the copy lands.
    with open(log, "a") as fh:
        fh.write("c2\n")
    busy = logrotate.rotating(log)
    busy.write_bytes(log.read_bytes())
    os.truncate(log, 0)
    assert reader.step() == ""
    logrotate.shift(log, 3)
    os.replace(busy, logrotate.rotated(log, 1))
    with open(log, "a") as fh:
        fh.write("d1\n")
    assert reader.step() == "c2\nd1\n"
    assert reader.step() == ""


def test_a_rotation_between_the_readers_two_looks_is_read_once(tmp_path: Path, monkeypatch: Any) -> None:
    """The restart renames the log to .1 after the reader looked at .1 and before it looks at the log:
    the old file's rest comes from .1 at the next poll, and the new file is read once."""
    from lifecycle.host import logs

    log = tmp_path / "jupyterlab.log"
    log.write_text("a1 first line of the old log\n")
    reader = logs._Followed(log)
    with open(log, "a") as fh:
        fh.write("a2 unseen before the rename\n")
    # The reader's look at .1 happens first (nothing there yet), then the rotation, then its look at the log.
    real = logs._ino_size
    first = logrotate.rotated(log, 1)

    def look_then_rotate(path: Path) -> tuple[int | None, int]:
        seen = real(path)
        if path == first:
            logrotate.begin_new_log(log, keep=3)
            log.write_text("b1\n")
        return seen

    monkeypatch.setattr(logs, "_ino_size", look_then_rotate)
    text = reader.step()
    monkeypatch.setattr(logs, "_ino_size", real)
    text += reader.step()
    assert text == "a2 unseen before the rename\nb1\n"
    assert reader.step() == ""


def test_a_truncation_by_hand_is_followed_from_the_start(tmp_path: Path) -> None:
    """No rotation shows in .1: after a few polls the reader starts the truncated log over."""
    from lifecycle.host import logs

    log = tmp_path / "jupyterlab.log"
    log.write_text("a1 a long first line\n")
    reader = logs._Followed(log)
    os.truncate(log, 0)
    log.write_text("b1\n")
    text = "".join(reader.step() for _ in range(logs._BUSY_POLLS + 1))
    assert text == "b1\n"
