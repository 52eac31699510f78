"""The generated ``scripts/app.sh`` of a project: the lifecycle contract, rendered from its inventory entry.

Rendered here, on the controller (jinja2); the host layer only writes the
text it is given.  Nothing secret goes into the script: ``env`` variables
and server options that carry credentials are left out (the script takes
such variables from the environment it runs in), because app.sh is meant
to be committed with the project.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .config_doc import HIDDEN, mask_args, secret_env
from .host.appsh import MARKER
from .host.bootstrap import BLOCK_BEGIN, BLOCK_END
from .host.layout import APP_MODULES, APP_PATHS
from .inventory import Project
from .specs import project_spec, render, shell_quote

# Bumped whenever the template changes what a generated script does; audit warns about older ones
# and adopt updates them.
TEMPLATE_VERSION = 1


def sh_path(value: str) -> str:
    """A shell expression for an inventory path: relative to the project (``$ROOT``), under ``~``, or absolute."""
    if value == "~" or value.startswith("~/"):
        rest = value[2:]
        return '"$HOME"' + ("/" + shell_quote(rest) if rest else "")
    if os.path.isabs(value):
        return shell_quote(os.path.normpath(value))
    rel = os.path.normpath(value)
    return '"$ROOT"' if rel == "." else '"$ROOT"/' + shell_quote(rel)


def _args(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The server arguments to write, and a note for each one left out because it is a secret."""
    masked = mask_args(args)
    secret = {i for i, (a, m) in enumerate(zip(args, masked, strict=True)) if a != m}
    # `--ServerApp.token VALUE`: the option's name goes with its hidden value.
    secret |= {i - 1 for i in secret if masked[i] == HIDDEN and i > 0 and "=" not in args[i - 1]}
    kept = [a for i, a in enumerate(args) if i not in secret]
    omitted = [f"omitted: {args[i].split('=', 1)[0]} (a secret; jlc passes it from the inventory)"
               for i in sorted(secret) if args[i].startswith("--")]
    return kept, omitted


def _requirements(project: Project) -> list[str]:
    spec = project_spec(project)
    words = [shell_quote(r) for r in spec.requirements]
    if spec.requirements_file:
        words += ["-r", sh_path(spec.requirements_file)]
    return words


def render_app_sh(project: Project, inventory: Path) -> str:
    """The app.sh text for ``project``; ``inventory`` is the file the script hands to jlc when
    ``$JLC_INVENTORY`` is not set (if that file still exists where the script runs)."""
    spec = project_spec(project)
    kept, omitted = _args(project.args)
    variables = dict(project.env)
    env = [(k, shell_quote(v)) for k, v in variables.items() if not (v and secret_env(k))]
    secrets = [k for k, v in variables.items() if v and secret_env(k)]
    return render(
        "app.sh.j2",
        marker=f"{MARKER}{TEMPLATE_VERSION}. `jlc adopt {project.name}` rewrites this file from the inventory: "
               "change the inventory, not this file.",
        name=project.name, kernel_name=spec.kernel_name, display_name=spec.display_name or project.name,
        venv=sh_path(project.venv), notebook_dir=sh_path(project.notebook_dir), python=project.python,
        port_low=project.port_range[0], port_high=project.port_range[1], ip=project.ip,
        app_module=APP_MODULES[project.app], app_path=APP_PATHS[project.app],
        stop_timeout=f"{project.stop_timeout:g}", stop_ticks=max(1, math.ceil(project.stop_timeout * 2)),
        start_timeout=f"{project.start_timeout:g}", inventory=str(inventory),
        gitignore_begin=BLOCK_BEGIN,
        gitignore_block="\n".join([BLOCK_BEGIN, *spec.gitignore_block.strip("\n").splitlines(), BLOCK_END]),
        requirements=" ".join(_requirements(project)), args=" ".join(shell_quote(a) for a in kept),
        omitted=omitted, env=env, secret_env=secrets,
    )
