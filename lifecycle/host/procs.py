"""One process snapshot per call, and pure classification over it.

Everything that asks "which processes are Jupyter servers / kernels / children
of X" works on a ``Snapshot`` so that tests can feed a synthetic one and cost
grows with the number of processes, not processes x projects.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import psutil

ZOMBIE = "zombie"

# A Jupyter server's command line: a console script (jupyter-lab, ...), the
# ``jupyter`` launcher with a subcommand, or ``python -m <module>``.
_SERVER_SCRIPTS = {"jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter-nbclassic"}
_SERVER_SUBCOMMANDS = {"lab", "notebook", "server", "nbclassic"}
_SERVER_MODULES = {"jupyterlab", "notebook", "jupyter_server", "nbclassic"}
# Sub-subcommands of those apps that are short-lived tools, not servers.
_NOT_SERVER = {
    "list", "stop", "password", "build", "clean", "paths", "path", "extension",
    "labextension", "workspaces", "workspace", "--version", "--help", "-h",
    "--help-all", "licenses", "armor",
}
_KERNEL_MODULES = {"ipykernel_launcher", "ipykernel"}
# fullmatch, ASCII digits, at most 5: "$" would accept a trailing newline, "\d" any script's digits.
_PORT_ARG = re.compile(r"--(?:ServerApp\.|NotebookApp\.)?port=([0-9]{1,5})")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    name: str
    cmdline: Tuple[str, ...]
    create_time: float
    uid: Optional[int]
    status: str
    # The executable behind the process (/proc/PID/exe); None when it cannot be read
    # (another user's process).  argv can say anything (`exec -a jupyter-lab sleep`);
    # the executable cannot.
    exe: Optional[str] = None

    @property
    def alive(self) -> bool:
        return self.status != ZOMBIE

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else self.name


@dataclass
class Snapshot:
    procs: Dict[int, Proc]
    # A snapshot of the real process table may consult it again (``now``,
    # ``lookup``); a synthetic one (tests) is the whole world.
    live: bool = False
    _children: Dict[int, List[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for proc in self.procs.values():
            self._children.setdefault(proc.ppid, []).append(proc.pid)

    def get(self, pid: int) -> Optional[Proc]:
        proc = self.procs.get(pid)
        return proc if proc is not None and proc.alive else None

    def descendants(self, pid: int) -> List[Proc]:
        out: List[Proc] = []
        stack = list(self._children.get(pid, ()))
        while stack:
            child = self.procs.get(stack.pop())
            if child is None:
                continue
            if child.alive:
                out.append(child)
            stack.extend(self._children.get(child.pid, ()))
        return out

    def lookup(self, pid: int) -> Optional[Proc]:
        """Like ``get``, but a pid the snapshot does not hold is read live.

        A process that started after the snapshot (a concurrent start wrote its
        pid file since) must not be judged "not running" from a stale picture.
        """
        proc = self.get(pid)
        if proc is not None or pid in self.procs or not self.live:
            return proc
        return fresh(pid)

    def now(self, pid: int) -> Optional[Proc]:
        """The process ``pid`` as it is now: read live, not from the snapshot.

        Identification uses this: a snapshot taken a moment after a concurrent
        start forked its server holds that pid with the parent's command line
        (exec had not happened yet).
        """
        return fresh(pid) if self.live else self.get(pid)

    def servers(self) -> List[Proc]:
        return [p for p in self.procs.values() if p.alive and is_server_proc(p)]

    def kernels(self) -> List[Proc]:
        return [p for p in self.procs.values() if p.alive and is_kernel_proc(p)]


_ATTRS = ["pid", "ppid", "name", "cmdline", "create_time", "uids", "status", "exe"]


def _from_info(info: Dict[str, Any]) -> Optional[Proc]:
    if info.get("create_time") is None:
        return None
    uids = info.get("uids")
    return Proc(
        pid=info["pid"],
        ppid=info.get("ppid") or 0,
        name=info.get("name") or "",
        cmdline=tuple(info.get("cmdline") or ()),
        create_time=info["create_time"],
        uid=uids.real if uids is not None else None,
        status=info.get("status") or "",
        exe=info.get("exe") or None,
    )


def take_snapshot() -> Snapshot:
    """Scan the process table once."""
    procs: Dict[int, Proc] = {}
    for p in psutil.process_iter(_ATTRS):
        proc = _from_info(p.info)
        if proc is not None:
            procs[proc.pid] = proc
    return Snapshot(procs, live=True)


def fresh(pid: int) -> Optional[Proc]:
    """The live process ``pid`` now, or None when it is gone (zombies count as gone)."""
    proc = read_proc(pid)
    return proc if proc is not None and proc.alive else None


def read_proc(pid: int) -> Optional[Proc]:
    """One process read live, in the snapshot's shape (None when it does not exist)."""
    try:
        info = psutil.Process(pid).as_dict(_ATTRS)
    except (psutil.Error, OSError, ValueError):
        return None
    return _from_info(info)


