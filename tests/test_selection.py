"""Selecting projects by name, pattern, negation, '.', tag and host."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_dot_through_a_symlink_and_never_by_prefix(tmp_path: Path) -> None:
    """'.' compares resolved paths component-wise: a symlinked inventory path still matches the
    cwd the OS reports, and /x/p10 is not inside /x/p1."""
    (tmp_path / "real" / "p1").mkdir(parents=True)
    (tmp_path / "real" / "p10").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    projects = {"p1": Project("p1", str(tmp_path / "link" / "p1")),
                "p10": Project("p10", str(tmp_path / "real" / "p10"))}
    inv = Inventory(source=tmp_path / "inventory.toml", projects=projects, hosts={}, defaults={})
    assert names(select(inv, ".", cwd=(tmp_path / "real" / "p1").resolve())) == ["p1"]
    assert names(select(inv, ".", cwd=tmp_path / "real" / "p10")) == ["p10"]


def test_empty_selection_names_what_exists(inv: Inventory) -> None:
    with pytest.raises(UsageError) as err:
        select(inv, "old", tags=["gpu"])
    msg = err.value.message
    assert "no project matches name 'old', tag ['gpu']" in msg
    assert "projects: lab-a, lab-b, old, nested, far" in msg
    assert "tags: cpu, gpu" in msg and "hosts: local, box" in msg
    assert err.value.code == 2


@pytest.mark.parametrize("pattern", ["", "   ", ",", " , ,"])
def test_an_empty_pattern_is_an_error_not_everything(inv: Inventory, pattern: str) -> None:
    """`jlc stop "$UNSET"` must not stop every project."""
    with pytest.raises(UsageError, match=r"^empty project pattern .* \(an unset variable\?\)") as err:
        select(inv, pattern)
    assert err.value.code == 2


@pytest.mark.parametrize("pattern,message", [
    ("helo", "no project named 'helo'; projects: lab-a, lab-b, old, nested, far"),
    ("lab-c", "no project named 'lab-c'; did you mean: lab-b, lab-a?; projects:"),
    ("Old", "no project named 'Old'; did you mean: old?"),
    ("!olt", "'!olt' excludes nothing: no project named 'olt'; did you mean: old?; projects:"),
    ("!helo", "'!helo' excludes nothing: no project named 'helo'; projects:"),
    ("gpu-*", "'gpu-*' matches no project; projects: lab-a, lab-b, old, nested, far"),
    ("!gpu-*", "'!gpu-*' excludes nothing: 'gpu-*' matches no project; projects:"),
    ("lab-a,nope", "no project named 'nope'"),  # one bad term spoils the whole pattern
    ("lab-*,!", "'!' in a pattern: '!' needs a name or glob after it"),
])
def test_a_term_that_matches_nothing_is_an_error(inv: Inventory, pattern: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        select(inv, pattern)
    assert err.value.message.startswith(message), err.value.message
    assert err.value.code == 2


def test_negating_everything_is_an_empty_selection(inv: Inventory) -> None:
    with pytest.raises(UsageError, match="no project matches name"):
        select(inv, "!*")


@pytest.mark.parametrize("tags,hosts,message", [
    (["gpx"], None, "no project has tag 'gpx'; did you mean: gpu?; tags: cpu, gpu"),
    ([""], None, "empty --tag (an unset variable?); tags: cpu, gpu"),
    ([], "bx", "no host 'bx' in the inventory; did you mean: box?; hosts: local, box"),
    ([], "local,nowhere", "no host 'nowhere' in the inventory"),
    ([], "", "empty --host '' (an unset variable?); hosts: local, box"),
])
def test_tags_and_hosts_that_match_nothing_are_errors(inv: Inventory, tags: list[str], hosts: str | None,
                                                      message: str) -> None:
    with pytest.raises(UsageError) as err:
        select(inv, None, tags=tags, hosts=hosts)
    assert err.value.message.startswith(message), err.value.message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab-*?[]!,. lold\n\x00")), max_size=12),
       st.lists(st.text(max_size=4), max_size=2), st.one_of(st.none(), st.text(max_size=6)))
def test_any_selection_selects_something_or_says_why(pattern: str, tags: list[str], hosts: str | None) -> None:
    """Whatever is typed, the answer is a non-empty selection or the tool's own usage error."""
    tmp = Path("/nonexistent-selection-test")
    inv = Inventory(source=tmp / "inventory.toml", hosts={"box": Host("box", "me@box")}, defaults={},
                    projects={"lab-a": Project("lab-a", "/x/a", tags=("a",)), "old": Project("old", "/x/old"),
                              "b": Project("b", "/srv/b", host="box")})
    try:
        chosen = select(inv, pattern, tags, hosts, cwd=tmp)
    except UsageError as exc:
        assert exc.code == 2 and exc.message and "\n" not in exc.message  # one line, whatever was typed
        return
    assert chosen and len({p.name for p in chosen}) == len(chosen)
    terms = [t.strip() for t in pattern.split(",") if t.strip()]
    if terms and all(not t.startswith("!") for t in terms):
        # Only positive terms: nothing is chosen that no term names.
        assert all(any(fnmatch.fnmatchcase(p.name, t) for t in terms) for p in chosen)
