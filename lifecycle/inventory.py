"""Loading and validating ``inventory.toml`` into frozen dataclasses (no side effects)."""

from __future__ import annotations

import ipaddress
import math
import os
import posixpath
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InventoryError
from .host.fsutil import CONFIG_FILE_LIMIT, UnreadableFile, read_small
from .units import UnitError, parse_duration, parse_size

LOCAL = "local"
APPS = ("lab", "notebook", "server")
RESTART_POLICIES = ("no", "on-failure", "always")
# Always fullmatch: with match and "$", "name\n" would pass ("$" matches before a final newline).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'"
# Seconds: a timeout longer than a day is a typo, and far larger ones overflow the clocks we wait on.
MAX_SECONDS = 86400
MAX_FORKS = 256
DEFAULT_REQUIREMENTS = ("jupyterlab", "ipykernel")
USER_INVENTORY = "~/.config/jupyter-lifecycle/inventory.toml"

BUILTIN_DEFAULTS: dict[str, Any] = {
    "host": LOCAL,
    "port_range": [8888, 8899],
    "app": "lab",
    "stop_timeout": 10,
    "start_timeout": 60,
    "python": "python3",
    "venv": ".venv",
    "notebook_dir": ".",
    "ip": "127.0.0.1",
    "requirements": list(DEFAULT_REQUIREMENTS),
    "env": {},
    "args": [],
    # Keeping Labs alive and lean (docs/inventory.md, "Idle cull, restarts, logs").
    "idle_timeout": "off",
    "kernel_idle_timeout": "off",
    "cull_connected": False,
    "restart": "no",
    "restart_max": 5,
    "restart_window": "10m",
    "log_max_size": "10M",
    "log_keep": 3,
}
PROJECT_ONLY = {"path", "tags", "display_name"}
PROJECT_KEYS = set(BUILTIN_DEFAULTS) | PROJECT_ONLY
HOST_KEYS = {"address", "port", "user", "identity", "forks", "known_hosts", "ssh_config", "python", "inventory",
             "connect_timeout", "answer_timeout"}
DISCOVER_KEYS = {"roots"}
TOP_KEYS = {"defaults", "hosts", "projects", "discover"}


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    forks: int = 5
    known_hosts: str | None = None
    ssh_config: str | None = None
    python: str = "python3"
    inventory: str | None = None
    connect_timeout: float = 10.0
    # How long the host may stay silent (its host layer sends a heartbeat while it works),
    # and how long a look (status, ports, ...) may take in all.
    answer_timeout: float = 60.0
    # Reached as given to -H, named in no inventory (so `jlc trust NAME` cannot name it): not a key.
    adhoc: bool = False
    # Further keys to offer after ``identity`` (an ad-hoc host given -i several times); no inventory key.
    more_identities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Project:
    name: str
    path: str
    host: str = LOCAL
    port_range: tuple[int, int] = (8888, 8899)
    app: str = "lab"
    stop_timeout: float = 10
    start_timeout: float = 60
    python: str = "python3"
    venv: str = ".venv"
    notebook_dir: str = "."
    ip: str = "127.0.0.1"
    requirements: tuple[str, ...] = DEFAULT_REQUIREMENTS
    requirements_file: str | None = None
    tags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    display_name: str = ""
    idle_timeout: float | None = None
    kernel_idle_timeout: float | None = None
    cull_connected: bool = False
    restart: str = "no"
    restart_max: int = 5
    restart_window: float = 600.0
    log_max_size: int = 10 * 1024**2
    log_keep: int = 3

    def to_dict(self) -> dict[str, Any]:
        """The inventory keys."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["port_range"] = list(self.port_range)
        out["requirements"] = list(self.requirements)
        out["tags"] = list(self.tags)
        out["env"] = dict(self.env)
        out["args"] = list(self.args)
        return out


@dataclass(frozen=True)
class Inventory:
    source: Path
    projects: dict[str, Project]
    hosts: dict[str, Host]
    defaults: dict[str, Any]
    discover_roots: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "source": str(self.source),
            "defaults": self.defaults,
            "hosts": {n: {f.name: getattr(h, f.name) for f in fields(h) if f.name not in ("adhoc", "more_identities")}
                      for n, h in self.hosts.items()},
            "projects": {n: p.to_dict() for n, p in self.projects.items()},
        }


def find_inventory(cwd: Path | None = None) -> Path:
    """$JLC_INVENTORY, else the nearest inventory.toml upward from cwd, else the user's one."""
    explicit = os.environ.get("JLC_INVENTORY")
    if explicit:
        return Path(explicit).expanduser()
    here = (cwd or Path.cwd()).absolute()
    for d in (here, *here.parents):
        candidate = d / "inventory.toml"
        if candidate.is_file():
            return candidate
    user = Path(USER_INVENTORY).expanduser()
    if user.is_file():
        return user
    raise InventoryError(
        f"no inventory.toml found in {here} or its parents, nor at {USER_INVENTORY}; "
        "create one or set JLC_INVENTORY"
    )