def _basename(arg: str) -> str:
    return os.path.basename(arg)


def _after_interpreter(cmdline: Tuple[str, ...]) -> List[str]:
    """The arguments after ``python`` and its own options."""
    args = list(cmdline)
    if args and _basename(args[0]).startswith("python"):
        args = args[1:]
        while args and args[0].startswith("-") and args[0] != "-m":
            # Options such as -Xfrozen_modules=off or -u.
            args = args[1:]
    return args


def is_jupyter_server(cmdline: Iterable[str]) -> bool:
    args = _after_interpreter(tuple(cmdline))
    if not args:
        return False
    rest: List[str]
    head = _basename(args[0])
    if head == "-m" and len(args) > 1 and args[1] in _SERVER_MODULES:
        rest = args[2:]
    elif head in _SERVER_SCRIPTS:
        rest = args[1:]
    elif head == "jupyter" and len(args) > 1 and args[1] in _SERVER_SUBCOMMANDS:
        rest = args[2:]
    else:
        return False
    return not (rest and rest[0] in _NOT_SERVER)


def is_python(exe: Optional[str]) -> Optional[bool]:
    """Whether an executable is a Python interpreter; None when it is unknown."""
    if not exe:
        return None
    base = _basename(exe.replace(" (deleted)", ""))
    return base.startswith(("python", "pypy"))


def is_server_proc(proc: Proc) -> bool:
    """A Jupyter server: the command line of one, run by a Python interpreter.

    When the executable cannot be read (another user's process) the command
    line decides; such processes are listed but never acted on.
    """
    return is_jupyter_server(proc.cmdline) and is_python(proc.exe) is not False


def is_kernel_proc(proc: Proc) -> bool:
    return is_kernel(proc.cmdline) and is_python(proc.exe) is not False


def is_kernel(cmdline: Iterable[str]) -> bool:
    args = _after_interpreter(tuple(cmdline))
    if len(args) >= 2 and args[0] == "-m" and args[1] in _KERNEL_MODULES:
        return True
    return bool(args) and _basename(args[0]).startswith("ipykernel_launcher")


def kernel_connection_file(cmdline: Iterable[str]) -> Optional[str]:
    args = list(cmdline)
    for i, arg in enumerate(args):
        if arg == "-f" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--f="):
            return arg[4:]
    return None


def port_from_cmdline(cmdline: Iterable[str]) -> Optional[int]:
    for arg in cmdline:
        m = _PORT_ARG.fullmatch(arg)
        if m and 0 < int(m.group(1)) < 65536:
            return int(m.group(1))
    return None


def boot_id() -> str:
    """Identifies this running system: pids and create times mean something only within one boot."""
    for path in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        try:
            with open(path) as fh:
                return fh.read().strip()
        except OSError:
            continue
    return ""


def machine_id() -> str:
    """This system as the fleet views count machines: one boot of one kernel, seen from one process and
    network namespace.  Containers share their kernel's boot id, but not their pids or ports: two
    containers on one box are two machines.  Empty when there is no boot id (a machine of its own)."""
    boot = boot_id()
    if not boot:
        return ""
    spaces = []
    for ns in ("pid", "net"):
        try:
            spaces.append(os.readlink("/proc/self/ns/" + ns))
        except OSError:
            continue
    return " ".join([boot] + spaces)


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of the given processes (gone ones count as zero)."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except (psutil.Error, OSError):
            continue
    return total


def usage(pids: Iterable[int]) -> Tuple[int, float]:
    """Resident memory (bytes) and CPU time used so far (user + system seconds) of the given
    processes, read in one pass each (gone ones count as zero).  CPU % is the change of the
    seconds between two looks, divided by the time between them."""
    rss, cpu = 0, 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
        except (psutil.Error, OSError):
            continue
    return rss, cpu


def process_is_gone(proc: "psutil.Process") -> bool:
    """True when the process has exited (zombies count as gone)."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(proc.pid)
            return True
        return not proc.is_running()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    # When the tool itself is the parent (foreground mode, in-process tests)
    # collect the exit status so no zombie stays behind.
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass
