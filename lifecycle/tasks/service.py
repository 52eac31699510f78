"""service: start the supervisor at login with the host's own service manager (systemd user unit, launchd agent)."""

from __future__ import annotations

import os
from typing import Any

from .. import transport
from ..errors import EXIT_UNREACHABLE, LifecycleError
from ..host.results import FAILED, UNREACHABLE, Result
from ..host.service import SUPERVISOR
from ..inventory import LOCAL, USER_INVENTORY, Inventory
from ..report import Reporter, service_text
from ..selection import one_host
from ..service_units import fallback, render
from .common import context_host, finish, lc_task, load
from .flags import SERVICE_ACTION


def _call(inv: Inventory, where: str, options: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    answer = transport.call(inv, where, transport.build_request("service", where, [], options), reporter.event)
    if "unreachable" in answer:
        raise LifecycleError(f"host {where} unreachable: {answer['unreachable']}", EXIT_UNREACHABLE)
    if "error" in answer:
        raise LifecycleError(f"host {where}: {answer['error']}")
    return answer


@lc_task(kinds={"action": SERVICE_ACTION}, help={
    "action": "install, uninstall or status",
    "host": "the inventory host to install on (default: this machine); its supervisor reads its own inventory",
    "linger": "systemd: also run loginctl enable-linger, so the supervisor runs from boot without a login",
})
def service(c: Any, action: str, host: str | None = None, linger: bool = False, check: bool = False,
            json: bool = False) -> None:
    """Install, remove or show the supervisor as a systemd user unit or a launchd agent (start at login)."""
    reporter = Reporter("service", as_json=json)
    inv, forced = context_host(c, load(reporter, c))
    where = forced or one_host(inv, host or LOCAL, "service")
    remote = where != LOCAL
    # The supervisor runs where the servers are, with that machine's own inventory.
    inventory = str(inv.source) if not remote else (inv.hosts[where].inventory or USER_INVENTORY)
    probe = _call(inv, where, {"action": "probe", "inventory": inventory}, reporter)
    manager, command, paths = probe["manager"], probe.get("command"), probe.get("paths") or {}
    state_env = {"JLC_STATE_DIR": os.environ["JLC_STATE_DIR"]} if not remote and os.environ.get("JLC_STATE_DIR") else {}
    expected = {}
    if manager != "none" and command:
        expected = {paths["unit"]: render(manager, command, str(probe["inventory"]), paths.get("log", ""), state_env)}
    if action == "status":
        doc = _call(inv, where, {"action": "status", "files": expected}, reporter)
        doc.update(host=where, command=command, inventory=probe["inventory"])
        doc.pop("version", None)
        if json:
            reporter.json({"version": 1, **doc})
        else:
            print(service_text(doc))
        return
    problem = _cannot(where, action, manager, command, probe)
    if problem:
        r = Result(host=where, project=SUPERVISOR, action="unit", status=FAILED, msg=problem)
        reporter.event({"event": "result", "result": r.to_dict()})
        finish(reporter, [r])
        return
    options = {"action": action, "files": expected, "linger": linger, "remote": remote, "check": check,
               "log_dir": os.path.dirname(paths["log"]) if paths.get("log") else None}
    request = transport.build_request("service", where, [], options)
    answer = transport.call(inv, where, request, reporter.event)
    if "unreachable" in answer:
        r = Result(host=where, project=SUPERVISOR, action=action, status=UNREACHABLE, msg=str(answer["unreachable"]))
        reporter.event({"event": "result", "result": r.to_dict()})
        finish(reporter, [r])
        return
    finish(reporter, [Result.from_dict(d) for d in answer["results"]])


def _cannot(where: str, action: str, manager: str, command: str | None, probe: dict[str, Any]) -> str:
    """Why install cannot go ahead on this host (with what to do instead), or ''."""
    if action != "install":
        return ""
    home = str(probe.get("home") or "~")
    if not command:
        return (f"jupyter-lifecycle is not installed on {where} (looked beside its python, on PATH and in "
                f"{home}/.local/bin): install it there (pipx install jupyter-lifecycle), then run this again")
    if manager == "none":
        log = os.path.join(home, ".local", "state", "jupyter-lifecycle", "supervise.log")
        return (f"no service manager on {where}: systemd is not running there and it is not macOS "
                "(JLC_SERVICE_MANAGER=systemd writes a unit anyway); run the supervisor yourself:\n"
                + fallback(command, str(probe["inventory"]), log))
    if not probe.get("inventory_exists"):
        return (f"no inventory at {probe['inventory']} on {where}: the supervisor there reads that host's own "
                "inventory (the host's `inventory` key, else ~/.config/jupyter-lifecycle/inventory.toml)")
    return ""
