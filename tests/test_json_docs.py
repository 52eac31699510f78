"""The JSON documents in docs/tasks.md and what the tasks print agree key for key.

The documented shapes are parsed from the docs' own notation, then every task's real --json output
(with a running server, an untracked one, an unreachable host) is checked against them: no key missing,
none undocumented, and every key documented as optional seen at least once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from conftest import REPO, Workspace

DOCS = REPO / "docs" / "tasks.md"
_TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*")|(?P<ellipsis>\.\.\.)|(?P<punct>[{}\[\],:?])|(?P<word>\w+))')


SCALAR = "scalar"  # a value the notation does not describe further


@dataclass
class Shape:
    """An object's documented keys: name -> (optional, shape of the value, or SCALAR)."""

    keys: dict[str, tuple[bool, Any]] = field(default_factory=dict)
    any_key: Any = None     # {HOST: ...}: every key maps to this shape
    open: bool = False      # {...}: keys documented elsewhere


@dataclass
class ListOf:
    item: Any


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or not m.group(0).strip():
            if text[pos:].strip() == "":
                break
            raise AssertionError(f"cannot read the notation at {text[pos:pos + 30]!r}")
        out.append(m.group(0).strip())
        pos = m.end()
    return out


def _value(tokens: list[str]) -> Any:
    head = tokens.pop(0)
    if head == "{":
        return _object(tokens)
    if head == "[":
        item = _value(tokens)
        assert tokens.pop(0) == "]"
        return ListOf(item)
    return SCALAR  # 1, REASON, ...


def _object(tokens: list[str]) -> Shape:
    shape = Shape()
    while tokens[0] != "}":
        token = tokens.pop(0)
        if token == "...":
            shape.open = True
        elif token.startswith('"'):
            optional = tokens[0] == "?"
            if optional:
                tokens.pop(0)
            sub: Any = SCALAR
            if tokens[0] == ":":
                tokens.pop(0)
                sub = _value(tokens)
            shape.keys[token.strip('"')] = (optional, sub)
        else:  # a placeholder key: HOST, NAME
            assert tokens.pop(0) == ":", token
            shape.any_key = _value(tokens)
        if tokens[0] == ",":
            tokens.pop(0)
    tokens.pop(0)
    return shape


