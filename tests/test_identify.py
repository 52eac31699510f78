"""Pure logic on synthetic process snapshots: classification and positive identification."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lifecycle.host.bootstrap import BLOCK_BEGIN, BLOCK_END, with_block
from lifecycle.host.layout import Layout
from lifecycle.host.procs import Proc, Snapshot, is_jupyter_server, is_kernel, kernel_connection_file
from lifecycle.host.runtime import clean_stale
from lifecycle.host.spec import ProjectSpec
from lifecycle.host.tracking import find_server
from lifecycle.report import redact

PY = "/v/bin/python"
# Well above any pid this machine hands out, so no real process is ever consulted.
FAKE_PID = 3_999_000


@pytest.mark.parametrize("cmd,server", [
    ([PY, "-m", "jupyterlab", "--port=8888"], True),
    ([PY, "/v/bin/jupyter-lab", "--no-browser"], True),
    ([PY, "/v/bin/jupyter", "lab"], True),
    (["/v/bin/jupyter-notebook"], True),
    ([PY, "-m", "jupyter_server"], True),
    ([PY, "/v/bin/jupyter-server", "list"], False),
    ([PY, "/v/bin/jupyter", "lab", "build"], False),
    ([PY, "/v/bin/jupyter-lifecycle", "status"], False),
    ([PY, "-m", "ipykernel_launcher", "-f", "/r/kernel-1.json"], False),
    (["vim", "jupyter-lab"], False),
    ([], False),
])
def test_server_classification(cmd: list[str], server: bool) -> None:
    assert is_jupyter_server(cmd) is server


def test_kernel_classification() -> None:
    cmd = (PY, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "/r/kernel-1.json")
    assert is_kernel(cmd)
    assert kernel_connection_file(cmd) == "/r/kernel-1.json"
    assert not is_kernel((PY, "-m", "jupyterlab"))


def proc(pid: int, ppid: int, cmd: tuple[str, ...], created: float, status: str = "sleeping") -> Proc:
    return Proc(pid=pid, ppid=ppid, name=os.path.basename(cmd[0]), cmdline=cmd, create_time=created,
                uid=0, status=status)


def test_descendants_skip_zombies() -> None:
    snap = Snapshot({
        10: proc(10, 1, (PY, "-m", "jupyterlab"), 100.0),
        11: proc(11, 10, (PY, "-m", "ipykernel_launcher"), 101.0),
        12: proc(12, 11, ("/bin/sh",), 102.0),
        13: proc(13, 10, (PY, "-m", "ipykernel_launcher"), 101.0, status="zombie"),
    })
    assert sorted(p.pid for p in snap.descendants(10)) == [11, 12]
    assert snap.get(13) is None
    assert [p.pid for p in snap.kernels()] == [11]


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout.of(ProjectSpec(name="p", path=str(tmp_path)))
    lay.logs_dir.mkdir()
    lay.runtime_dir.mkdir()
    return lay


def write_pid(layout: Layout, pid: int, meta: dict[str, object] | None = None, path: Path | None = None) -> None:
    target = path or layout.pid_file
    target.parent.mkdir(exist_ok=True)
    target.write_text(f"{pid}\n")
    if meta is not None:
        layout.meta_file.write_text(json.dumps(meta))


def test_tracked_server_matches_identity(layout: Layout) -> None:
    cmd = (PY, "-m", "jupyterlab", "--port=8890")
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, 500.0)})
    write_pid(layout, FAKE_PID, {"pid": FAKE_PID, "create_time": 500.0, "cmdline": list(cmd), "port": 8890})
    found = find_server(layout, snap)
    assert found.server is not None and found.server.pid == FAKE_PID and found.server.port == 8890
    assert found.stale == []


def test_reused_pid_is_stale_not_ours(layout: Layout) -> None:
    cmd = (PY, "-m", "jupyterlab")
    write_pid(layout, FAKE_PID, {"pid": FAKE_PID, "create_time": 500.0, "cmdline": list(cmd)})
    # Same pid, but another program started later.
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, ("/usr/bin/sleep", "300"), 900.0)})
    found = find_server(layout, snap)
    assert found.server is None
    assert found.stale == [(layout.pid_file, f"pid {FAKE_PID} now belongs to another program (sleep)")]


def test_reused_pid_by_another_jupyter_without_metadata(layout: Layout) -> None:
    write_pid(layout, FAKE_PID)
    later = time.time() + 60
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, (PY, "-m", "jupyterlab"), later)})
    found = find_server(layout, snap)
    assert found.server is None and "reused" in found.stale[0][1]


def test_app_sh_pid_file_in_run_dir_is_identified(layout: Layout) -> None:
    cmd = (PY, "/v/bin/jupyter-lab", f"--notebook-dir={layout.root}/notebooks")
    write_pid(layout, FAKE_PID, path=layout.root / ".run" / "jupyter.pid")
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, time.time() - 5)})
    found = find_server(layout, snap)
    assert found.server is not None and found.server.pid_file == layout.root / ".run" / "jupyter.pid"


def test_garbage_and_dead_pid_files_are_stale(layout: Layout) -> None:
    layout.pid_file.write_text("not-a-pid\n")
    write_pid(layout, FAKE_PID + 1, path=layout.root / ".run" / "jupyter.pid")
    found = find_server(layout, Snapshot({}))
    assert found.server is None
    assert [why for _, why in found.stale] == ["pid file holds 'not-a-pid', not a pid",
                                              f"pid {FAKE_PID + 1} is not running"]


def test_untracked_server_found_by_runtime_file(layout: Layout) -> None:
    info = {"pid": FAKE_PID, "port": 8891, "url": "http://127.0.0.1:8891/", "token": "t", "root_dir": "/x"}
    (layout.runtime_dir / f"jpserver-{FAKE_PID}.json").write_text(json.dumps(info))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, (PY, "-m", "jupyterlab"), time.time() - 5)})
    found = find_server(layout, snap)
    assert found.server is not None and not found.server.tracked and found.server.port == 8891


def test_clean_stale_runtime_files(layout: Layout) -> None:
    for pid in (FAKE_PID, FAKE_PID + 1, FAKE_PID + 2):
        (layout.runtime_dir / f"jpserver-{pid}.json").write_text(json.dumps({"pid": pid, "port": 1}))
        (layout.runtime_dir / f"jpserver-{pid}-open.html").write_text("")
    later = time.time() + 60
    snap = Snapshot({
        FAKE_PID: proc(FAKE_PID, 1, ("/usr/bin/voila", "nb.ipynb"), 1.0),  # live, started before: kept
        FAKE_PID + 1: proc(FAKE_PID + 1, 1, ("/usr/bin/sleep",), later),  # pid reused since: stale
    })
    removed = clean_stale(layout.runtime_dir, snap)
    assert sorted(removed) == sorted(f"jpserver-{p}{s}" for p in (FAKE_PID + 1, FAKE_PID + 2)
                                     for s in (".json", "-open.html"))
    assert clean_stale(layout.runtime_dir, snap) == []
    assert (layout.runtime_dir / f"jpserver-{FAKE_PID}.json").exists()


def test_gitignore_block_keeps_user_lines() -> None:
    user = "# mine\n*.csv\n\nsecrets/\n"
    once = with_block(user, ".logs/\n")
    assert once.startswith(user) and f"{BLOCK_BEGIN}\n.logs/\n{BLOCK_END}\n" in once
    assert with_block(once, ".logs/\n") == once
    changed = with_block(once + "after-block\n", ".logs/\n.run/\n")
    assert changed.startswith(user) and changed.endswith(f".logs/\n.run/\n{BLOCK_END}\nafter-block\n")


def test_redact_hides_tokens() -> None:
    line = "http://127.0.0.1:8888/lab?token=0123456789abcdef0123 and token=short"
    assert redact(line) == "http://127.0.0.1:8888/lab?token=<hidden> and token=short"
