"""config prints the resolved inventory as valid TOML, under documented keys only, secrets masked."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lifecycle.config_doc import DEFAULT_KEYS, HOST_KEYS, PROJECT_KEYS, mask_args, mask_env
from lifecycle.inventory import parse_inventory

from conftest import REPO, Workspace

SECRETS = ("sekrit-arg-123", "sekrit-next-456", "sekrit-env-789", "sekrit-default-000", "sekrit-aws-111")


def documented(section: str) -> set[str]:
    """The keys docs/inventory.md lists in the table under ``section``'s heading."""
    text = (REPO / "docs" / "inventory.md").read_text()
    body = text.split(f"## `[{section}]`", 1)[1].split("\n## ", 1)[0]
    if section == "defaults":
        return set(re.findall(r"`(\w+)`", body.split(", with the meaning", 1)[0]))
    return set(re.findall(r"^\| `(\w+)` \|", body, re.M))


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def fleet(ws: Workspace) -> None:
    ws.extra_toml = ('[defaults]\nargs = ["--NotebookApp.token=sekrit-default-000"]\n'
                     '[hosts.box]\naddress = "me@box"\nforks = 3\n[discover]\nroots = ["."]\n')
    ws.project("alpha", tags=["t"],
               args=["--IdentityProvider.token=sekrit-arg-123", "--ServerApp.token", "sekrit-next-456",
                     "--ServerApp.password_required=True", "--ServerApp.token="])
    ws.project("beta", requirements="reqs.txt", display_name="Beta \"quoted\" it's")
    ws.project("remote", host="box", path=ws.root / "on-box")
    # A TOML table (the workspace writes JSON values, which TOML only shares for scalars and arrays).
    ws.inventory.write_text(ws.inventory.read_text().replace(
        "[projects.alpha]\n", '[projects.alpha]\nenv = { JUPYTER_TOKEN = "sekrit-env-789", OMP_NUM_THREADS = "4", '
        'AWS_SECRET_ACCESS_KEY = "sekrit-aws-111" }\n'))


def test_config_is_valid_toml_with_documented_keys_only(ws: Workspace) -> None:
    fleet(ws)
    proc = ws.cli("config")
    assert proc.returncode == 0, proc.stderr
    parsed = tomllib.loads(proc.stdout)
    doc = ws.json("config")
    assert parsed == without_nulls({k: v for k, v in doc.items() if k not in ("version", "source")})
    assert set(doc["defaults"]) == set(DEFAULT_KEYS) == documented("defaults")
    assert all(set(p) == set(PROJECT_KEYS) for p in doc["projects"].values())
    assert set(PROJECT_KEYS) == documented("projects.NAME")
    assert set(doc["hosts"]["box"]) == set(HOST_KEYS) == documented("hosts.NAME")
    assert doc["projects"]["beta"]["requirements"] == "reqs.txt" and "requirements_file" not in proc.stdout
    assert doc["hosts"]["box"]["forks"] == 3 and doc["discover"] == {"roots": ["."]}
    assert f"# jupyter-lifecycle config: {ws.inventory} with every default applied" in proc.stdout
    for reprs in ("None", "'", "(", "True,"):
        assert not any(line.split("=", 1)[-1].strip().startswith(reprs) for line in proc.stdout.splitlines()
                       if "=" in line and not line.startswith("#")), reprs


def test_config_output_is_the_same_inventory(ws: Workspace, tmp_path: Path) -> None:
    """`jlc config --show-token > inv.toml` gives an inventory that loads to the same projects."""
    fleet(ws)
    text = ws.cli("config", "--show-token").stdout
    again = tmp_path / "again.toml"
    again.write_text(text)
    reloaded = parse_inventory(text, again)
    original = parse_inventory(ws.inventory.read_text(), ws.inventory)
    assert reloaded.projects == original.projects and reloaded.hosts == original.hosts


def test_config_masks_secrets_unless_show_token(ws: Workspace) -> None:
    fleet(ws)
    for args in (["config"], ["config", "--json"]):
        out = ws.cli(*args).stdout
        assert not [s for s in SECRETS if s in out], out
        assert "<hidden>" in out and "OMP_NUM_THREADS" in out and "4" in out
        assert "--ServerApp.password_required=True" in out and '"--ServerApp.token="' in out
    alpha = ws.json("config")["projects"]["alpha"]
    assert alpha["env"] == {"JUPYTER_TOKEN": "<hidden>", "OMP_NUM_THREADS": "4", "AWS_SECRET_ACCESS_KEY": "<hidden>"}
    assert alpha["args"] == ["--IdentityProvider.token=<hidden>", "--ServerApp.token", "<hidden>",
                             "--ServerApp.password_required=True", "--ServerApp.token="]
    for args in (["config", "--show-token"], ["config", "--json", "--show-token"]):
        out = ws.cli(*args).stdout
        assert all(s in out for s in SECRETS) and "<hidden>" not in out
    assert json.loads(ws.cli("config", "--json", "--only", "beta").stdout)["projects"].keys() == {"beta"}


@pytest.mark.parametrize("args,expected", [
    (["--ServerApp.cookie_secret=abc"], ["--ServerApp.cookie_secret=<hidden>"]),
    (["--PasswordIdentityProvider.hashed_password=argon2:x"], ["--PasswordIdentityProvider.hashed_password=<hidden>"]),
    (["--NotebookApp.password", "sha1:x", "--port=1"], ["--NotebookApp.password", "<hidden>", "--port=1"]),
    (["--ServerApp.token="], ["--ServerApp.token="]),
    (["--ServerApp.token_validity=3"], ["--ServerApp.token_validity=3"]),
    (["--no-browser", "token=abc"], ["--no-browser", "token=abc"]),
])
def test_mask_args(args: list[str], expected: list[str]) -> None:
    assert mask_args(args) == expected


def test_mask_env() -> None:
    assert mask_env({"JUPYTER_TOKEN": "t", "JUPYTER_PASSWORD": "p", "GITHUB_API_KEY": "k", "HOME_DIR": "/h",
                     "EMPTY_TOKEN": ""}) == {"JUPYTER_TOKEN": "<hidden>", "JUPYTER_PASSWORD": "<hidden>",
                                              "GITHUB_API_KEY": "<hidden>", "HOME_DIR": "/h", "EMPTY_TOKEN": ""}