def one_line(text: str) -> str:
    """``text`` with newlines and other unprintable characters escaped: an error stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _seconds(value: Any) -> bool:
    """A usable timeout: a positive, finite number no larger than MAX_SECONDS (nan and inf are not)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= MAX_SECONDS)


def _bindable_address(value: str) -> bool:
    """An IP literal or ``localhost``; other host names are refused so the bind address never
    depends on what a name resolves to on the day."""
    if value == "localhost":
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _nul_strings(data: Any) -> list[tuple[str, ...]]:
    """Where a key or string value holds a NUL byte (no OS call accepts one), as key paths.

    Iterative: the document may nest as deep as the TOML parser allowed.
    """
    found: list[tuple[str, ...]] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                found.append(where)
        elif isinstance(value, dict):
            for k, v in value.items():
                if "\0" in k:
                    found.append((*where, k))
                stack.append(((*where, k), v))
        elif isinstance(value, list):
            stack.extend((where, v) for v in value)
    return sorted(found)


class _Locator:
    """Finds the line of a table or key in the TOML text, for error messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str, key: str | None = None) -> int | None:
        parts = table.split(".")
        header = re.compile(
            r"^\s*\[\s*" + r"\s*\.\s*".join(rf"(?:{re.escape(p)}|\"{re.escape(p)}\"|'{re.escape(p)}')" for p in parts)
            + r"\s*\]\s*(#.*)?$"
        )
        start = next((i for i, ln in enumerate(self.lines) if header.match(ln)), None)
        if start is None:
            return None
        if key is None:
            return start + 1
        key_re = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
        for i in range(start + 1, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[i]):
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1


class _Loader:
    def __init__(self, source: Path, text: str, remote: str | None = None) -> None:
        self.source = source
        self.loc = _Locator(text)
        # Set when this is a remote host's own inventory: its local projects live on that host.
        self.remote = remote

    def fail(self, table: str, key: str | None, problem: str) -> InventoryError:
        line = self.loc.line(table, key)
        where = f"{self.source}:{line}" if line else str(self.source)
        dotted = f"{table}.{key}" if key else table
        return InventoryError(one_line(f"{where}: {dotted}: {problem}"))

    def check_keys(self, table: str, data: dict[str, Any], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(table, key, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def value(self, table: str, key: str, value: Any) -> Any:
        """Check one project/defaults value's type and range; return it normalised."""

        def bad(what: str) -> InventoryError:
            return self.fail(table, key, f"must be {what}, got {value!r}")

        if key == "port_range":
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                raise bad("[low, high] with two integers")
            low, high = value
            if not (1024 <= low <= 65535 and 1024 <= high <= 65535):
                raise self.fail(table, key, f"[{low}, {high}] is outside 1024-65535")
            if low > high:
                raise self.fail(table, key, f"[{low}, {high}] is reversed (low must be <= high)")
            return (low, high)
        if key == "app":
            if value not in APPS:
                raise bad("one of " + ", ".join(APPS))
            return value
        if key in ("stop_timeout", "start_timeout"):
            if not _seconds(value):
                raise bad(f"a positive number of seconds, at most {MAX_SECONDS}")
            return float(value)
        if key in ("path", "host", "python", "venv", "notebook_dir", "ip", "display_name"):
            if not isinstance(value, str) or not value.strip():
                raise bad("a non-empty string")
            if key == "ip" and not _bindable_address(value):
                raise bad("an IP address (127.0.0.1, ::1; 0.0.0.0 or :: for every interface) or localhost")
            return value
        if key in ("tags", "args"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad("a list of strings")
            return tuple(value)
        if key == "requirements":
            if isinstance(value, str) and value.strip():
                return value
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise bad("a list of requirement strings, or a path to a requirements file")
            return tuple(value)
        if key in ("idle_timeout", "kernel_idle_timeout", "restart_window"):
            try:
                return parse_duration(value, allow_off=key != "restart_window")
            except UnitError as exc:
                raise bad(str(exc)) from None
        if key == "log_max_size":
            try:
                return parse_size(value)
            except UnitError as exc:
                raise bad(str(exc)) from None
        if key in ("restart_max", "log_keep"):
            # log_keep files are renamed one by one at every rotation: keep it a handful.
            high = 100 if key == "log_keep" else 1000
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise bad(f"a positive integer, at most {high}")
            return value
        if key == "cull_connected":
            if not isinstance(value, bool):
                raise bad("true or false")
            return value
        if key == "restart":
            if value not in RESTART_POLICIES:
                raise bad("one of " + ", ".join(f'"{p}"' for p in RESTART_POLICIES))
            return value
        if key == "env":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise bad("a table of string values")
            for name in value:
                if not name or "=" in name:
                    raise self.fail(table, key, f"variable name {name!r} is not usable (empty, or holds '=')")
            return tuple(sorted(value.items()))
        raise self.fail(table, key, "unknown key")

    def host(self, name: str, data: Any) -> Host:
        table = f"hosts.{name}"
        if not isinstance(data, dict):
            raise self.fail("hosts", name, "must be a table")
        if name == LOCAL:
            raise self.fail(table, None, "'local' is reserved for this machine")
        if not NAME_RE.fullmatch(name):
            raise self.fail(table, None, f"name {NAME_RULE}")
        self.check_keys(table, data, HOST_KEYS)
        if not isinstance(data.get("address"), str) or not data["address"].strip():
            raise self.fail(table, "address", "is required (anything ssh understands, e.g. alice@gpu-box)")
        for key, high in (("port", 65535), ("forks", MAX_FORKS)):
            if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool)
                                or not 0 < data[key] <= high):
                raise self.fail(table, key, f"must be an integer from 1 to {high}, got {data[key]!r}")
        for key in ("connect_timeout", "answer_timeout"):
            if key in data and not _seconds(data[key]):
                raise self.fail(table, key, f"must be a positive number of seconds, at most {MAX_SECONDS}, "
                                f"got {data[key]!r}")
        for key in ("user", "identity", "known_hosts", "ssh_config", "python", "inventory"):
            if key in data and (not isinstance(data[key], str) or not data[key].strip()):
                raise self.fail(table, key, f"must be a non-empty string, got {data[key]!r}")
        return Host(name=name, **data)

    def project(self, name: str, data: Any, defaults: dict[str, Any], hosts: dict[str, Host]) -> Project:
        table = f"projects.{name}"
        if not isinstance(data, dict):
            raise self.fail("projects", name, "must be a table")
        if not NAME_RE.fullmatch(name):
            raise self.fail(table, None, f"name {NAME_RULE} (it becomes the kernel name)")
        self.check_keys(table, data, PROJECT_KEYS)
        if "path" not in data:
            raise self.fail(table, None, "path is required")
        merged = dict(defaults)
        merged.update({k: self.value(table, k, v) for k, v in data.items()})
        host = merged["host"]
        if host != LOCAL and host not in hosts:
            raise self.fail(table, "host", f"unknown host {host!r} (known: {', '.join([LOCAL, *sorted(hosts)])})")
        path = os.path.expanduser(merged["path"]) if host == LOCAL and not self.remote else merged["path"]
        if self.remote and host == LOCAL:
            # Resolved on that host: '~' stays for it to expand, relative means next to its inventory.
            host = self.remote
            if not path.startswith(("/", "~")):
                path = posixpath.normpath(posixpath.join(str(self.source.parent), path))
        elif host == LOCAL:
            # A deleted or not yet cloned project is that project's problem only, found by its host
            # (for every host alike) when a task looks at it: loading does not look at the disk.
            path = os.path.normpath(os.path.join(self.source.parent.absolute(), path))
        reqs = merged["requirements"]
        return Project(
            name=name, path=path, host=host, port_range=merged["port_range"], app=merged["app"],
            stop_timeout=merged["stop_timeout"], start_timeout=merged["start_timeout"],
            python=merged["python"], venv=merged["venv"], notebook_dir=merged["notebook_dir"],
            ip=merged["ip"],
            requirements=tuple(reqs) if not isinstance(reqs, str) else (),
            requirements_file=reqs if isinstance(reqs, str) else None,
            tags=tuple(merged.get("tags", ())), env=merged["env"], args=tuple(merged["args"]),
            display_name=merged.get("display_name", name),
            idle_timeout=merged["idle_timeout"], kernel_idle_timeout=merged["kernel_idle_timeout"],
            cull_connected=merged["cull_connected"], restart=merged["restart"],
            restart_max=merged["restart_max"], restart_window=merged["restart_window"],
            log_max_size=merged["log_max_size"], log_keep=merged["log_keep"],
        )


