"""Fault suite, identity: evidence that points at another project's server never makes us stop it.

Each case plants misleading evidence (a pid file, copied metadata, a copied
runtime file, a process dressed up as Jupyter) against real servers and counts
wrong kills: there must be none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import psutil

from conftest import SLOW, Workspace, alive, servers_in, wait_for


def start(ws: Workspace, name: str) -> int:
    proc = ws.cli("start", name, "--no-open")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return int((Path(ws.projects[name]["path"]) / ".logs" / "jupyter.pid").read_text())


def test_prefix_named_project_and_copied_pid_file(ws: Workspace) -> None:
    """p1's pid file naming p10's server: stop p1 leaves p10 running (5 wrong kills in 30 runs before)."""
    p1 = ws.project("p1")
    ws.project("p10")
    victim = start(ws, "p10")
    (p1 / ".logs").mkdir(parents=True, exist_ok=True)
    (p1 / ".logs" / "jupyter.pid").write_text(f"{victim}\n")
    stop = ws.cli("stop", "p1")
    assert stop.returncode == 0, stop.stderr + stop.stdout
    assert alive(victim), "stop p1 killed p10's server"
    assert "Jupyter server of" in stop.stdout and not (p1 / ".logs" / "jupyter.pid").exists()
    # The identity beside the pid file, copied too, does not help either.
    shutil.copy(Path(ws.projects["p10"]["path"]) / ".logs" / "jupyter.meta.json", p1 / ".logs")
    (p1 / ".logs" / "jupyter.pid").write_text(f"{victim}\n")
    status = {r["name"]: r for r in ws.json("status")["projects"]}
    assert status["p1"]["state"] == "stale" and status["p10"]["pid"] == victim
    assert ws.cli("stop", "p1").returncode == 0 and alive(victim)
    assert ws.cli("stop", "p10").returncode == 0
    assert not alive(victim)


def test_copied_project_directory_does_not_claim_the_original_server(ws: Workspace) -> None:
    original = ws.project("p3")
    victim = start(ws, "p3")
    copy = original.parent / "p3copy"
    shutil.copytree(original, copy, symlinks=True)
    ws.project("p3copy", path=str(copy))
    stop = ws.cli("stop", "p3copy")
    assert stop.returncode == 0, stop.stderr + stop.stdout
    assert alive(victim), "stop p3copy killed p3's server"
    assert "copied project" in stop.stdout
    # The copy starts a server of its own instead of claiming the original's.
    own = start(ws, "p3copy")
    assert own != victim and servers_in(copy) == [own] and servers_in(original) == [victim]
    assert ws.cli("stop", "p3copy").returncode == 0
    assert alive(victim) and not alive(own)
    assert ws.cli("stop", "p3").returncode == 0


def test_runtime_file_copied_into_another_project_is_not_adopted(ws: Workspace) -> None:
    ws.project("p2")
    p3 = ws.project("p3")
    victim = start(ws, "p3")
    p2 = Path(ws.projects["p2"]["path"])
    (p2 / ".jupyter_runtime").mkdir(parents=True, exist_ok=True)
    shutil.copy(p3 / ".jupyter_runtime" / f"jpserver-{victim}.json", p2 / ".jupyter_runtime")
    started = ws.cli("start", "p2", "--no-open")
    assert started.returncode == 0, started.stderr + started.stdout
    assert "adopted" not in started.stdout and "started on" in started.stdout
    own = int((p2 / ".logs" / "jupyter.pid").read_text())
    assert own != victim
    stop = ws.cli("stop", "p2")
    assert stop.returncode == 0 and alive(victim) and not alive(own)
    assert ws.cli("stop", "p3").returncode == 0


def test_process_that_only_looks_like_jupyter_is_left_alone(ws: Workspace) -> None:
    """``exec -a jupyter-lab sleep 600`` in the project, its pid in the pid file: never signalled."""
    path = ws.project("p1")
    impostor = subprocess.Popen(["bash", "-c", "exec -a jupyter-lab sleep 600"], cwd=path,
                                start_new_session=True)
    try:
        wait_for(lambda: psutil.Process(impostor.pid).cmdline()[:1] == ["jupyter-lab"], SLOW, "the exec")
        time.sleep(0.01)  # the pid file must be no older than the process, as app.sh would write it
        (path / ".logs").mkdir(parents=True, exist_ok=True)
        (path / ".logs" / "jupyter.pid").write_text(f"{impostor.pid}\n")
        doc = ws.json("status")
        assert doc["projects"][0]["state"] == "stale"
        assert all(u["pid"] != impostor.pid for u in doc["unmanaged"])
        assert all(o["pid"] != impostor.pid for o in ws.json("orphans")["orphans"])
        stop = ws.cli("stop", "p1")
        assert stop.returncode == 0, stop.stderr + stop.stdout
        assert impostor.poll() is None, "stop signalled a process that only looks like Jupyter"
        assert "another program" in stop.stdout
    finally:
        impostor.kill()
        impostor.wait()


def test_wrong_kills_over_many_plantings(ws: Workspace) -> None:
    """The campaign's count: plant each kind of misleading evidence repeatedly; wrong kills stay 0."""
    victim_path = ws.project("p10")
    p1 = ws.project("p1")
    victim = start(ws, "p10")
    meta = json.loads((victim_path / ".logs" / "jupyter.meta.json").read_text())
    plantings = [
        {"pid": f"{victim}\n"},
        {"pid": f"{victim}\n", "meta": meta},
        {"pid": f"{victim}\n", "meta": {**meta, "root": str(p1)}},
        {"pid": f"{victim}\n", "meta": {**meta, "create_time": "yesterday"}},
        {"pid": f"  {victim}  \n", "run": True},
    ]
    wrong = 0
    for plant in plantings * 2:
        logs = p1 / ".logs"
        logs.mkdir(parents=True, exist_ok=True)
        target = p1 / ".run" / "jupyter.pid" if plant.get("run") else logs / "jupyter.pid"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(plant["pid"]))
        if "meta" in plant:
            (logs / "jupyter.meta.json").write_text(json.dumps(plant["meta"]))
        for action in (("stop", "p1"), ("restart", "p1"), ("stop", "p1")):
            ws.cli(*action)
            if not alive(victim):
                wrong += 1
                break
        if not alive(victim):
            break
    assert wrong == 0
    assert ws.cli("stop", "p10").returncode == 0
