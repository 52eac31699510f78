"""Tasks over the whole inventory: status, config."""

from __future__ import annotations

from typing import Any

from .. import transport
from ..report import Reporter
from .common import boundary, choose, lc_task, load, refuse_remote_context


@lc_task(help={"show_token": "show URLs with their tokens (for your eyes only)"})
@boundary
def status(c: Any, only: str | None = None, tag: Any = None, host: str | None = None,
           json: bool = False, show_token: bool = False) -> None:
    """One table of every project: state, pid, port, URL, uptime, kernels, memory."""
    refuse_remote_context(c)
    reporter = Reporter("status", as_json=json, show_token=show_token)
    inv = load(reporter)
    projects = choose(inv, only, tag, host)
    responses = transport.run(inv, "status", projects, {"show_token": show_token}, reporter.event)
    doc: dict[str, Any] = {"version": 1, "projects": [], "unmanaged": []}
    for resp in responses.values():
        doc["projects"].extend(resp["projects"])
        doc["unmanaged"].extend(resp["unmanaged"])
    doc["projects"].sort(key=lambda r: (r["host"] != "local", r["host"], r["name"]))
    reporter.status(doc)


@lc_task()
@boundary
def config(c: Any, only: str | None = None, tag: Any = None, host: str | None = None, json: bool = False) -> None:
    """The resolved inventory (defaults applied) and the file it came from."""
    reporter = Reporter("config", as_json=json)
    inv = load(reporter)
    chosen = {p.name for p in choose(inv, only, tag, host)}
    doc = inv.to_dict()
    doc["projects"] = {n: p for n, p in doc["projects"].items() if n in chosen}
    if json:
        reporter.json(doc)
        return
    print(f"inventory: {doc['source']}")
    print("defaults:")
    for key, value in doc["defaults"].items():
        print(f"  {key} = {value!r}")
    for name, h in doc["hosts"].items():
        print(f"host {name}: " + ", ".join(f"{k}={v!r}" for k, v in h.items() if v is not None and k != "name"))
    for name, p in doc["projects"].items():
        print(f"project {name}:")
        for key, value in p.items():
            if key != "name":
                print(f"  {key} = {value!r}")
