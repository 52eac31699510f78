"""Run the test suite in a private process namespace, so it can never touch the user's own servers.

Some tests exercise machine-wide operations (``orphans --kill``, ``stop-all --include-unmanaged``)
that act on every Jupyter process of the user that they can see.  Run against the real process
table they would stop the user's servers.  So ``pytest`` re-runs itself as::

    unshare --pid --fork --mount-proc --kill-child [--map-current-user] \\
        python tests/pidns.py init -- python -m pytest ARGS...

Inside, ``/proc`` shows only the suite's processes, the network stays shared (the SSH tests use
sshd on 127.0.0.2/3), files are the machine's.  ``init`` (this file run as a script) is PID 1 of
the namespace: it reaps orphans (a killed server's kernels are re-parented to it), runs pytest as
its child and exits with pytest's exit code; when it exits the kernel kills whatever is left in
the namespace, so no test process can outlive the run.

Signals.  Ctrl-C in a terminal reaches every process of the foreground job, pytest included, so
the outer process and ``init`` ignore a SIGINT that came from the terminal (``si_code`` SI_KERNEL);
a SIGINT sent with kill(2) to the outer process, and SIGTERM/SIGHUP, are passed on to pytest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

# Set by ``init`` for its pytest child: "this run is the re-executed one" (never re-exec twice).
ENV = "JLC_TEST_PIDNS"
# JLC_TEST_NAMESPACE=0 runs the suite on the real process table; machine-wide tests then skip.
OPT_OUT = "JLC_TEST_NAMESPACE"
# JLC_REQUIRE_PIDNS=1 (CI) turns "skipped: no private namespace" into a failure.
REQUIRE = "JLC_REQUIRE_PIDNS"
SCRIPT = Path(__file__).resolve()
_SI_KERNEL = 0x80  # siginfo si_code of a signal the kernel sent (a terminal's Ctrl-C), not kill(2)
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_INIT_WAITS = _FORWARDED + (signal.SIGCHLD,)
_why_not = "not started through pytest's command line"


def unshare_command(honour_opt_out: bool = True) -> list[str] | str:
    """The unshare(1) prefix that works on this machine, or why there is none."""
    if not sys.platform.startswith("linux"):
        return f"private process namespaces need Linux (this is {sys.platform})"
    if honour_opt_out and os.environ.get(OPT_OUT) == "0":
        return f"disabled by {OPT_OUT}=0"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare(1) is not installed (util-linux)"
    cmd = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        # A user namespace that maps us to ourselves (util-linux 2.38+), not to root: sshd and
        # Jupyter's --allow-root would otherwise see a fake root.
        cmd[1:1] = ["--map-current-user"]
    try:
        probe = subprocess.run(cmd + ["true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{' '.join(cmd[1:])}` does not work here: {exc}"
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        return f"`{' '.join(cmd[1:])}` does not work here: {why}"
    return cmd


def private() -> bool:
    """Whether this process runs in the private namespace ``init`` set up (PID 1 is our init)."""
    if os.environ.get(ENV) != "1":
        return False
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return str(SCRIPT).encode() in argv and b"init" in argv


def _meant_for_us(info: Any) -> bool:
    """A signal to pass on: not the terminal's Ctrl-C, which pytest received itself."""
    return info is not None and not (info.si_signo == signal.SIGINT and info.si_code == _SI_KERNEL)


def _child_of(pid: int) -> int | None:
    """The child process of ``pid`` (unshare's only child is init), read from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
            return int(entry)
    return None


def _code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_outside(argv: list[str], unshare: list[str], cwd: str) -> int:
    """Run ``argv`` as the child of a fresh ``init`` in a new namespace; return its exit code.

    unshare(1) blocks SIGINT and SIGTERM while it waits, so signals go to init directly.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    try:
        # The blocked mask is inherited through unshare; init keeps it and unblocks it for pytest.
        proc = subprocess.Popen(unshare + [sys.executable, str(SCRIPT), "init", "--", *argv], cwd=cwd)
        while True:
            try:
                return _code(proc.wait(timeout=0.2))
            except subprocess.TimeoutExpired:
                pass
            info = signal.sigtimedwait(_FORWARDED, 0)
            init = _child_of(proc.pid) if info is not None and _meant_for_us(info) else None
            if info is not None and init is not None:
                try:
                    os.kill(init, info.si_signo)
                except ProcessLookupError:
                    pass
    finally:
        while signal.sigtimedwait(_FORWARDED, 0) is not None:
            pass  # the terminal's Ctrl-C is pending here too: it must not hit us after the run
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _init(argv: list[str]) -> int:
    """PID 1 of the namespace: run ``argv``, reap every orphan, exit with ``argv``'s status."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _INIT_WAITS)
    child = subprocess.Popen(argv, env={**os.environ, ENV: "1"},
                             preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, _INIT_WAITS))
    while True:
        info = signal.sigtimedwait(_INIT_WAITS, 1.0)
        if info is not None and info.si_signo != signal.SIGCHLD and _meant_for_us(info):
            try:
                os.kill(child.pid, info.si_signo)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 1
            if pid == 0:
                break
            if pid == child.pid:
                child.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits for it again
                # Leaving ends the namespace: the kernel kills whatever the suite left behind.
                return _code(child.returncode)


def cmdline_main(config: Any) -> int | None:
    """The suite's ``pytest_cmdline_main``: re-run the whole session inside a private namespace."""
    if os.environ.get(ENV) == "1" or config.option.help or config.option.version:
        return None
    if config.invocation_params.plugins:
        return None  # pytest.main(plugins=[...]) from Python: a re-run could not carry them
    global _why_not
    unshare = unshare_command()
    if isinstance(unshare, str):
        _why_not = unshare
        return None
    args = [sys.executable, "-m", "pytest", *config.invocation_params.args]
    return run_outside(args, unshare, str(config.invocation_params.dir))


def why_not_private() -> str:
    """Why this run is on the real process table (for skip messages)."""
    if os.environ.get(ENV) == "1":
        return f"{ENV}=1 is set, but PID 1 is not the suite's init ({SCRIPT.name})"
    return _why_not


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "init" and sys.argv[2] == "--":
        sys.exit(_init(sys.argv[3:]))
    sys.exit(f"usage: {sys.argv[0]} init -- COMMAND...")
