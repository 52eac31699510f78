"""Inventory loading and validation: every bad input is one line, exit 2, nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.errors import InventoryError
from lifecycle.inventory import find_inventory, load_inventory


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "proj").mkdir(exist_ok=True)
    (tmp_path / "proj2").mkdir(exist_ok=True)
    inv = tmp_path / "inventory.toml"
    inv.write_text(text)
    return inv


GOOD = """
[defaults]
port_range = [9000, 9009]

[projects.alpha]
path = "proj"
tags = ["a"]
"""

BAD_CASES = {
    "broken-toml": ("[projects.alpha\npath = 'proj'\n", ":1: invalid TOML"),
    "unknown-key": ('[projects.alpha]\npath = "proj"\ncolour = "red"\n', ":3: projects.alpha.colour: unknown key"),
    "unknown-default": ('[defaults]\nprot_range = [1, 2]\n', ":2: defaults.prot_range: unknown key"),
    "unknown-table": ('[project.alpha]\npath = "proj"\n', "project: unknown table"),
    "wrong-type": ('[projects.alpha]\npath = "proj"\nstop_timeout = "ten"\n',
                   ":3: projects.alpha.stop_timeout: must be a positive number of seconds"),
    "tags-not-list": ('[projects.alpha]\npath = "proj"\ntags = "x"\n', ":3: projects.alpha.tags: must be a list"),
    "reversed-range": ('[projects.alpha]\npath = "proj"\nport_range = [9010, 9000]\n',
                       ":3: projects.alpha.port_range: [9010, 9000] is reversed"),
    "low-range": ('[projects.alpha]\npath = "proj"\nport_range = [80, 90]\n',
                  ":3: projects.alpha.port_range: [80, 90] is outside 1024-65535"),
    "high-range": ('[defaults]\nport_range = [9000, 70000]\n', ":2: defaults.port_range: [9000, 70000] is outside"),
    "bad-app": ('[projects.alpha]\npath = "proj"\napp = "voila"\n', ":3: projects.alpha.app: must be one of lab"),
    "dup-path": ('[projects.alpha]\npath = "proj"\n[projects.beta]\npath = "./proj/"\n',
                 ":4: projects.beta.path: ", "is already the path of project 'alpha'"),
    "unsafe-name": ('[projects."my lab"]\npath = "proj"\n', ':1: projects.my lab: name must start'),
    "case-twin": ('[projects.Alpha]\npath = "proj"\n[projects.alpha]\npath = "proj2"\n', "only in case"),
    "no-path": ('[projects.alpha]\ntags = []\n', ":1: projects.alpha: path is required"),
    "unknown-host": ('[projects.alpha]\npath = "proj"\nhost = "gpu"\n', ":3: projects.alpha.host: unknown host 'gpu'"),
    "host-no-address": ('[hosts.gpu]\nport = 22\n', ":1: hosts.gpu.address: is required"),
    "env-not-strings": ('[projects.alpha]\npath = "proj"\nenv = { A = 1 }\n',
                        ":3: projects.alpha.env: must be a table"),
    # A "$" anchor would let a trailing newline through; the name must match as a whole.
    "name-trailing-newline": ('[projects."alpha\\n"]\npath = "proj"\n', "projects.alpha\\n: name must start"),
    "host-name-space": ('[hosts."gpu box"]\naddress = "gpu"\n', ":1: hosts.gpu box: name must start"),
    "stop-timeout-nan": ('[projects.alpha]\npath = "proj"\nstop_timeout = nan\n',
                         ":3: projects.alpha.stop_timeout: must be a positive number of seconds, at most 86400"),
    "stop-timeout-inf": ('[defaults]\nstop_timeout = inf\n', ":2: defaults.stop_timeout: must be a positive number"),
    "start-timeout-huge": ('[projects.alpha]\npath = "proj"\nstart_timeout = 1e300\n',
                           ":3: projects.alpha.start_timeout: must be a positive number of seconds, at most"),
    "connect-timeout-nan": ('[hosts.gpu]\naddress = "gpu"\nconnect_timeout = nan\n',
                            ":3: hosts.gpu.connect_timeout: must be a positive number of seconds"),
    "ssh-port-too-big": ('[hosts.gpu]\naddress = "gpu"\nport = 70000\n',
                         ":3: hosts.gpu.port: must be an integer from 1 to 65535"),
    "ip-not-an-ip": ('[projects.alpha]\npath = "proj"\nip = "not-an-ip"\n', ":3: projects.alpha.ip: must be an IP"),
    "ip-out-of-range": ('[defaults]\nip = "999.1.1.1"\n', ":2: defaults.ip: must be an IP address"),
    "env-key-with-equals": ('[projects.alpha]\npath = "proj"\nenv = { "A=B" = "1" }\n',
                            ":3: projects.alpha.env: variable name 'A=B' is not usable"),
    "env-key-empty": ('[projects.alpha]\npath = "proj"\nenv = { "" = "1" }\n',
                      ":3: projects.alpha.env: variable name '' is not usable"),
    "env-value-nul": ('[projects.alpha]\npath = "proj"\nenv = { A = "x\\u0000y" }\n',
                      ":3: projects.alpha.env: holds a NUL byte"),
    "args-nul": ('[projects.alpha]\npath = "proj"\nargs = ["--a", "--b=\\u0000"]\n',
                 ":3: projects.alpha.args: holds a NUL byte"),
    "path-nul": ('[projects.alpha]\npath = "pr\\u0000oj"\n', ":2: projects.alpha.path: holds a NUL byte"),
    "defaults-nul": ('[defaults]\nvenv = "\\u0000"\n', ":2: defaults.venv: holds a NUL byte"),
    "address-nul": ('[hosts.gpu]\naddress = "gpu\\u0000"\n', ":2: hosts.gpu.address: holds a NUL byte"),
    "discover-root-nul": ('[discover]\nroots = ["a\\u0000"]\n', ":2: discover.roots: holds a NUL byte"),
    "deep-array": ("x = " + "[" * 5000 + "]" * 5000 + "\n", ": invalid TOML: arrays or tables nested too deeply"),
    "deep-table": ("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", ": invalid TOML: arrays or tables nested"),
    "int-5000-digits": ("[defaults]\nstop_timeout = " + "1" * 5000 + "\n", ": invalid TOML: Exceeds the limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inventory_is_one_line_exit_2(tmp_path: Path, case: str) -> None:
    text, *expected = BAD_CASES[case]
    inv = write(tmp_path, text)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "bootstrap", "alpha"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, env={**os.environ, "JLC_INVENTORY": str(inv)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {inv}"), lines[0]
    for fragment in expected:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("content", [b"\xff\xfe not utf8", None], ids=["not-utf8", "a-directory"])
def test_unreadable_inventory(tmp_path: Path, content: bytes | None) -> None:
    inv = tmp_path / "inventory.toml"
    if content is None:
        inv.mkdir()
    else:
        inv.write_bytes(content)
    with pytest.raises(InventoryError) as err:
        load_inventory(inv)
    assert str(inv) in err.value.message and err.value.code == 2


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "0.0.0.0", "::", "localhost", "192.168.1.20"])
def test_addresses_that_load(tmp_path: Path, ip: str) -> None:
    assert load_inventory(write(tmp_path, f'[projects.alpha]\npath = "proj"\nip = "{ip}"\n')).projects["alpha"].ip == ip


def test_longest_timeout_is_a_day(tmp_path: Path) -> None:
    loaded = load_inventory(write(tmp_path, '[projects.alpha]\npath = "proj"\nstop_timeout = 86400\n'))
    assert loaded.projects["alpha"].stop_timeout == 86400.0


def test_missing_project_dir_is_not_fatal(tmp_path: Path) -> None:
    """Loading does not look at the disk: the project's host finds it missing (tests/test_missing.py)."""
    inv = write(tmp_path, '[projects.alpha]\npath = "proj"\n[projects.gone]\npath = "deleted"\n'
                          '[projects.file]\npath = "afile"\n')
    (tmp_path / "afile").write_text("")
    loaded = load_inventory(inv)
    assert {n: p.path for n, p in loaded.projects.items()} == {
        "alpha": str(tmp_path / "proj"), "gone": str(tmp_path / "deleted"), "file": str(tmp_path / "afile")}


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_inventory_that_is_no_regular_file(tmp_path: Path, kind: str) -> None:
    inv = tmp_path / "inventory.toml"
    if kind == "fifo":
        os.mkfifo(inv)
    elif kind == "dev-zero":
        inv.symlink_to("/dev/zero")
    else:
        inv.write_text("# padding\n" * 200_000)
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "status"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, env={**os.environ, "JLC_INVENTORY": str(inv)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {inv}: cannot read: it is "), proc.stderr


def test_overlapping_ranges_warn_but_load(tmp_path: Path) -> None:
    inv = write(tmp_path, '[projects.a]\npath = "proj"\nport_range = [9000, 9005]\n'
                          '[projects.b]\npath = "proj2"\nport_range = [9005, 9010]\n')
    loaded = load_inventory(inv)
    assert len(loaded.warnings) == 1
    assert "a [9000, 9005] and b [9005, 9010] overlap on host local" in loaded.warnings[0]
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "config"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, env={**os.environ, "JLC_INVENTORY": str(inv)})
    assert proc.returncode == 0 and "warning:" in proc.stderr and "overlap" in proc.stderr


