"""Pure logic on synthetic process snapshots: classification and positive identification."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lifecycle.host.bootstrap import BLOCK_BEGIN, BLOCK_END, with_block
from lifecycle.host.identify import Viewer, find_server
from lifecycle.host.layout import Layout
from lifecycle.host.procs import (
    Proc,
    Snapshot,
    boot_id,
    is_jupyter_server,
    is_kernel,
    is_server_proc,
    kernel_connection_file,
)
from lifecycle.host.runtime import clean_stale
from lifecycle.host.servers import ServerView, deepest, inside
from lifecycle.host.spec import ProjectSpec
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


def proc(pid: int, ppid: int, cmd: tuple[str, ...], created: float, status: str = "sleeping",
         exe: str | None = None) -> Proc:
    return Proc(pid=pid, ppid=ppid, name=os.path.basename(cmd[0]), cmdline=cmd, create_time=created,
                uid=0, status=status, exe=exe)


def seen_in(cwd: Path, runtime: Path | None = None) -> Viewer:
    """A viewer (the live-process seam) that reports every process as running in ``cwd``."""
    return lambda p: ServerView(p, None, str(cwd), str(runtime) if runtime else None)


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
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"{pid}\n")
    if meta is not None:
        layout.meta_file.write_text(json.dumps(meta))


def test_tracked_server_matches_identity(layout: Layout) -> None:
    cmd = (PY, "-m", "jupyterlab", "--port=8890")
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, 500.0)})
    write_pid(layout, FAKE_PID, {"pid": FAKE_PID, "create_time": 500.0, "cmdline": list(cmd), "port": 8890})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is not None and found.server.pid == FAKE_PID and found.server.port == 8890
    assert found.stale == []


def test_reused_pid_is_stale_not_ours(layout: Layout) -> None:
    cmd = (PY, "-m", "jupyterlab")
    write_pid(layout, FAKE_PID, {"pid": FAKE_PID, "create_time": 500.0, "cmdline": list(cmd)})
    # Same pid, but another program started later.
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, ("/usr/bin/sleep", "300"), 900.0)})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is None
    assert found.stale == [(layout.pid_file, f"pid {FAKE_PID} now belongs to another program (sleep)")]


def test_reused_pid_by_another_jupyter_without_metadata(layout: Layout) -> None:
    write_pid(layout, FAKE_PID)
    later = time.time() + 60
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, (PY, "-m", "jupyterlab"), later)})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is None and "reused" in found.stale[0][1]


def test_app_sh_pid_file_in_run_dir_is_identified(layout: Layout) -> None:
    cmd = (PY, "/v/bin/jupyter-lab", f"--notebook-dir={layout.root}/notebooks")
    write_pid(layout, FAKE_PID, path=layout.root / ".run" / "jupyter.pid")
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, time.time() - 5)})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is not None and found.server.pid_file == layout.root / ".run" / "jupyter.pid"


def test_garbage_and_dead_pid_files_are_stale(layout: Layout) -> None:
    layout.pid_file.write_text("not-a-pid\n")
    write_pid(layout, FAKE_PID + 1, path=layout.root / ".run" / "jupyter.pid")
    found = find_server(layout, Snapshot({}))
    assert found.server is None
    assert [why for _, why in found.stale] == ["pid file holds 'not-a-pid', not a pid",
                                              f"pid {FAKE_PID + 1} is not running"]


def test_untracked_server_found_by_runtime_file(layout: Layout) -> None:
    info = {"pid": FAKE_PID, "port": 8891, "url": "http://127.0.0.1:8891/", "token": "t",
            "root_dir": str(layout.root)}
    (layout.runtime_dir / f"jpserver-{FAKE_PID}.json").write_text(json.dumps(info))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, (PY, "-m", "jupyterlab"), time.time() - 5)})
    viewer = seen_in(layout.root, layout.runtime_dir)
    found = find_server(layout, snap, viewer=viewer)
    assert found.server is not None and not found.server.tracked and found.server.port == 8891


OURS = {"port": 8890}


def our_meta(layout: Layout, cmd: tuple[str, ...], created: float, **over: object) -> dict[str, object]:
    meta: dict[str, object] = {"pid": FAKE_PID, "create_time": created, "cmdline": list(cmd),
                               "root": str(layout.real_root), "machine": boot_id(), **OURS}
    meta.update(over)
    return meta


def test_prefix_named_project_never_claims_its_neighbour(tmp_path: Path) -> None:
    """p1's pid file naming p10's server: p10 is not inside p1, whatever the strings say."""
    p1, p10 = tmp_path / "p1", tmp_path / "p10"
    lay = Layout.of(ProjectSpec(name="p1", path=str(p1)))
    cmd = (PY, "-m", "jupyterlab", f"--ServerApp.root_dir={p10}")
    write_pid(lay, FAKE_PID)
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, time.time() - 60)})
    found = find_server(lay, snap, viewer=seen_in(p10, p10 / ".jupyter_runtime"))
    assert found.server is None and "Jupyter server of" in found.stale[0][1]
    assert not inside(str(p10), str(p1)) and inside(str(p1 / "x"), str(p1))
    assert deepest([str(p10 / "nb")], {"p1": str(p1), "p10": str(p10)}) == "p10"


def test_identity_is_bound_to_the_project_root(layout: Layout, tmp_path: Path) -> None:
    """A copied project directory carries the original's metadata: it must not claim its server."""
    cmd = (PY, "-m", "jupyterlab")
    write_pid(layout, FAKE_PID, our_meta(layout, cmd, 500.0, root=str(tmp_path / "original")))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, 500.0)})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is None and "copied project" in found.stale[0][1]


