"""discover: finds Jupyter projects on disk; --write adds them keeping comments; twice adds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lifecycle.errors import LifecycleError
from lifecycle.host.discover import discover
from lifecycle.inventory import load_inventory
from lifecycle.inventory_edit import free_ranges, project_name


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
    assert loaded.warnings == ()  # each discovered project got a range of its own: no overlap warnings
    second = run(inv, "discover", "--write")
    assert second.returncode == 0 and second.stdout.startswith("nothing new")
    assert inv.read_text() == text
    check = run(inv, "discover", "--root", str(tmp_path / "work" / "plain"), "--json")
    assert check.returncode == 0 and '"new": []' in check.stdout


def shown_toml(stdout: str) -> dict[str, Any]:
    return tomllib.loads(stdout)  # the header line is a TOML comment: the output is TOML as a whole


@pytest.mark.parametrize("flags", [(), ("--check",), ("--write", "--check")])
def test_without_write_shows_the_toml_it_would_add_and_writes_nothing(tmp_path: Path, flags: tuple[str, ...]) -> None:
    tree(tmp_path / "work")
    inv = tmp_path / "inventory.toml"
    inv.write_text('[discover]\nroots = ["work"]\n')
    proc = run(inv, "discover", *flags)
    assert proc.returncode == 0, proc.stderr
    assert inv.read_text() == '[discover]\nroots = ["work"]\n'
    assert proc.stdout.startswith(f"# 5 project(s) not in the inventory; with --write, {inv} would get:")
    shown = shown_toml(proc.stdout)["projects"]
    assert sorted(shown) == ["alpha", "beta", "gamma", "my-lab", "nested"]
    assert shown["my-lab"]["path"] == "work/my lab"
    # What was shown is what --write adds.
    assert run(inv, "discover", "--write").returncode == 0
    assert {n: p for n, p in tomllib.loads(inv.read_text())["projects"].items()} == shown


def test_a_root_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text("")
    (tmp_path / "afile").write_text("")
    for root, why in ((tmp_path / "nonexistent", "no such directory"), (tmp_path / "afile", "not a directory")):
        proc = run(inv, "discover", "--root", str(root))
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        assert proc.stderr == f"error: --root {root}: {why}\n"
    # A configured root that is gone (an unmounted disk) is skipped with a warning, not fatal.
    tree(tmp_path / "work")
    inv.write_text('[discover]\nroots = ["gone", "work"]\n')
    proc = run(inv, "discover")
    assert proc.returncode == 0 and f"discover root {tmp_path / 'gone'} does not exist" in proc.stderr
    assert "[projects.alpha]" in proc.stdout


def test_with_no_inventory_anywhere_write_creates_the_default_one(tmp_path: Path) -> None:
    tree(tmp_path / "work")
    env = {k: v for k, v in os.environ.items() if k != "JLC_INVENTORY"}
    default = Path(os.environ["HOME"]) / ".config" / "jupyter-lifecycle" / "inventory.toml"

    def jlc(*args: str, cwd: Path = tmp_path / "work") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True, env=env,
                              cwd=cwd, timeout=60)

    assert jlc("status").returncode == 2  # nothing to work with yet
    look = jlc("discover")
    assert look.returncode == 0 and f"{default} would be created with:" in look.stdout.splitlines()[0]
    assert not default.exists()
    made = jlc("discover", "--write")
    assert made.returncode == 0, made.stderr
    assert f"created {default}" in made.stdout
    loaded = load_inventory(default)
    assert sorted(loaded.projects) == ["alpha", "beta", "gamma", "my-lab", "nested"]
    assert loaded.discover_roots == (str(tmp_path / "work"),) and loaded.warnings == ()
    status = jlc("status", "--json", cwd=tmp_path)
    assert status.returncode == 0 and status.stderr == "", status.stderr
    assert {r["name"] for r in json.loads(status.stdout)["projects"]} == set(loaded.projects)
    again = jlc("discover", "--write", cwd=tmp_path)  # from elsewhere: the roots it wrote are searched
    assert again.returncode == 0 and again.stdout.startswith("nothing new"), again.stdout


def test_inventory_flag_names_the_file_to_create(tmp_path: Path) -> None:
    tree(tmp_path / "work")
    target = tmp_path / "conf" / "mine.toml"
    proc = run(tmp_path / "unused.toml", "discover", "--root", str(tmp_path / "work"), "--write",
               "--inventory", str(target))
    assert proc.returncode == 0, proc.stderr
    assert sorted(load_inventory(target).projects) == ["alpha", "beta", "gamma", "my-lab", "nested"]
    assert not (tmp_path / "unused.toml").exists()


def test_discovered_ranges_overlap_nothing_on_the_host(tmp_path: Path) -> None:
    tree(tmp_path / "work")
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    inv = tmp_path / "inventory.toml"
    # The default pool, a project inheriting it, and explicit ranges right after it.
    inv.write_text('[discover]\nroots = ["work"]\n[projects.a]\npath = "a"\n'
                   '[projects.b]\npath = "b"\nport_range = [8900, 8909]\n'
                   '[projects.c]\npath = "c"\nport_range = [8915, 8934]\n')
    assert run(inv, "discover", "--write").returncode == 0
    loaded = load_inventory(inv)
    assert loaded.warnings == ()
    ranges = sorted(p.port_range for p in loaded.projects.values()) + [(8888, 8899)]
    new = [loaded.projects[n].port_range for n in ("alpha", "beta", "gamma", "my-lab", "nested")]
    for low, high in new:
        assert high - low + 1 == 10
        assert sum(1 for a, b in ranges if not (high < a or b < low)) == 1  # only itself
    status = subprocess.run([sys.executable, "-m", "lifecycle", "status"], capture_output=True, text=True,
                            env={**os.environ, "JLC_INVENTORY": str(inv)}, timeout=60)
    assert status.returncode == 0 and "overlap" not in status.stderr, status.stderr


def test_free_ranges_skip_what_is_taken() -> None:
    assert free_ranges([(8888, 8899)], 2, 8888) == [(8900, 8909), (8910, 8919)]
    assert free_ranges([(8888, 8899), (8905, 8905)], 1, 8888) == [(8910, 8919)]
    assert free_ranges([(1024, 65500)], 2, 8888) == [(65510, 65519), (65520, 65529)]
    with pytest.raises(LifecycleError):
        free_ranges([(1024, 65535)], 1, 8888)
