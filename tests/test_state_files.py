"""State files read safely: whatever sits at a pid, metadata, runtime or claims path, reading it
never blocks, never exhausts memory and never raises; a bad one counts as absent or stale."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifecycle.host import fsutil
from lifecycle.host.fsutil import STATE_FILE_LIMIT, UnreadableFile, read_json, read_small, remove, tail_lines
from lifecycle.host.layout import Layout
from lifecycle.host.ports import PortClaims
from lifecycle.host.procs import port_from_cmdline, take_snapshot
from lifecycle.host.runtime import clean_stale, read_info
from lifecycle.host.tracking import read_meta, read_pid_file


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread and fail (instead of hanging the suite) if it does not return in time."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"still blocked after {seconds}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def make(path: Path, kind: str) -> None:
    """Put the bad thing called ``kind`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling-symlink":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "symlink-loop":
        path.symlink_to(path)
    elif kind == "digits-5000":
        path.write_text("7" * 5000 + "\n")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "huge":
        path.write_bytes(b"1" * (STATE_FILE_LIMIT + 1))
    elif kind == "deep-json":
        path.write_text("[" * 100_00 + "]" * 100_00)
    elif kind == "empty":
        path.write_text("")
    else:
        raise AssertionError(kind)


BAD = ["fifo", "directory", "dev-zero", "symlink-loop", "digits-5000", "binary", "huge", "deep-json", "empty"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero", "symlink-loop", "huge"])
def test_read_small_refuses_what_is_no_small_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "f"
    make(path, kind)
    with pytest.raises(UnreadableFile) as err:
        within(5, lambda: read_small(path))
    expected = {"fifo": "is a FIFO, not a regular file", "directory": "is a directory, not a regular file",
                "dev-zero": "is a character device, not a regular file", "symlink-loop": "cannot be opened",
                "huge": f"more than the {STATE_FILE_LIMIT}"}[kind]
    assert expected in str(err.value)


def test_read_small_missing_and_dangling_are_absent(tmp_path: Path) -> None:
    make(tmp_path / "link", "dangling-symlink")
    assert read_small(tmp_path / "link") is None
    assert read_small(tmp_path / "nothing") is None
    (tmp_path / "afile").write_text("")
    assert read_small(tmp_path / "afile" / "below") is None  # a parent that is a file


@pytest.mark.parametrize("text", ["NaN", "[1e999]", '{"a": Infinity}', "[" * 5000 + "]" * 5000, "\xff"])
def test_read_json_refuses_what_no_tool_writes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(text.encode("latin-1") if text == "\xff" else text.encode())
    with pytest.raises(UnreadableFile):
        read_json(path)


@pytest.mark.parametrize("kind", BAD)
def test_bad_pid_file_has_no_pid(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ".logs" / "jupyter.pid"
    make(path, kind)
    pf = within(5, lambda: read_pid_file(path))
    assert pf is not None and pf.pid is None
    assert len(pf.raw) <= 120 and "\n" not in repr(pf.raw)  # shown with repr: one short line


@pytest.mark.parametrize("text,pid", [("4242\n", 4242), (" 17 ", 17), ("0", None), ("-5", None), ("+5", None),
                                      ("١٢٣", None), ("4194304", None), ("99999999", None), ("12 13", None)])
def test_pid_file_holds_one_plain_pid(tmp_path: Path, text: str, pid: int | None) -> None:
    path = tmp_path / "jupyter.pid"
    path.write_text(text)
    pf = read_pid_file(path)
    assert pf is not None and pf.pid == pid


@pytest.mark.parametrize("kind", BAD)
def test_bad_metadata_is_none(tmp_path: Path, kind: str) -> None:
    layout = Layout(root=tmp_path, venv=tmp_path / ".venv")
    make(layout.meta_file, kind)
    assert within(5, lambda: read_meta(layout)) is None


def test_metadata_keys_of_the_wrong_type_are_dropped(tmp_path: Path) -> None:
    layout = Layout(root=tmp_path, venv=tmp_path / ".venv")
    layout.meta_file.parent.mkdir()
    layout.meta_file.write_text(json.dumps({
        "pid": True, "create_time": "yesterday", "cmdline": "jupyter lab", "port": 70000, "written": -1,
        "root": str(tmp_path), "machine": 7, "adopted": "yes", "custom": {"kept": 1}}))
    assert read_meta(layout) == {"root": str(tmp_path), "custom": {"kept": 1}}
    layout.meta_file.write_text(json.dumps({"pid": 42, "create_time": 1.5e9, "cmdline": ["python", "-m", "x"],
                                            "port": 8888}))
    assert read_meta(layout) == {"pid": 42, "create_time": 1.5e9, "cmdline": ["python", "-m", "x"], "port": 8888}
    layout.meta_file.write_text("[1, 2]")
    assert read_meta(layout) is None


@pytest.mark.parametrize("kind", BAD)
def test_bad_runtime_file_is_no_server_info(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "jpserver-4242.json"
    make(path, kind)
    assert within(5, lambda: read_info(path)) is None


@pytest.mark.parametrize("data", [{"pid": "4242"}, {"pid": True}, {"pid": 4242, "port": "8888"},
                                  {"pid": 4242, "port": 70000}, {"pid": 4242, "token": 5}, {"port": 8888}, [4242]])
def test_malformed_runtime_file_is_no_server_info(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "jpserver-4242.json"
    path.write_text(json.dumps(data))
    assert read_info(path) is None


def test_clean_stale_removes_junk_but_not_a_file_being_written(tmp_path: Path) -> None:
    runtime = tmp_path / ".jupyter_runtime"
    for i, kind in enumerate(["fifo", "directory", "dev-zero", "huge", "binary"]):
        make(runtime / f"jpserver-{900000 + i}.json", kind)
    (runtime / "jpserver-900100.json").write_text('{"pid": ')  # half-written, by a pid that does not run
    # Half-written by a process that runs (this one), just now: it may still be writing.
    (runtime / f"jpserver-{os.getpid()}.json").write_text('{"pid": ')
    (runtime / "jpserver-900200.json").mkdir()
    (runtime / "jpserver-900200.json" / "keep").write_text("someone's data")
    problems: list[str] = []
    removed = within(10, lambda: clean_stale(runtime, take_snapshot(), problems))
    assert sorted(removed) == sorted([f"jpserver-{900000 + i}.json" for i in range(5)] + ["jpserver-900100.json"])
    assert sorted(p.name for p in runtime.iterdir()) == sorted([f"jpserver-{os.getpid()}.json", "jpserver-900200.json"])
    assert len(problems) == 1 and "jpserver-900200.json" in problems[0]  # not ours to force: a warning
    # Once it is old, a malformed file is junk even though its pid runs.
    old = time.time() - 60
    os.utime(runtime / f"jpserver-{os.getpid()}.json", (old, old))
    assert clean_stale(runtime, take_snapshot()) == [f"jpserver-{os.getpid()}.json"]


@pytest.mark.parametrize("content", ["fifo", "directory", "dev-zero", "binary", "deep-json", "list", "types"])
def test_port_claims_survive_a_bad_claims_file(tmp_path: Path, content: str) -> None:
    claims = PortClaims(tmp_path)
    if content == "list":
        claims.file.write_text("[1]")
    elif content == "types":
        claims.file.write_text(json.dumps({"9000": {"pid": "x", "time": "now"}, "9001": {"pid": os.getpid(),
                                           "time": 1e308}, "9002": [1], "9003": {"pid": True, "time": time.time()}}))
    else:
        make(claims.file, content)
    port = within(10, lambda: claims.acquire("127.0.0.1", 28990, 28999))
    assert 28990 <= port <= 28999
    claims.release(port)


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero"])
def test_a_bad_claims_lock_file_is_replaced(tmp_path: Path, kind: str) -> None:
    claims = PortClaims(tmp_path)
    make(tmp_path / "port-claims.lock", kind)
    port = within(10, lambda: claims.acquire("127.0.0.1", 28990, 28999))
    claims.release(port)
    lock = tmp_path / "port-claims.lock"
    assert lock.is_file() and not lock.is_symlink()
    assert Path("/dev/zero").exists()  # the symlink went, not its target


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero"])
def test_tail_of_a_log_that_is_no_regular_file_is_empty(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "jupyterlab.log"
    make(path, kind)
    assert within(5, lambda: tail_lines(path, 10)) == []


def test_tail_reads_a_bounded_amount(tmp_path: Path) -> None:
    path = tmp_path / "one-line.log"
    path.write_bytes(b"x" * (fsutil.TAIL_LIMIT * 2) + b"\nlast\n")
    lines = tail_lines(path, 3)
    assert lines[-1] == "last" and len(lines[0]) <= fsutil.TAIL_LIMIT + 8192


def test_open_append_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    make(tmp_path / "bootstrap.log", "fifo")
    with pytest.raises(OSError, match="is a FIFO"):
        within(5, lambda: fsutil.open_append(tmp_path / "bootstrap.log"))


def test_remove_takes_junk_and_reports_what_it_cannot(tmp_path: Path) -> None:
    for kind in ("fifo", "directory", "dev-zero"):
        make(tmp_path / kind, kind)
        assert remove(tmp_path / kind) and not os.path.lexists(tmp_path / kind)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    problems: list[str] = []
    assert not remove(tmp_path / "full", problems)
    assert (tmp_path / "full" / "x").exists() and "could not remove" in problems[0]


@pytest.mark.parametrize("arg,port", [("--port=8888", 8888), ("--ServerApp.port=9000", 9000),
                                      ("--port=8888\n", None), ("--port=" + "9" * 5000, None),
                                      ("--port=٨٨٨٨", None), ("--port=70000", None), ("--port=0", None)])
def test_port_from_cmdline_takes_only_a_plain_port(arg: str, port: int | None) -> None:
    assert port_from_cmdline(["python", "-m", "jupyterlab", arg]) == port
