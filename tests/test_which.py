"""which always says what it found, and gives the login URL only when asked for."""

from __future__ import annotations

import socket

from conftest import Workspace


def found(ws: Workspace, *args: str) -> str:
    proc = ws.cli("which", *args)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("found:"), proc.stdout
    return first.split(":", 1)[1].strip()


def test_nothing_found_is_said(ws: Workspace) -> None:
    ws.project("tabby", port_range=[ws.ports[0], ws.ports[3]])
    outside = ws.root / "elsewhere"
    outside.mkdir()
    assert found(ws, str(ws.ports[1])) == "free, in the range of tabby"
    assert found(ws, f"port:{ws.ports[8]}") == "free, outside every project's range"
    assert found(ws, str(outside)) == "no project, and no Jupyter server's root holds it"
    assert found(ws, str(ws.root / "projects" / "tabby")) == "in project tabby; tabby is not running"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ws.ports[2]))
        holder.listen()
        assert found(ws, str(ws.ports[2])).startswith("used by ")
        assert found(ws, str(ws.ports[2])).endswith("not a Jupyter server; in the range of tabby")


def test_token_only_with_show_token(ws: Workspace) -> None:
    ws.project("tabby", port_range=[ws.ports[0], ws.ports[3]])
    started = ws.json("start", "tabby")
    port = started["results"][0]["facts"]["port"]
    try:
        assert found(ws, str(port)) == "the Jupyter server of project tabby"
        plain = ws.json("which", str(port))
        assert plain["project"] == "tabby" and "token_url" not in plain and "token" not in plain["url"]
        assert "token=" not in ws.cli("which", str(port)).stdout
        shown = ws.json("which", str(port), "--show-token")
        assert shown["token_url"].startswith(plain["url"] + "?token=")
        assert shown["token_url"] in ws.cli("which", str(port), "--show-token").stdout
        pid = str(started["results"][0]["facts"]["pid"])
        assert found(ws, f"pid:{pid}") == "the Jupyter server of project tabby"
        assert "token_url" not in ws.json("which", f"pid:{pid}")
    finally:
        assert ws.cli("stop", "tabby").returncode == 0