def _overlaps(projects: dict[str, Project], explicit: set[str]) -> list[str]:
    """Overlapping ranges on one host where at least one was set on the project itself.

    Projects that inherit the default range share it as a pool on purpose (the
    port allocation is race-free), so that alone is not worth a warning.
    """
    warnings = []
    items = sorted(projects.values(), key=lambda p: (p.host, p.port_range, p.name))
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if not ({a.name, b.name} & explicit):
                continue
            if a.host == b.host and b.port_range[0] <= a.port_range[1] and a.port_range[0] <= b.port_range[1]:
                warnings.append(
                    f"port ranges of {a.name} {list(a.port_range)} and {b.name} {list(b.port_range)} "
                    f"overlap on host {a.host}"
                )
    return warnings


def load_inventory(path: Path | None = None) -> Inventory:
    """Read and validate the inventory.  Raises InventoryError with a one-line message."""
    source = (path or find_inventory()).absolute()
    try:
        found = read_small(source, CONFIG_FILE_LIMIT)
        if found is None:
            raise InventoryError(f"{source}: no such file")
        text = found.text()
    except UnreadableFile as exc:
        raise InventoryError(f"{source}: cannot read: it {exc}") from None
    return parse_inventory(text, source)


def parse_inventory(text: str, source: Path, remote: str | None = None) -> Inventory:
    """Validate inventory text.  With ``remote``, it is that host's own file: its local projects
    are placed on that host, and their paths are not checked here (the host reports them)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+)", str(exc))
        where = f"{source}:{m.group(1)}" if m else str(source)
        raise InventoryError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise InventoryError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:
        # tomllib lets a few value errors through unwrapped, e.g. an integer of 5,000 digits.
        raise InventoryError(f"{source}: invalid TOML: {exc}") from None
    loader = _Loader(source, text, remote)
    nul = _nul_strings(data)
    if nul:
        # Name the table and key as the other errors do: projects.NAME.key, defaults.key, discover.roots.
        keys = nul[0]
        depth = 2 if keys[0] in ("projects", "hosts") and len(keys) > 1 else 1
        table, key = ".".join(keys[:depth]), (keys[depth] if len(keys) > depth else None)
        raise loader.fail(table, key, "holds a NUL byte (\\u0000), which no file name, argument or variable can")
    for key in data:
        if key not in TOP_KEYS:
            raise loader.fail(key, None, f"unknown table (allowed: {', '.join(sorted(TOP_KEYS))})")
    for key in ("defaults", "hosts", "projects", "discover"):
        if key in data and not isinstance(data[key], dict):
            raise loader.fail(key, None, "must be a table")
    raw_defaults = data.get("defaults", {})
    loader.check_keys("defaults", raw_defaults, set(BUILTIN_DEFAULTS))
    defaults = {k: loader.value("defaults", k, v) if k != "host" else v for k, v in BUILTIN_DEFAULTS.items()}
    defaults.update({k: loader.value("defaults", k, v) for k, v in raw_defaults.items()})
    hosts = {name: loader.host(name, h) for name, h in sorted(data.get("hosts", {}).items())}
    projects: dict[str, Project] = {}
    seen_paths: dict[tuple[str, str], str] = {}
    seen_kernels: dict[str, str] = {}
    for name, raw in sorted(data.get("projects", {}).items()):
        if remote and isinstance(raw, dict) and raw.get("host", defaults.get("host", LOCAL)) != LOCAL:
            continue  # a remote's inventory may list other hosts; only its own projects count here
        project = loader.project(name, raw, defaults, hosts)
        other = seen_paths.get((project.host, project.path))
        if other is not None:
            raise loader.fail(f"projects.{name}", "path", f"{project.path} is already the path of project {other!r}")
        if name.lower() in seen_kernels:
            twin = seen_kernels[name.lower()]
            raise loader.fail(f"projects.{name}", None,
                              f"name differs from {twin!r} only in case (kernel names are lower-cased)")
        seen_paths[(project.host, project.path)] = name
        seen_kernels[name.lower()] = name
        projects[name] = project
    explicit_ranges = {n for n, raw in data.get("projects", {}).items() if "port_range" in raw}
    discover = data.get("discover", {})
    loader.check_keys("discover", discover, DISCOVER_KEYS)
    roots = discover.get("roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise loader.fail("discover", "roots", "must be a list of paths")
    public_defaults = {k: list(v) if isinstance(v, tuple) and k != "env" else (dict(v) if k == "env" else v)
                       for k, v in defaults.items()}
    return Inventory(source=source, projects=projects, hosts=hosts, defaults=public_defaults,
                     discover_roots=tuple(roots), warnings=tuple(_overlaps(projects, explicit_ranges)))