def test_defaults_apply_and_project_overrides(tmp_path: Path) -> None:
    loaded = load_inventory(write(tmp_path, GOOD + 'app = "notebook"\n'))
    alpha = loaded.projects["alpha"]
    assert alpha.port_range == (9000, 9009)
    assert alpha.app == "notebook"
    assert alpha.path == str(tmp_path / "proj")
    assert alpha.requirements == ("jupyterlab", "ipykernel")
    assert loaded.to_dict()["defaults"]["port_range"] == [9000, 9009]


def test_requirements_may_be_a_file(tmp_path: Path) -> None:
    loaded = load_inventory(write(tmp_path, '[projects.alpha]\npath = "proj"\nrequirements = "reqs.txt"\n'))
    assert loaded.projects["alpha"].requirements_file == "reqs.txt"
    assert loaded.projects["alpha"].requirements == ()


def test_find_inventory_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (tmp_path / "a" / "inventory.toml").write_text("")
    assert find_inventory(deep) == tmp_path / "a" / "inventory.toml"
    monkeypatch.setenv("JLC_INVENTORY", str(tmp_path / "elsewhere.toml"))
    assert find_inventory(deep) == tmp_path / "elsewhere.toml"
    monkeypatch.delenv("JLC_INVENTORY")
    user = Path(os.environ["HOME"]) / ".config" / "jupyter-lifecycle" / "inventory.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    # The nearest file upward wins over the user's one; with none upward, the user's is used.
    assert find_inventory(deep) == tmp_path / "a" / "inventory.toml"
    assert find_inventory(Path("/")) == user


def test_no_inventory_anywhere(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lifecycle", "status"], capture_output=True, text=True,
                          cwd="/", timeout=60, env={**os.environ})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no inventory.toml found")