def documented() -> dict[str, Shape]:
    text = DOCS.read_text().split("## JSON documents", 1)[1].split("```", 2)[1]
    shapes = {}
    for m in re.finditer(r"^(\w+):\s+\{", text, re.M):
        depth, end = 0, m.end() - 1
        for end in range(m.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        tokens = _tokens(text[m.end():end + 1])
        shapes[m.group(1)] = _object(tokens)
        assert not tokens, m.group(1)
    return shapes


class Checker:
    def __init__(self) -> None:
        self.shapes = documented()
        self.seen_optional: set[tuple[str, str]] = set()
        self.checked: set[str] = set()

    def check(self, name: str, doc: Any) -> None:
        self.checked.add(name)
        self._check(doc, self.shapes[name], name)

    def _check(self, doc: Any, shape: Any, where: str) -> None:
        if shape is SCALAR or doc is None:
            return
        if isinstance(shape, ListOf):
            assert isinstance(doc, list), where
            for i, item in enumerate(doc):
                self._check(item, shape.item, f"{where}[{i}]")
            return
        assert isinstance(doc, dict), where
        if shape.any_key is not None:
            for key, value in doc.items():
                self._check(value, shape.any_key, f"{where}.{key}")
            return
        required = {k for k, (optional, _) in shape.keys.items() if not optional}
        assert not required - set(doc), f"{where}: documented but missing: {sorted(required - set(doc))}"
        if not shape.open:
            assert not set(doc) - set(shape.keys), f"{where}: undocumented: {sorted(set(doc) - set(shape.keys))}"
        for key, (optional, sub) in shape.keys.items():
            if key in doc:
                if optional:
                    self.seen_optional.add((re.sub(r"\[\d+\]", "[]", where), key))
                self._check(doc[key], sub, f"{where}.{key}")


def test_the_notation_is_read() -> None:
    shapes = documented()
    assert set(shapes) == {"status", "ports", "orphans", "which", "which_hosts", "config", "logs", "discover",
                           "tunnels", "actions", "audit"}
    assert shapes["actions"].keys["results"][1].item.keys["facts"] == (True, SCALAR)
    assert isinstance(shapes["actions"].keys["recap"][1].any_key, Shape)


@pytest.fixture
def checker() -> Checker:
    return Checker()


def test_every_document_matches_the_docs(ws: Workspace, checker: Checker) -> None:
    b = ws.ports
    ws.extra_toml = '[hosts.dead]\naddress = "127.0.0.1"\nport = 1\nconnect_timeout = 3\n'
    alpha = ws.project("alpha", port_range=[b[0], b[3]])
    ws.project("beta", port_range=[b[4], b[7]])
    ws.project("gone", host="dead", path=ws.root / "on-dead-host")
    check = checker.check
    try:
        started = ws.json("start", "alpha", "--show-token")
        check("actions", started)
        port = started["results"][0]["facts"]["port"]
        check("status", ws.json("status", "--show-token", expect=4))
        check("which", ws.json("which", str(port), "--show-token"))
        check("which", ws.json("which", f"pid:{ws.json('status', '--only', 'alpha')['projects'][0]['pid']}"))
        check("which", ws.json("which", f"pid:{os.getpid()}"))
        check("which", ws.json("which", str(b[5])))
        check("which", ws.json("which", str(ws.root)))
        several = ws.json("which", str(port), "--host", "local,dead", expect=4)
        check("which_hosts", several)
        assert [a["project"] for a in several["answers"]] == ["alpha"] and list(several["unreachable"]) == ["dead"]
        for answer in several["answers"]:
            check("which", {"version": 1, **answer})
        check("ports", ws.json("ports", expect=4))
        check("logs", ws.json("logs", "*", expect=4))
        check("config", ws.json("config"))
        check("discover", ws.json("discover"))
        check("audit", ws.json("audit", expect=4))
        check("audit", ws.json("audit", "--only", "beta", "--fix", "--check", expect=1))
        check("actions", ws.json("adopt", "beta", "--check"))
        # Untracked: the pid file gone, the server is an orphan of alpha.
        (alpha / ".logs" / "jupyter.pid").unlink()
        orphans = ws.json("orphans", "--only", "alpha")
        assert [r["project"] for r in orphans["orphans"] if r["project"]] == ["alpha"]
        check("orphans", orphans)
        check("orphans", ws.json("orphans", expect=4))
        check("actions", ws.json("orphans", "--kill", "--check", "--only", "alpha"))
        check("status", ws.json("status", "--only", "alpha"))
        check("actions", ws.json("start", "alpha"))  # adopts it
        check("actions", ws.json("bootstrap", "beta", "--check"))
        check("actions", ws.json("restart", "alpha", "--check"))
        check("actions", ws.json("start-all", "--check", expect=4))
        check("actions", ws.json("stop", "*", expect=4))
        # A tunnel record naming this very process (alive, so listed as up, never signalled with --check).
        from lifecycle import tunnel_registry as registry

        registry.save(registry.new_record("gone", "dead", 1, 2, "http://127.0.0.1:1/lab", detached=False))
        check("tunnels", ws.json("tunnels"))
        check("actions", ws.json("close", "*", "--check"))
        registry.discard(registry.records()[0])
    finally:
        ws.cli("stop-all")
    assert checker.checked == set(checker.shapes)
    documented_optional = {(name, key) for name, shape in checker.shapes.items()
                           for key, (optional, _) in shape.keys.items() if optional}
    nested_optional = {("status.projects[]", "token_url"), ("actions.results[]", "facts"),
                       ("actions.results[]", "token_url")}
    seen = {(where, key) for where, key in checker.seen_optional}
    assert {(n, k) for n, k in documented_optional} <= seen, "documented optional keys never produced"
    assert nested_optional <= seen, sorted(seen)
