"""Turning inventory projects into host-layer specs (templates rendered here, on the controller)."""

from __future__ import annotations

import functools
import os
import re
import shlex

from .host.layout import APP_MODULES, ISOLATION
from .host.spec import ProjectSpec
from .inventory import Project

# What the tool itself needs in every venv, by app.
_APP_PACKAGES = {"lab": "jupyterlab", "notebook": "notebook", "server": "jupyter-server"}


@functools.cache
def _env():  # type: ignore[no-untyped-def]
    import jinja2  # deferred: only changing tasks render templates

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lifecycle", "templates"),
        keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
    )
    # Shell templates (app.sh) quote every value they paste.
    env.filters["sh"] = shell_quote
    return env


def shell_quote(value: object) -> str:
    """``value`` as one bash word.  Text with ``$`` or backquotes is written ``$'...'``: in single quotes
    it is just as literal, but shellcheck takes it for a forgotten expansion (SC2016)."""
    text = str(value)
    if not any(c in text for c in "$`") and text.isprintable():
        return shlex.quote(text)
    escaped = "".join({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t"}.get(c, c)
                      if c.isprintable() or c in "\n\t" else _escape(c) for c in text)
    return f"$'{escaped}'"


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\U{code:08x}"


def render(template: str, **values: object) -> str:
    return str(_env().get_template(template).render(**values))


def _name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else ""


def requirements(project: Project) -> tuple[str, ...]:
    """The project's requirements plus what the tool needs (app package, ipykernel) unless listed."""
    reqs = list(project.requirements)
    listed = {_name(r) for r in reqs}
    for needed in (_APP_PACKAGES[project.app], "ipykernel"):
        if _name(needed) not in listed:
            reqs.append(needed)
    return tuple(reqs)


def gitignore_block(project: Project) -> str:
    venv_inside = not os.path.isabs(os.path.expanduser(project.venv)) and not project.venv.startswith("..")
    return render(
        "gitignore.j2",
        isolation_dirs=[rel.split("/")[0] if rel.startswith(".cache") else rel for _, rel in ISOLATION],
        venv_inside=venv_inside, venv=os.path.normpath(project.venv),
    )


def project_spec(project: Project) -> ProjectSpec:
    assert project.app in APP_MODULES
    return ProjectSpec(
        name=project.name, path=project.path, venv=project.venv, python=project.python,
        app=project.app, port_range=project.port_range, ip=project.ip,
        notebook_dir=project.notebook_dir, requirements=requirements(project),
        requirements_file=project.requirements_file, env=dict(project.env), args=project.args,
        stop_timeout=project.stop_timeout, start_timeout=project.start_timeout,
        display_name=project.display_name or project.name, gitignore_block=gitignore_block(project),
        idle_timeout=project.idle_timeout, kernel_idle_timeout=project.kernel_idle_timeout,
        cull_connected=project.cull_connected, restart=project.restart, restart_max=project.restart_max,
        restart_window=project.restart_window, log_max_size=project.log_max_size, log_keep=project.log_keep,
    )