def test_identity_from_another_boot_is_stale(layout: Layout) -> None:
    cmd = (PY, "-m", "jupyterlab")
    write_pid(layout, FAKE_PID, our_meta(layout, cmd, 500.0, machine="another-boot"))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, 500.0)})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is None and "another machine" in found.stale[0][1]


@pytest.mark.parametrize("created", ["yesterday", None, [1], True])
def test_metadata_of_the_wrong_type_is_stale_not_a_crash(layout: Layout, created: object) -> None:
    cmd = (PY, "-m", "jupyterlab")
    write_pid(layout, FAKE_PID, our_meta(layout, cmd, 500.0, create_time=created))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, 500.0)})
    found = find_server(layout, snap, viewer=seen_in(layout.root))
    assert found.server is None and "another program" in found.stale[0][1]


def test_our_identity_still_needs_the_process_to_be_in_the_project(layout: Layout, tmp_path: Path) -> None:
    cmd = (PY, "-m", "jupyterlab")
    write_pid(layout, FAKE_PID, our_meta(layout, cmd, 500.0))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, cmd, 500.0)})
    assert find_server(layout, snap, viewer=seen_in(layout.root)).server is not None
    elsewhere = find_server(layout, snap, viewer=seen_in(tmp_path.parent))
    assert elsewhere.server is None


def test_argv_that_only_looks_like_jupyter_is_not_a_server(layout: Layout) -> None:
    """``exec -a jupyter-lab sleep 600``: the command line says Jupyter, the executable does not."""
    fake = proc(FAKE_PID, 1, ("jupyter-lab",), time.time() - 5, exe="/usr/bin/sleep")
    real_one = proc(FAKE_PID, 1, (PY, "-m", "jupyterlab"), time.time() - 5, exe="/usr/bin/python3.11")
    assert is_jupyter_server(fake.cmdline) and not is_server_proc(fake) and is_server_proc(real_one)
    write_pid(layout, FAKE_PID)
    found = find_server(layout, Snapshot({FAKE_PID: fake}), viewer=seen_in(layout.root))
    assert found.server is None and "another program" in found.stale[0][1]
    assert Snapshot({FAKE_PID: fake}).servers() == []


def test_runtime_file_copied_from_another_project_is_not_evidence(layout: Layout, tmp_path: Path) -> None:
    other = tmp_path.parent / (tmp_path.name + "-other")
    info = {"pid": FAKE_PID, "port": 8891, "url": "http://127.0.0.1:8891/", "token": "t", "root_dir": str(other)}
    (layout.runtime_dir / f"jpserver-{FAKE_PID}.json").write_text(json.dumps(info))
    snap = Snapshot({FAKE_PID: proc(FAKE_PID, 1, (PY, "-m", "jupyterlab"), time.time() - 5)})
    viewer = seen_in(other, other / ".jupyter_runtime")
    assert find_server(layout, snap, viewer=viewer).server is None


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
