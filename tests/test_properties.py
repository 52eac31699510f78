"""Property-based: whatever the inventory text or a selection pattern is, the tool either accepts it
or raises its own error (a LifecycleError, one line) -- never another exception."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.errors import LifecycleError
from lifecycle.inventory import BUILTIN_DEFAULTS, HOST_KEYS, PROJECT_KEYS, Inventory, Project, parse_inventory
from lifecycle.selection import select

# No example database in the checkout; no deadline on a loaded 2-core machine.
SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

KEYS = sorted(PROJECT_KEYS | HOST_KEYS | set(BUILTIN_DEFAULTS) | {"roots", "colour", "", "a=b", "A"})
NAMES = st.one_of(st.sampled_from(["alpha", "beta", "Alpha", "p1", "p10", "gpu", "local", "a b", "x\n", ".h", "-"]),
                  st.text(max_size=10))
CLEAN = st.one_of(
    st.sampled_from(["proj", ".", "..", "~", "/", "127.0.0.1", "::", "0.0.0.0", "localhost", "not-an-ip",
                     "999.1.1.1", "lab", "notebook", "server", "voila", "python3", ".venv", "jupyterlab>=4",
                     "reqs.txt", "A=B"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12),
)
# Mostly printable text; now and then NUL, newlines and other control characters.
ODD = st.text(max_size=12) | st.sampled_from(["", " ", "x\u0000y", "a\nb"])
STRINGS = st.sampled_from([CLEAN] * 9 + [ODD]).flatmap(lambda chosen: chosen)
SCALARS = st.one_of(
    STRINGS,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 22, 1023, 1024, 8888, 65535, 65536, 86400, 86401]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS) | STRINGS, inner,
                                                                       max_size=3)),
                      max_leaves=10)
TABLES = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), VALUES, max_size=6)
GOOD_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True)
INTS = st.integers(min_value=0, max_value=70000) | st.sampled_from([1024, 8888, 8899, 65535])
# Per key, values of about the right shape (so that many documents load), and sometimes anything.
PLAUSIBLE: dict[str, Any] = {
    "path": st.sampled_from(["proj", ".", "missing", "~/x", "/", "reqs.txt"]),
    "host": st.sampled_from(["local", "local", "gpu", "nope"]),
    "port_range": st.sampled_from([[9000, 9009], [8888, 8899], [1024, 65535]]) | st.lists(INTS, min_size=2, max_size=2),
    "app": st.sampled_from(["lab", "notebook", "server", "voila"]),
    "stop_timeout": (st.sampled_from([math.nan, math.inf, -math.inf, 0, 10, 86400, 1e300, 0.5])
                     | st.floats(allow_nan=True, allow_infinity=True)),
    "start_timeout": st.sampled_from([1, 60, 86401]) | st.floats(min_value=-1, max_value=1e6),
    "python": CLEAN, "venv": CLEAN, "notebook_dir": CLEAN, "display_name": STRINGS,
    "ip": st.sampled_from(["127.0.0.1", "::1", "0.0.0.0", "::", "localhost", "not-an-ip", "999.1.1.1", ""]),
    "requirements": st.lists(CLEAN, max_size=3) | CLEAN,
    "tags": st.lists(STRINGS, max_size=3), "args": st.lists(STRINGS, max_size=3),
    "env": st.dictionaries(STRINGS, STRINGS, max_size=3),
}
HOST_PLAUSIBLE: dict[str, Any] = {
    "port": INTS, "forks": st.integers(-1, 300), "connect_timeout": PLAUSIBLE["stop_timeout"],
    **{k: STRINGS for k in ("user", "identity", "known_hosts", "ssh_config", "python", "inventory")},
}


def mostly(good: Any, bad: Any = None) -> Any:
    """``good`` about nine times in ten, anything at all (or ``bad``) otherwise."""
    return st.sampled_from([good] * 9 + [VALUES if bad is None else bad]).flatmap(lambda chosen: chosen)


PROJECTS = st.fixed_dictionaries({"path": mostly(PLAUSIBLE["path"])},
                                 optional={k: mostly(v) for k, v in PLAUSIBLE.items() if k != "path"})
HOSTS = st.fixed_dictionaries({"address": STRINGS}, optional={k: mostly(v) for k, v in HOST_PLAUSIBLE.items()})
DEFAULTS = st.fixed_dictionaries({}, optional={k: mostly(v) for k, v in PLAUSIBLE.items() if k in BUILTIN_DEFAULTS})
DOCUMENTS = mostly(st.fixed_dictionaries({
    "projects": st.dictionaries(mostly(GOOD_NAMES, NAMES), mostly(PROJECTS), max_size=4),
}, optional={
    "defaults": mostly(DEFAULTS, TABLES),
    "hosts": st.dictionaries(mostly(GOOD_NAMES, NAMES), mostly(HOSTS), max_size=3),
    "discover": mostly(st.fixed_dictionaries({}, optional={"roots": st.lists(STRINGS, max_size=2) | VALUES}),
                       TABLES),
}), st.dictionaries(STRINGS, VALUES, max_size=2))


def toml_string(text: str) -> str:
    # JSON's string escapes are TOML's, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """A TOML rendering of a value (inline); strings as JSON strings, which TOML mostly shares."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    for top, content in doc.items():
        if top in ("hosts", "projects") and isinstance(content, dict):
            for name, table in content.items():
                key = toml_string(name)
                if isinstance(table, dict):
                    lines.append(f"[{top}.{key}]")
                    lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in table.items()]
                else:
                    lines.append(f"{top}.{key} = {toml_value(table)}")
        elif isinstance(content, dict):
            lines.append(f"[{toml_string(top)}]")
            lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in content.items()]
        else:
            lines.insert(0, f"{toml_string(top)} = {toml_value(content)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("props")
    (base / "proj").mkdir()
    (base / "reqs.txt").write_text("")
    return base / "inventory.toml"


def loads_or_own_error(text: str, source: Path) -> None:
    try:
        inv = parse_inventory(text, source)
    except LifecycleError as exc:
        assert exc.code == 2
        assert "\n" not in exc.message and "\r" not in exc.message, exc.message
        return
    assert isinstance(inv, Inventory)
    for name in [*inv.projects, *inv.hosts]:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name), name
    for project in inv.projects.values():
        assert project.ip == "localhost" or ipaddress.ip_address(project.ip)
        assert all(k and "=" not in k for k, _ in project.env)
        assert 1024 <= project.port_range[0] <= project.port_range[1] <= 65535
        assert math.isfinite(project.stop_timeout) and project.stop_timeout > 0
        assert "\0" not in project.path + "".join(project.args) + "".join(k + v for k, v in project.env)


