"""The host layer's JSON entry point, and the promises that let it run on a remote box."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from lifecycle.host.spec import ProjectSpec

from conftest import REPO, Workspace

HOST_DIR = REPO / "lifecycle" / "host"


def run_host(request: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle.host"], input=json.dumps(request), text=True,
                          capture_output=True, timeout=60)


def test_one_json_document_out_events_on_stderr(ws: Workspace) -> None:
    path = ws.project("alpha")
    spec = ProjectSpec(name="alpha", path=str(path), venv=str(ws.venv), gitignore_block=".logs/\n")
    proc = run_host({"version": 1, "op": "bootstrap", "host": "box", "projects": [spec.to_dict()],
                     "options": {"check": True}})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {r["action"] for r in doc["results"]} == {"dirs", "gitignore", "venv", "requirements", "kernel"}
    assert all(r["host"] == "box" for r in doc["results"])
    events = [json.loads(line[5:]) for line in proc.stderr.splitlines() if line.startswith("@jlc ")]
    assert [e["result"]["action"] for e in events if e["event"] == "result"] == [r["action"] for r in doc["results"]]
    assert not (path / ".gitignore").exists()  # check mode

    status = json.loads(run_host({"version": 1, "op": "status", "host": "box", "projects": [spec.to_dict()],
                                  "roots": {"alpha": str(path)}}).stdout)
    assert status["projects"][0]["state"] == "stopped" and status["projects"][0]["host"] == "box"


def test_bad_requests_get_an_error_document() -> None:
    for request, fragment in (({"version": 99, "op": "status"}, "unsupported protocol version 99"),
                              ({"version": 1, "op": "explode"}, "unknown operation 'explode'")):
        proc = run_host(request)
        assert proc.returncode == 2
        assert fragment in json.loads(proc.stdout)["error"]
    garbage = subprocess.run([sys.executable, "-m", "lifecycle.host"], input="{not json", text=True,
                             capture_output=True, timeout=60)
    assert garbage.returncode == 2 and "error" in json.loads(garbage.stdout)


def test_host_layer_imports_no_controller_libraries() -> None:
    code = ("import sys, lifecycle.host.api, lifecycle.host.__main__; "
            "bad = [m for m in ('invoke', 'fabric', 'jinja2', 'tabulate', 'tomllib') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_host_layer_is_python39_syntax() -> None:
    for path in sorted(HOST_DIR.glob("*.py")):
        source = path.read_text()
        ast.parse(source, filename=str(path), feature_version=(3, 9))
        tree = ast.parse(source)
        # PEP 604/585 annotations are only safe on 3.9 when they are never evaluated.
        has_future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)
        assert has_future or path.name == "__init__.py", f"{path.name} lacks 'from __future__ import annotations'"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dataclass":
                assert not any(k.arg in ("slots", "kw_only") for k in node.keywords), path.name


def test_remote_boot_script_is_python39_stdlib_only() -> None:
    from lifecycle.host.remote_boot import BOOT

    tree = ast.parse(BOOT, feature_version=(3, 9))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert imported <= set(sys.stdlib_module_names) | {"psutil"}


def test_spec_round_trips() -> None:
    spec = ProjectSpec(name="x", path="/p", env={"A": "1"}, args=("--a",), port_range=(9000, 9001))
    assert ProjectSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert Path(spec.path).name == "p"


def test_missing_project_dir_fails_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    spec = ProjectSpec(name="alpha", path=str(missing))
    proc = run_host({"version": 1, "op": "bootstrap", "host": "box", "projects": [spec.to_dict()], "options": {}})
    doc = json.loads(proc.stdout)
    assert [(r["action"], r["status"]) for r in doc["results"]] == [("bootstrap", "failed")]
    assert doc["results"][0]["msg"] == f"project missing: {missing} does not exist"
    assert not missing.exists()


def test_missing_project_dir_answers_per_op_as_locally(tmp_path: Path) -> None:
    """What a remote host answers for a missing project is what the local run gives (one code path)."""
    missing = tmp_path / "not-cloned-yet"
    spec = ProjectSpec(name="alpha", path=str(missing)).to_dict()
    expected = {"stop": ("stop", "skipped"), "stop-all": ("stop", "skipped"), "start": ("start", "failed"),
                "start-all": ("start", "failed"), "restart": ("start", "failed")}
    for op, (action, status) in expected.items():
        doc = json.loads(run_host({"version": 1, "op": op, "host": "box", "projects": [spec], "options": {}}).stdout)
        mine = [r for r in doc["results"] if r["project"] == "alpha"]
        assert [(r["action"], r["status"]) for r in mine] == [(action, status)], op
        assert mine[0]["msg"] == f"project missing: {missing} does not exist"
    doc = json.loads(run_host({"version": 1, "op": "status", "host": "box", "projects": [spec], "options": {}}).stdout)
    row = doc["projects"][0]
    assert (row["state"], row["note"]) == ("missing", f"{missing} does not exist")
    assert not missing.exists()
