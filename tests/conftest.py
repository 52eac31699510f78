"""Fixtures: a shared venv that sees this interpreter's JupyterLab, an isolated HOME,
a private port range per test, a CLI runner, and a leak check after every test.

The whole run happens in a private process namespace where Linux allows one (tests/pidns.py):
the suite never sees, so never stops, a Jupyter server the user runs.  Tests of machine-wide
operations are marked ``machine_wide`` and skip (fail under JLC_REQUIRE_PIDNS=1) without one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

import pidns

REPO = Path(__file__).resolve().parents[1]
PORT_BASE = 28700
PORT_BLOCK = 10
# Deadline for anything that waits on a server, kernel or sshd: the suite must pass on a small
# machine under heavy load (load average 10 on 2 cores), where a JupyterLab start takes 20-40 s.
SLOW = 180.0
_blocks = itertools.count()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    return pidns.cmdline_main(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "machine_wide: acts on Jupyter processes outside the test's own "
                            "projects; runs only in the suite's private process namespace")


def pytest_report_header(config: pytest.Config) -> str:
    if pidns.private():
        return "process namespace: private (tests/pidns.py); the machine's other processes are out of reach"
    return f"process namespace: the machine's ({pidns.why_not_private()}); machine_wide tests skip"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("machine_wide") is None or pidns.private():
        return
    why = f"machine-wide test outside a private process namespace: {pidns.why_not_private()}"
    if os.environ.get(pidns.REQUIRE) == "1":
        pytest.fail(why)
    pytest.skip(why)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until ``predicate`` is truthy; fail the test with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def procs_under(root: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions ``root`` (servers and kernels run the shared venv)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
            continue
        if any(str(root) in arg for arg in p.info["cmdline"] or ()):
            out.append(p)
    return out


@pytest.fixture(scope="session")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("jlc")
    yield root
    leaked = procs_under(root)
    for p in leaked:
        p.kill()
    psutil.wait_procs(leaked, timeout=10)
    assert not leaked, f"processes left running after the suite: {[p.pid for p in leaked]}"


@pytest.fixture(scope="session")
def shared_venv(session_root: Path) -> Path:
    """One venv for every test project; a .pth makes this interpreter's packages importable in it,
    so pip finds jupyterlab and ipykernel already satisfied and no test downloads anything."""
    path = session_root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=180)
    purelib = Path(sysconfig.get_paths(vars={"base": str(path), "platbase": str(path)})["purelib"])
    outer = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if os.path.isdir(p)]
    (purelib / "_outer_env.pth").write_text("\n".join(dict.fromkeys(outer)) + "\n")
    return path


_BLOCKS = (29999 - PORT_BASE) // PORT_BLOCK


def _free_block() -> list[int]:
    # The suite has more tests than blocks: go round again. A test's servers are gone when it
    # ends (the ws fixture checks), and a block still held by anything is skipped.
    for _ in range(_BLOCKS):
        start = PORT_BASE + next(_blocks) % _BLOCKS * PORT_BLOCK
        ports = list(range(start, start + PORT_BLOCK))
        if all(_bindable(p) for p in ports):
            return ports
    pytest.fail("no free block of test ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Workspace:
    root: Path
    venv: Path
    ports: list[int]
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_toml: str = ""

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.toml"

    def project(self, name: str, port_range: list[int] | None = None, **keys: Any) -> Path:
        path = Path(keys.pop("path", self.root / "projects" / name))
        path.mkdir(parents=True, exist_ok=True)
        entry = {"path": str(path), "venv": str(self.venv), "python": sys.executable,
                 "port_range": port_range or [self.ports[0], self.ports[-1]],
                 # Generous: on a loaded machine a server may take long to start or to stop cleanly.
                 "start_timeout": SLOW, "stop_timeout": 60}
        entry.update(keys)
        self.projects[name] = entry
        self.write()
        return path

    def write(self) -> None:
        lines = [self.extra_toml]
        for name, entry in self.projects.items():
            lines.append(f"[projects.{name}]")
            for key, value in entry.items():
                lines.append(f"{key} = {json.dumps(value)}")
            lines.append("")
        self.inventory.write_text("\n".join(lines))

    def spawn(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        """The CLI in the background, stdout and stderr piped unless ``popen`` says otherwise."""
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([sys.executable, "-m", "lifecycle", *args], cwd=self.root, text=True,
                                env={**os.environ, "JLC_INVENTORY": str(self.inventory)}, **popen)

    def interrupted(self, *args: str, when: Callable[[], Any], what: str) -> tuple[int, str, str]:
        """Run the CLI, press Ctrl-C once ``when`` holds; its exit status, stdout and stderr."""
        proc = self.spawn(*args)
        try:
            wait_for(when, SLOW, what)
            proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
            out, err = proc.communicate(timeout=SLOW)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return proc.returncode, out, err

    def cli(self, *args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True,
            timeout=timeout, cwd=str(cwd or self.root), env={**os.environ, "JLC_INVENTORY": str(self.inventory)},
        )

    @contextlib.contextmanager
    def streaming(self, *args: str) -> Iterator[list[str]]:
        """Run the CLI in the background collecting its stdout lines; Ctrl-C it when the block ends."""
        proc = subprocess.Popen([sys.executable, "-m", "lifecycle", *args], cwd=self.root, text=True,
                                env={**os.environ, "JLC_INVENTORY": str(self.inventory)},
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(proc.stdout or ()), daemon=True)
        reader.start()
        try:
            yield seen
            proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
            proc.wait(timeout=SLOW)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)

    def json(self, *args: str, expect: int = 0) -> Any:
        proc = self.cli(*args, "--json")
        assert proc.returncode == expect, proc.stderr + proc.stdout
        return json.loads(proc.stdout)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real home, real Jupyter dirs or a real inventory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JLC_STATE_DIR", str(tmp_path / "state"))
    for var in ("JLC_INVENTORY", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
                "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR",
                "JUPYTER_TOKEN", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def ws(tmp_path: Path, shared_venv: Path, session_root: Path) -> Iterator[Workspace]:
    workspace = Workspace(root=tmp_path, venv=shared_venv, ports=_free_block())
    yield workspace
    # Anything still running under this test's directory is a leak: clean it up, then fail.
    leaked = procs_under(tmp_path)
    for p in leaked:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(leaked, timeout=10)
    assert not leaked, f"test left processes running: {[(p.pid, p.info['cmdline'][:4]) for p in leaked]}"


@pytest.fixture
def lone_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Project 'alpha' in an inventory of its own, without venv or port block: for command lines that
    must be refused before anything runs (were one to run, it would fail at once for want of a venv)."""
    path = tmp_path / "projects" / "alpha"
    path.mkdir(parents=True)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(f'[projects.alpha]\npath = "{path}"\nvenv = "{tmp_path / "no-venv"}"\n'
                         f'port_range = [29990, 29999]\n')
    monkeypatch.setenv("JLC_INVENTORY", str(inventory))
    return path


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts by hand; all are killed and reaped at the end, with what they started.

    A server's kernels run in sessions of their own (jupyter_client starts them so): killing the
    server's process group misses them, and left alone they take their time to notice on a loaded
    machine, after the leak check has looked.
    """
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    under: list[psutil.Process] = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            under += psutil.Process(p.pid).children(recursive=True)
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                p.kill()
    for child in under:
        with contextlib.suppress(psutil.Error):
            child.kill()
    for p in procs:
        p.wait(timeout=SLOW)
    psutil.wait_procs(under, timeout=SLOW)


def answers(port: int) -> bool:
    """Whether a Jupyter server answers /api on this loopback port."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/api", timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def jupyter_by_hand(venv: Path, root: Path, port: int, log: Path, env: dict[str, str] | None = None,
                    spawned: list[subprocess.Popen[bytes]] | None = None) -> subprocess.Popen[bytes]:
    """Start a JupyterLab server the way a user would by hand (no tool involved) and wait for it."""
    script = Path(sys.executable).parent / "jupyter-lab"
    launcher = [str(venv / "bin" / "python"), str(script)] if script.exists() else \
        [str(venv / "bin" / "python"), "-m", "jupyterlab"]
    cmd = launcher + ["--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--notebook-dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    if spawned is not None:
        spawned.append(proc)
    wait_for(lambda: answers(port) or proc.poll() is not None, SLOW, f"the hand-started server on {port}")
    assert proc.poll() is None, log.read_text()
    return proc


@pytest.fixture(scope="session")
def ssh_lab(session_root: Path) -> Iterator[Any]:
    """Two sshd instances on 127.0.0.2 and 127.0.0.3 for the whole suite."""
    from sshlab import start_lab, stop_lab

    lab = start_lab(session_root / "ssh")
    yield lab
    stop_lab(lab)


def servers_in(path: Path) -> list[int]:
    """Live Jupyter servers whose root dir is exactly ``path`` (the tool passes it on the command line)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if p.info["status"] != psutil.STATUS_ZOMBIE and f"--ServerApp.root_dir={path}" in cmd:
            found.append(p.pid)
    return sorted(found)


def run_in_kernel(conn: Path, code: str) -> None:
    """Execute ``code`` in the kernel of connection file ``conn`` over ZMQ, without waiting for it
    (no websocket: no browser connection is counted)."""
    from jupyter_client.blocking.client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(conn))
    client.load_connection_file()
    client.start_channels(hb=False)  # a heartbeat missed under load is not a dead kernel
    try:
        client.wait_for_ready(timeout=SLOW)
        client.execute(code)
    finally:
        client.stop_channels()
