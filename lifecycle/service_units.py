"""The service manager's files for the supervisor, rendered here on the controller (jinja2 templates).

``host/service.py`` only makes a file hold the text it is given.  The unit runs the installed
command's absolute path with ``supervise``, with the inventory's absolute path and a minimal,
explicit environment (``PATH`` holds the command's own directory and the system's).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from typing import Any

from .host.service import LABEL, MARKER

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@functools.cache
def _env() -> Any:
    import jinja2  # deferred: only service install/status renders these

    env = jinja2.Environment(loader=jinja2.PackageLoader("lifecycle", "templates"), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=jinja2.select_autoescape(["plist.j2"]))
    env.filters["systemd_arg"] = systemd_arg
    env.filters["systemd_text"] = systemd_text
    return env


def systemd_text(value: str) -> str:
    """Free text in a unit: ``%`` starts a specifier, so it is doubled."""
    return value.replace("%", "%%").replace("\n", " ")


def systemd_arg(value: str) -> str:
    """One word of ExecStart= or Environment=, quoted the way systemd splits them."""
    text = value.replace("%", "%%").replace("$", "$$")
    if text and not re.search(r'[\s"\'\\;]', text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def environment(command: str, inventory: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"JLC_INVENTORY": inventory, "PATH": os.path.dirname(command) + ":" + SYSTEM_PATH}
    env.update(extra or {})
    return env


def render(manager: str, command: str, inventory: str, log: str = "",
           extra_env: dict[str, str] | None = None) -> str:
    """The unit (systemd) or agent plist (launchd) that runs ``command supervise``."""
    values = {"marker": MARKER, "argv": [command, "supervise"], "inventory": inventory,
              "env": environment(command, inventory, extra_env), "label": LABEL, "log": log}
    name = {"systemd": "jupyter-lifecycle.service.j2", "launchd": "jupyter-lifecycle.plist.j2"}[manager]
    return str(_env().get_template(name).render(**values))


def fallback(command: str, inventory: str, log: str) -> str:
    """What to run where no service manager is: under tmux now, and from cron at every boot."""
    env = f"JLC_INVENTORY={shlex.quote(inventory)}"
    line = f"{env} {shlex.quote(command)} supervise"
    return (f"run it under tmux:  tmux new-session -d -s jlc-supervise {shlex.quote(line)}\n"
            f"or start it at boot from cron (crontab -e):  @reboot {line} >> {shlex.quote(log)} 2>&1")
