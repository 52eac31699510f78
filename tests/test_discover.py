"""discover: finds Jupyter projects on disk; --write adds them keeping comments; twice adds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lifecycle.host.discover import discover
from lifecycle.inventory import load_inventory
from lifecycle.inventory_edit import project_name


def tree(root: Path) -> None:
    for rel in ("alpha/notebooks/a.ipynb", "alpha/pyproject.toml", "beta/scripts/app.sh",
                "gamma/.jupyter_runtime/.keep", "my lab/x.ipynb", "venvish/.venv/pyvenv.cfg",
                "venvish/.venv/share/x.ipynb", "mods/node_modules/pkg/x.ipynb", "deep/1/2/3/4/5/far.ipynb",
                "nested/outer.ipynb", "nested/inner/inner.ipynb", "plain/readme.txt"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_discover_finds_projects_and_skips_noise(tmp_path: Path) -> None:
    tree(tmp_path / "work")
    found = {Path(f["path"]).name: f["reasons"] for f in discover([str(tmp_path / "work")])}
    assert found == {
        "alpha": ["notebooks"],           # notebooks under notebooks/, root marked by pyproject.toml
        "beta": ["scripts/app.sh"],
        "gamma": ["isolation dirs"],
        "my lab": ["notebooks"],
        "nested": ["notebooks"],          # inner/ belongs to it
    }


def test_project_names_are_kernel_safe_and_unique() -> None:
    assert project_name("/x/my lab", set()) == "my-lab"
    assert project_name("/x/alpha", {"Alpha"}) == "alpha-2"
    assert project_name("/x/.hidden", set()) == "hidden"


def run(inv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True,
                          env={**os.environ, "JLC_INVENTORY": str(inv)}, timeout=60)


def test_write_twice_keeps_comments_and_adds_nothing_second_time(tmp_path: Path) -> None:
    tree(tmp_path / "work")
    (tmp_path / "alpha-existing").mkdir()
    inv = tmp_path / "inventory.toml"
    original = ('# my projects, by hand\n[discover]\nroots = ["work"]   # where I keep them\n\n'
                '[projects.alpha]  # the old one\npath = "alpha-existing"\nport_range = [9100, 9109]\n')
    inv.write_text(original)
    first = run(inv, "discover", "--write")
    assert first.returncode == 0, first.stderr
    text = inv.read_text()
    assert text.startswith(original)  # the user's lines, comments and layout untouched
    loaded = load_inventory(inv)
    assert sorted(loaded.projects) == ["alpha", "alpha-2", "beta", "gamma", "my-lab", "nested"]
    assert loaded.projects["my-lab"].path == str(tmp_path / "work" / "my lab")
    assert loaded.warnings == ()  # discovered projects share the default pool: no overlap warnings
    second = run(inv, "discover", "--write")
    assert second.returncode == 0 and second.stdout.startswith("nothing new")
    assert inv.read_text() == text
    check = run(inv, "discover", "--root", str(tmp_path / "plain"), "--json")
    assert check.returncode == 0 and '"new": []' in check.stdout


def test_check_does_not_write(tmp_path: Path) -> None:
    tree(tmp_path / "work")
    inv = tmp_path / "inventory.toml"
    inv.write_text('[discover]\nroots = ["work"]\n')
    proc = run(inv, "discover", "--write", "--check")
    assert proc.returncode == 0 and "not in the inventory: " in proc.stdout
    assert inv.read_text() == '[discover]\nroots = ["work"]\n'
