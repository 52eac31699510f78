"""audit: how each project differs from the lifecycle conventions, and (--fix) the safe repairs."""

from __future__ import annotations

from typing import Any

from invoke.exceptions import Exit

from .. import transport
from ..app_script import TEMPLATE_VERSION
from ..audit_ports import port_rules
from ..errors import EXIT_FAILED, EXIT_UNREACHABLE, LifecycleError, UsageError
from ..host.audit import FAIL, RULES
from ..host.results import UNREACHABLE, Result
from ..report import recap
from .common import lc_task, prepare


@lc_task(help={
    "fix": "apply the safe fixes (bootstrap's steps, moving user-level kernelspecs into the venv, removing "
           "stale pid and runtime files); the others are reported with the command or edit to make",
    "check": "with --fix: show what would change, change nothing",
    "deep": "also run each app.sh's status in a scratch copy of its project",
})
def audit(c: Any, only: str | None = None, fix: bool = False, check: bool = False, deep: bool = False,
          tag: Any = None, host: str | None = None, json: bool = False) -> None:
    """Check each project against the lifecycle conventions, rule by rule; --fix repairs what is safe."""
    if check and not fix:
        raise UsageError("--check only applies with --fix: audit without --fix changes nothing")
    reporter, inv, projects = prepare(c, "audit", only, tag, host, json)
    options = {"fix": fix, "check": check, "deep": deep, "template": TEMPLATE_VERSION}
    responses = transport.run(inv, "audit", projects, options, reporter.event)
    by_name = {p.name: p for p in projects}
    rows: list[dict[str, Any]] = []
    results: list[Result] = []
    unreachable: dict[str, str] = {}
    for host_name, resp in responses.items():
        if "unreachable" in resp:
            unreachable[host_name] = str(resp["unreachable"])
            for p in projects:
                if p.host == host_name:
                    rows.append({"name": p.name, "host": host_name, "path": p.path, "rules": []})
                    if fix:
                        r = Result(host=host_name, project=p.name, action="audit", status=UNREACHABLE,
                                   msg=unreachable[host_name])
                        reporter.event({"event": "result", "result": r.to_dict()})
                        results.append(r)
            continue
        if "error" in resp:
            raise LifecycleError(f"host {host_name}: {resp['error']}")
        results.extend(Result.from_dict(d) for d in resp["results"])
        for row in resp["projects"]:
            extra = port_rules(inv, by_name[row["name"]], resp.get("ephemeral_ports"))
            by_id = {r["id"]: r for r in row["rules"]}
            by_id.update(extra)
            row["rules"] = [by_id[rule.id] for rule in RULES if rule.id in by_id]
            rows.append(row)
    rows.sort(key=lambda r: (r["host"] != "local", r["host"], r["name"]))
    doc = {"version": 1, "rules": [{"id": r.id, "description": r.description} for r in RULES],
           "projects": rows, "results": reporter.public(results), "recap": recap(results),
           "unreachable": unreachable}
    reporter.audit(doc, fixing=fix)
    if unreachable and not json:
        for h, why in unreachable.items():
            reporter.warn(f"host {h} unreachable: {why}")
    if unreachable:
        raise Exit(code=EXIT_UNREACHABLE)
    if any(r["status"] == FAIL for row in rows for r in row["rules"]) or any(r.failed for r in results):
        raise Exit(code=EXIT_FAILED)
