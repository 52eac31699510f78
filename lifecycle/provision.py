"""psutil on a remote host: copied from here when the ABI matches, else installed there with pip."""

from __future__ import annotations

import io
import os
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors_ssh import HostUnreachable
from .inventory import Host

Emit = Callable[[dict[str, Any]], None]
Send = Callable[[dict[str, Any], bytes], tuple[int, dict[str, Any]]]

NEED_PSUTIL = 3
PIP_TIMEOUT = 300.0


def psutil_version() -> str:
    import psutil

    return str(psutil.__version__)


def provision_psutil(conn: Any, target: Host, need: dict[str, Any], emit: Emit, send: Send) -> None:
    """Make psutil importable on the host, in a user-owned directory keyed by version and ABI.

    ``send(header, payload)`` runs the boot script there with that stdin (remote_run.exec_boot).
    """
    import platform
    import sys
    import sysconfig

    import psutil

    here = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}-{''.join(platform.libc_ver())}"
    version = psutil_version()
    if need.get("tag") == here and os.environ.get("JLC_NO_PSUTIL_COPY") != "1":
        # Same interpreter ABI and platform: our own psutil works there as is.
        buf = io.BytesIO()
        root = Path(psutil.__file__).parent
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and "tests" not in path.parts:
                    zf.write(path, "psutil/" + str(path.relative_to(root)))
        data = buf.getvalue()
        emit({"event": "progress", "project": target.name, "msg": f"copying psutil {version} to the host"})
        status, doc = send({"psutil": version, "provision": "psutil", "layer_len": len(data)},
                            data)
        if status == 0:
            return
        raise HostUnreachable(f"could not copy psutil to {target.name}: {doc}")
    emit({"event": "progress", "project": target.name, "msg": f"installing psutil {version} on the host"})
    deps = str(need.get("deps"))
    python = shlex.quote(str(need.get("python") or target.python))
    cmd = (f"{python} -m pip install --quiet --disable-pip-version-check --no-input "
           f"--target {shlex.quote(deps + '.tmp')} psutil=={shlex.quote(version)} && "
           f"mv {shlex.quote(deps + '.tmp')} {shlex.quote(deps)}")
    from invoke.exceptions import CommandTimedOut

    # pip is silent while it works, so no heartbeat tells a slow index from a frozen host: a bound instead.
    limit = max(PIP_TIMEOUT, target.answer_timeout)
    try:
        result = conn.run(cmd, hide=True, warn=True, in_stream=False, pty=False, timeout=limit)
    except CommandTimedOut:
        raise HostUnreachable(f"installing psutil on {target.name} did not finish within {limit:g}s") from None
    if result.ok:
        return
    why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["pip is not available"]
    raise HostUnreachable(f"psutil is missing on {target.name} and could not be installed ({why[0]}); "
                          + psutil_hint(target, need))


def psutil_hint(target: Host, need: dict[str, Any]) -> str:
    """What to install by hand, from what the host said of its interpreter (``need``).

    ``pip install --user`` is no advice where PEP 668 applies (Debian 12+, Ubuntu 23.04+ refuse it
    with "externally-managed-environment") or where there is no pip: the distro's package, or a venv
    of the user's own that the host's ``python`` then names (by absolute path: no shell expands it).
    """
    python = str(need.get("python") or target.python)
    if need.get("pip") and not need.get("externally_managed"):
        return (f"install it there with the system package (python3-psutil) or "
                f"'{python} -m pip install --user psutil', then rerun")
    # The boot script's cache is ~/.cache/jupyter-lifecycle/...: the remote home, for an absolute path.
    deps = str(need.get("deps") or "")
    home = deps.split("/.cache/jupyter-lifecycle/")[0] if "/.cache/jupyter-lifecycle/" in deps else "~"
    venv = f"{home}/.local/share/jupyter-lifecycle/venv"
    managed = (f"{python} is managed by the system (PEP 668: pip install --user is refused there), so "
               if need.get("externally_managed") else f"{python} has no pip, so ")
    use = (f"rerun with JLC_REMOTE_PYTHON={venv}/bin/python" if target.adhoc else
           f"set hosts.{target.name}.python = \"{venv}/bin/python\" in the inventory; then rerun")
    return (f"{managed}install the system package ('sudo apt install python3-psutil'; python3-psutil on Fedora "
            f"too), or make a venv of your own there ('{python} -m venv {venv} && {venv}/bin/pip install psutil'; "
            f"Debian and Ubuntu need the python3-venv package for it) and {use}")
