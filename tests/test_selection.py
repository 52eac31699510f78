"""Selecting projects by name, pattern, negation, '.', tag and host."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.errors import UsageError
from lifecycle.inventory import Host, Inventory, Project
from lifecycle.selection import select


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    projects = {
        "lab-a": Project("lab-a", str(tmp_path / "a"), tags=("gpu",)),
        "lab-b": Project("lab-b", str(tmp_path / "b"), tags=("cpu",)),
        "old": Project("old", str(tmp_path / "old")),
        "nested": Project("nested", str(tmp_path / "a" / "sub")),
        "far": Project("far", "/srv/far", host="box", tags=("gpu",)),
    }
    return Inventory(source=tmp_path / "inventory.toml", projects=projects,
                     hosts={"box": Host("box", "me@box")}, defaults={})


def names(projects: list[Project]) -> list[str]:
    return [p.name for p in projects]


@pytest.mark.parametrize("pattern,expected", [
    ("lab-a", ["lab-a"]),
    ("lab-*", ["lab-a", "lab-b"]),
    ("old,lab-b", ["lab-b", "old"]),
    ("!old", ["far", "lab-a", "lab-b", "nested"]),
    ("lab-*,!lab-b", ["lab-a"]),
    (None, ["far", "lab-a", "lab-b", "nested", "old"]),
])
def test_patterns(inv: Inventory, pattern: str | None, expected: list[str]) -> None:
    assert names(select(inv, pattern)) == expected


def test_tags_and_hosts_narrow(inv: Inventory) -> None:
    assert names(select(inv, None, tags=["gpu"])) == ["far", "lab-a"]
    assert names(select(inv, None, tags=["gpu", "cpu"])) == ["far", "lab-a", "lab-b"]
    assert names(select(inv, "lab-*", tags=["gpu"], hosts="local")) == ["lab-a"]
    assert names(select(inv, None, hosts="box")) == ["far"]


def test_dot_is_the_deepest_project_holding_cwd(inv: Inventory, tmp_path: Path) -> None:
    (tmp_path / "a" / "sub" / "deep").mkdir(parents=True)
    assert names(select(inv, ".", cwd=tmp_path / "a" / "sub" / "deep")) == ["nested"]
    assert names(select(inv, ".", cwd=tmp_path / "a")) == ["lab-a"]
    with pytest.raises(UsageError, match="is in none; projects: lab-a, lab-b, old, nested, far"):
        select(inv, ".", cwd=tmp_path)


def test_empty_selection_names_what_exists(inv: Inventory) -> None:
    with pytest.raises(UsageError) as err:
        select(inv, "nope", tags=["gpu"])
    msg = err.value.message
    assert "no project matches name 'nope', tag ['gpu']" in msg
    assert "projects: lab-a, lab-b, old, nested, far" in msg
    assert "tags: cpu, gpu" in msg and "hosts: local, box" in msg
    assert err.value.code == 2
