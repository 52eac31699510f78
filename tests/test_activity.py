"""The tool's own looks at a server never count as user activity (jupyter_server's idle clock)."""

from __future__ import annotations

from test_lifecycle import api, server_info, start_kernel

from conftest import SLOW, Workspace, wait_for


def test_status_does_not_reset_the_idle_clock(ws: Workspace) -> None:
    path = ws.project("p1")
    assert ws.cli("start", "p1", "--no-open").returncode == 0
    pid = int((path / ".logs" / "jupyter.pid").read_text())
    start_kernel(path, pid)
    info = server_info(path, pid)
    base, token = str(info["url"]).rstrip("/"), str(info["token"])

    def last_activity() -> str:
        doc = api(f"{base}/api/status", token)
        assert isinstance(doc, dict)
        return str(doc["last_activity"])

    # The new kernel's own messages move the clock until it settles: wait until two looks agree.
    seen: list[str] = []

    def settled() -> bool:
        seen.append(last_activity())
        return len(seen) > 1 and seen[-1] == seen[-2]

    wait_for(settled, SLOW, "the server's last_activity to settle", interval=1.0)
    before = seen[-1]
    for _ in range(3):
        row = ws.json("status")["projects"][0]
        assert row["kernels"] == 1  # status did ask the server about its kernels
    assert ws.cli("which", f"pid:{pid}").returncode == 0
    # cull's probe reads /api/status, /api/kernels and /api/terminals: none of it is activity.
    for args in (["cull", "--idle", "1h"], ["cull", "--kernels", "--idle", "1h"], ["cull", "--check", "--idle", "1s"]):
        looked = ws.cli(*args)
        assert looked.returncode == 0 and "p1" in looked.stdout, looked.stderr + looked.stdout
    assert last_activity() == before
    # The probe can fail: a plain authenticated request does move the clock.
    api(f"{base}/api/kernels", token)
    assert last_activity() != before
    assert ws.cli("stop", "p1").returncode == 0
