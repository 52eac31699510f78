"""adopt: give a project a generated scripts/app.sh that keeps the whole lifecycle contract."""

from __future__ import annotations

from typing import Any

from ..app_script import render_app_sh
from ..inventory import Inventory, Project
from .common import lc_task, run_action


def _scripts(inv: Inventory, projects: list[Project]) -> dict[str, Any]:
    return {"scripts": {p.name: render_app_sh(p, inv.source) for p in projects}}


@lc_task(help={
    "force": "replace a scripts/app.sh that jupyter-lifecycle did not write (the original is kept as app.sh.orig)",
    "check": "show the diff of what would be written, write nothing",
})
def adopt(c: Any, name: str, force: bool = False, tag: Any = None, host: str | None = None, check: bool = False,
          json: bool = False) -> None:
    """Write scripts/app.sh from the template: hands each command to jlc when on PATH, else runs it itself."""
    run_action(c, "adopt", name, tag, host, {"check": check, "force": force}, json, per_project=_scripts)
