"""What ``config`` shows: the resolved inventory under its documented keys, with secrets masked.

The keys are those of docs/inventory.md, and only those (internal fields such
as the split of ``requirements`` into a list and a file stay inside), so the
document is itself a valid inventory. Tokens and passwords given to the
server through ``args`` or ``env`` are the owner's secrets: hidden unless
asked for, like every other token the tool prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .inventory import Host, Inventory, Project

HIDDEN = "<hidden>"
# Keeping Labs alive and lean: timeouts in seconds ("off" when unset), sizes in bytes.
KEEP_KEYS = ("idle_timeout", "kernel_idle_timeout", "cull_connected", "restart", "restart_max", "restart_window",
             "log_max_size", "log_keep")
DEFAULT_KEYS = ("host", "port_range", "app", "stop_timeout", "start_timeout", "python", "venv", "notebook_dir",
                "ip", "requirements", "env", "args", *KEEP_KEYS)
PROJECT_KEYS = ("path", "host", "port_range", "app", "stop_timeout", "start_timeout", "python", "venv",
                "notebook_dir", "ip", "requirements", "tags", "env", "args", "display_name", *KEEP_KEYS)
HOST_KEYS = ("address", "port", "user", "identity", "connect_timeout", "answer_timeout", "forks", "known_hosts",
             "ssh_config", "python", "inventory")
# Environment variables that carry credentials: JUPYTER_TOKEN, JUPYTER_PASSWORD, AWS_SECRET_ACCESS_KEY, ...
_SECRET_ENV = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL", re.I)
# Server options whose value is a credential: --IdentityProvider.token, --ServerApp.token,
# --NotebookApp.token, --ServerApp.password, --PasswordIdentityProvider.hashed_password,
# --ServerApp.cookie_secret (not password_required, which is a switch).
_SECRET_ARG = re.compile(r"^--(?:[\w-]+\.)*[\w-]*(?:token|password|secret)$", re.I)


def secret_env(name: str) -> bool:
    return bool(_SECRET_ENV.search(name))


def mask_env(env: dict[str, str]) -> dict[str, str]:
    return {k: (HIDDEN if v and secret_env(k) else v) for k, v in env.items()}


def mask_args(args: Iterable[str]) -> list[str]:
    """Server arguments with credential values hidden (``--X.token=v`` and ``--X.token v``).

    An empty value (``--ServerApp.token=``, authentication off) is no secret and stays visible.
    """
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(HIDDEN if arg else arg)
            hide_next = False
            continue
        name, eq, value = arg.partition("=")
        if _SECRET_ARG.match(name):
            if eq:
                out.append(f"{name}={HIDDEN}" if value else arg)
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def _mask(entry: dict[str, Any]) -> dict[str, Any]:
    masked = dict(entry)
    if "env" in masked:
        masked["env"] = mask_env(masked["env"])
    if "args" in masked:
        masked["args"] = mask_args(masked["args"])
    return masked


def _project(p: Project) -> dict[str, Any]:
    values: dict[str, Any] = {
        "path": p.path, "host": p.host, "port_range": list(p.port_range), "app": p.app,
        "stop_timeout": p.stop_timeout, "start_timeout": p.start_timeout, "python": p.python, "venv": p.venv,
        "notebook_dir": p.notebook_dir, "ip": p.ip,
        # The inventory's one key: a list of specifiers, or the path of a requirements file.
        "requirements": p.requirements_file if p.requirements_file is not None else list(p.requirements),
        "tags": list(p.tags), "env": dict(p.env), "args": list(p.args), "display_name": p.display_name or p.name,
        **{k: getattr(p, k) for k in KEEP_KEYS},
    }
    values.update(_off(values))
    return {k: values[k] for k in PROJECT_KEYS}


def _off(values: dict[str, Any]) -> dict[str, Any]:
    """A timeout that is off reads ``"off"``, as in the inventory (TOML has no null)."""
    return {k: "off" for k in ("idle_timeout", "kernel_idle_timeout") if k in values and values[k] is None}


def _host(h: Host) -> dict[str, Any]:
    return {k: getattr(h, k) for k in HOST_KEYS}


def config_document(inv: Inventory, names: Iterable[str], show_token: bool = False) -> dict[str, Any]:
    """The ``config`` document for the projects ``names`` (every host and default is shown)."""
    chosen = set(names)
    defaults = {k: inv.defaults[k] for k in DEFAULT_KEYS if k in inv.defaults}
    defaults.update(_off(defaults))
    projects = {n: _project(p) for n, p in sorted(inv.projects.items()) if n in chosen}
    if not show_token:
        defaults = _mask(defaults)
        projects = {n: _mask(p) for n, p in projects.items()}
    return {"version": 1, "source": str(inv.source), "defaults": defaults,
            "hosts": {n: _host(h) for n, h in sorted(inv.hosts.items())}, "projects": projects,
            "discover": {"roots": list(inv.discover_roots)}}
