"""Talking to a running Jupyter server's REST API (stdlib only, proxies bypassed)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from .runtime import ServerInfo

# Loopback traffic must never go through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# How long a request may take.  A local server answers in milliseconds, but on a loaded machine
# (a 2-core box at load 10) a second or more is normal: a tight limit made a running server look
# "starting" and its kernels unknown.  Only a hung server costs the full time.
ANSWER_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


def base_url(ip: str, port: int) -> str:
    """Where to reach a server bound to ``ip:port`` from this host."""
    if ip in ("", "0.0.0.0", "*"):
        ip = "127.0.0.1"
    elif ip == "::":
        ip = "::1"
    if ":" in ip:
        ip = f"[{ip}]"
    return f"http://{ip}:{port}"


def _request(url: str, token: str = "", method: str = "GET", timeout: float = REQUEST_TIMEOUT) -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"token {token}")
    with _OPENER.open(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def answers(base: str, timeout: float = ANSWER_TIMEOUT) -> bool:
    """Whether ``GET {base}/api`` answers (it needs no token)."""
    try:
        data = _request(base + "/api", timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return isinstance(data, dict) and "version" in data


def kernels(base: str, token: str, timeout: float = REQUEST_TIMEOUT) -> Optional[List[Dict[str, Any]]]:
    """The server's kernels with their ``execution_state``; None when it cannot be asked."""
    try:
        # no_track_activity: our looks must not count as user activity, or polling status would keep
        # every server "active" forever (and defeat Jupyter's own idle culler).
        data = _request(base + "/api/kernels?no_track_activity=1", token=token, timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, list) else None


def _read(base: str, path: str, token: str, timeout: float = 2.0) -> Any:
    """GET an API path as a look that is not user activity; None when the server cannot be asked.

    Every read the tool makes goes through here or ``kernels``: jupyter_server counts any other
    authenticated request as activity, which would keep idle servers alive and defeat culling.
    """
    sep = "&" if "?" in path else "?"
    try:
        return _request(f"{base}{path}{sep}no_track_activity=1", token=token, timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def activity(base: str, token: str, timeout: float = 2.0) -> Optional[Dict[str, Any]]:
    """``/api/status``: ``started``, ``last_activity`` (API, kernels, terminals), ``kernels``, ``connections``."""
    data = _read(base, "/api/status", token, timeout)
    return data if isinstance(data, dict) and "last_activity" in data else None


def terminals(base: str, token: str, timeout: float = 2.0) -> List[Dict[str, Any]]:
    """The server's terminals with their ``last_activity`` (none when terminals are off or unreadable)."""
    data = _read(base, "/api/terminals", token, timeout)
    return data if isinstance(data, list) else []


def kernel(base: str, token: str, kernel_id: str, timeout: float = 2.0) -> Optional[Dict[str, Any]]:
    """One kernel's model as it is now; None when it is gone or the server cannot be asked."""
    data = _read(base, f"/api/kernels/{urllib.parse.quote(kernel_id)}", token, timeout)
    return data if isinstance(data, dict) else None


def shutdown_kernel(base: str, token: str, kernel_id: str, timeout: float = 10.0) -> bool:
    """Shut one kernel down through the server (the server stays); True when it accepted."""
    try:
        _request(f"{base}/api/kernels/{urllib.parse.quote(kernel_id)}?no_track_activity=1", token=token,
                 method="DELETE", timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return True


def server_kernels(info: Optional[ServerInfo]) -> Optional[List[Dict[str, Any]]]:
    """A server's kernels, asked with the token from its runtime file; None when it cannot be asked."""
    if info is None or not info.token:
        return None
    return kernels(info.api_base, info.token)


def busy_count(kernel_list: Optional[List[Dict[str, Any]]]) -> int:
    return sum(1 for k in kernel_list or () if k.get("execution_state") == "busy")


def shutdown(base: str, token: str, timeout: float = REQUEST_TIMEOUT) -> bool:
    """Ask the server to shut down (it stops its kernels cleanly first)."""
    if not token:
        return False
    try:
        _request(base + "/api/shutdown", token=token, method="POST", timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return True
