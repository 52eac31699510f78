"""Tokens: shown when the owner asks (--show-token, --foreground), hidden everywhere else."""

from __future__ import annotations

import json
import re

from conftest import Workspace, wait_for

LOGIN = re.compile(r"^    login URL: (http://127\.0\.0\.1:(\d+)/lab\?token=(\w+))$", re.M)


def test_show_token_prints_the_login_url_in_text_mode(ws: Workspace) -> None:
    b = ws.ports
    ws.project("alpha", port_range=[b[0], b[3]])
    ws.project("beta", port_range=[b[4], b[7]])
    try:
        started = ws.cli("start-all", "--show-token")
        assert started.returncode == 0, started.stderr
        logins = {int(port): url for url, port, _ in LOGIN.findall(started.stdout)}
        status = ws.json("status", "--show-token")["projects"]
        assert logins == {r["port"]: r["token_url"] for r in status}  # one per project, the real token

        again = ws.cli("start", "alpha", "--show-token")  # already running: ok, and still the URL
        assert again.stdout.startswith("ok: [local] alpha: already running")
        assert [url for url, _, _ in LOGIN.findall(again.stdout)] == [status[0]["token_url"]]

        restarted = ws.cli("restart", "beta", "--show-token")
        assert restarted.returncode == 0, restarted.stderr
        (url, port, token), = LOGIN.findall(restarted.stdout)
        assert ws.json("status", "--only", "beta", "--show-token")["projects"][0]["token_url"] == url

        for quiet in (ws.cli("start", "alpha"), ws.cli("start-all"), ws.cli("status")):
            assert "token=" not in quiet.stdout and "login URL" not in quiet.stdout
        doc = ws.json("start", "alpha")
        assert "token_url" not in doc["results"][0] and "token=" not in json.dumps(doc)
    finally:
        ws.cli("stop-all")


def test_foreground_prints_the_login_url_once(ws: Workspace) -> None:
    ws.project("alpha")
    with ws.streaming("start", "alpha", "--foreground") as seen:
        wait_for(lambda: any(LOGIN.match(line.rstrip("\n")) for line in seen), 90, "the login URL")
        # Jupyter prints its URL (with the token) in the log too: those copies stay hidden.
        wait_for(lambda: any("token=<hidden>" in line for line in seen), 60, "the log's own URL, hidden")
        token = next(m.group(3) for line in seen if (m := LOGIN.match(line.rstrip("\n"))))
        assert sum(line.count(token) for line in seen) == 1
    assert any("stopped pid" in line for line in seen)