@SETTINGS
@given(doc=DOCUMENTS)
def test_structured_inventory_loads_or_raises_own_error(doc: dict[str, Any], source: Path) -> None:
    loads_or_own_error(toml_document(doc), source)


@SETTINGS
@given(where=st.sampled_from(["projects", "defaults"]),
       change=st.sampled_from(sorted(PLAUSIBLE)).flatmap(lambda k: st.tuples(st.just(k), mostly(PLAUSIBLE[k]))))
def test_one_value_changed_in_a_good_inventory(where: str, change: tuple[str, Any], source: Path) -> None:
    """A valid inventory with one value varied: the changed value itself is what gets judged."""
    key, value = change
    doc: dict[str, Any] = {"projects": {"alpha": {"path": "proj"}}, "hosts": {"gpu": {"address": "gpu"}}}
    if where == "defaults" and key in BUILTIN_DEFAULTS:
        doc["defaults"] = {key: value}
    else:
        doc["projects"]["alpha"][key] = value
    loads_or_own_error(toml_document(doc), source)


FRAGMENTS = st.sampled_from([
    "[defaults]", "[projects.alpha]", "[projects.\"a\\nb\"]", "[hosts.gpu]", "[discover]", "[[projects]]",
    'path = "proj"', "port_range = [9000, 9009]", "port_range = [9009, 9000]", "stop_timeout = nan",
    "stop_timeout = inf", "stop_timeout = 1e999", 'ip = "999.1.1.1"', 'env = { "A=B" = "1" }',
    'args = ["\\u0000"]', "x = " + "[" * 3000 + "]" * 3000, "x = " + "1" * 5000, 'host = "gpu"',
    'address = "a@b"', "forks = 0", "port = 99999", "roots = [1]", "a.b.c = 1", "= 1", "[", "'", '"""',
])


@SETTINGS
@given(lines=st.lists(FRAGMENTS | st.text(max_size=30), max_size=12))
def test_toml_ish_text_loads_or_raises_own_error(lines: list[str], source: Path) -> None:
    loads_or_own_error("\n".join(lines), source)


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_loads_or_raises_own_error(text: str, source: Path) -> None:
    loads_or_own_error(text, source)


def fleet(tmp: Path) -> Inventory:
    names = ["alpha", "alpha-2", "beta", "p1", "p10", "Gamma.x"]
    projects = {n: Project(name=n, path=str(tmp / n), tags=("t1",) if i % 2 else ("t2", "x y"),
                           host="local" if i < 4 else "gpu") for i, n in enumerate(names)}
    return Inventory(source=tmp / "inventory.toml", projects=projects, hosts={}, defaults={})


TERMS = st.one_of(st.sampled_from(["alpha", "!alpha", "a*", "!p?", "p[0-9]*", "[", "[!", "]", "!", "!!", ".",
                                   "*", "?", ",", " ", "", "Gamma.x", "gamma.x", "\\", "**/x", "!*"]),
                  st.text(max_size=8))


@SETTINGS
@given(pattern=st.none() | st.lists(TERMS, max_size=5).map(",".join) | st.text(max_size=20),
       tags=st.lists(st.sampled_from(["t1", "t2", "x y", "", "nope"]) | st.text(max_size=4), max_size=3),
       hosts=st.none() | st.sampled_from(["local", "gpu", "local,gpu", "", ",", "nope"]) | st.text(max_size=6))
def test_selection_selects_or_raises_own_error(pattern: str | None, tags: list[str], hosts: str | None,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.getbasetemp()
    inv = fleet(tmp)
    try:
        chosen = select(inv, pattern, tags, hosts, cwd=tmp / "alpha" / "sub")
    except LifecycleError as exc:
        assert exc.code == 2
        assert "\n" not in exc.message, exc.message
        return
    assert chosen and all(p.name in inv.projects for p in chosen)
    assert len({p.name for p in chosen}) == len(chosen)
