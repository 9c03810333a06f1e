"""Real-world spellings are accepted and normalised once, at the edge (issue 17): the table in
tests/data/spellings/accepted.toml, run through every reader of each value."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.config import check_python, check_variant, labelled_constraints, team_from_mapping
from resolver.host import overrides
from resolver.host.hostfile import parse_host_json, read_host_file
from resolver.host.model import Host
from tests.fixtures.cli import run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TABLE = tomllib.loads((Path(__file__).parents[1] / "data" / "spellings" / "accepted.toml").read_text("utf-8"))


@pytest.mark.parametrize("row", TABLE["host"], ids=lambda r: r.get("given_json") or json.dumps(r["given"]))
def test_host_file_spellings(row: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(row.get("given_json") or json.dumps(row["given"]), encoding="utf-8")
    host = read_host_file(path)
    expect = dict(row["expect"])
    record_python = expect.pop("record_python", None)
    for key, value in expect.items():
        assert getattr(host, key) == value, key
    if record_python is not None:
        assert host.to_json()["python"] == record_python
    # Strict in what it writes: the record reads back to the same host.
    assert parse_host_json(host.dumps()) == host


@pytest.mark.parametrize("row", TABLE["python"], ids=lambda r: r["given"])
def test_python_spellings_in_every_reader(row: dict[str, str], tmp_path: Path) -> None:
    given, expect = row["given"], row["expect"]
    assert check_python(given) == expect  # --python
    team = team_from_mapping({"python": given}, "team.toml", tmp_path)
    assert team.python == expect  # `python` in the team file
    host = Host(os="linux", arch="x86_64", python="3.9")
    overridden = overrides.with_overrides(host, {"STACK_RESOLVER_PYTHON": given})
    assert overridden.python == expect  # the variable, over a --host file
    assert overridden.sources["python"] == "STACK_RESOLVER_PYTHON"
    record = row.get("record", given.strip())
    if record != expect:
        assert overridden.to_json()["python"] == record  # kept in full in the record


@pytest.mark.parametrize("row", TABLE["variant"], ids=lambda r: r["given"])
def test_variant_spellings(row: dict[str, str], tmp_path: Path) -> None:
    assert check_variant(row["given"], "--variant") == row["expect"]
    assert team_from_mapping({"variant": row["given"]}, "team.toml", tmp_path).variant == row["expect"]


@pytest.mark.parametrize("row", TABLE["constraint"], ids=lambda r: r["given"])
def test_constraint_spellings(row: dict[str, Any], tmp_path: Path) -> None:
    table, variant = labelled_constraints([row["given"]], "--constraint")
    assert [str(spec) for spec in table.values()] == [row["expect"]["spec"]]
    assert variant == row["expect"].get("variant")
    team = team_from_mapping({"constraints": [row["given"]]}, "team.toml", tmp_path)
    assert team.variant == row["expect"].get("variant")


@pytest.mark.parametrize("row", TABLE["encoding"], ids=lambda r: r["name"])
def test_host_file_encodings(row: dict[str, str], tmp_path: Path) -> None:
    text = json.dumps({"os": "Linux", "arch": "amd64", "python": "3.11.9", "gpus": []}, indent=2)
    path = tmp_path / "host.json"
    path.write_bytes(text.encode(row["name"]))
    host = read_host_file(path)
    assert (host.os, host.arch, host.python, host.python_version) == ("linux", "x86_64", "3.11", "3.11.9")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACK_RESOLVER_", "PIP_", "PYTHON"))}
    env.update(HOME=str(tmp_path), PIP_CONFIG_FILE=os.devnull, PYTHONPATH=str(ROOT), **extra)
    return env


def test_cli_accepts_what_it_prints(tmp_path: Path) -> None:
    """`torch==2.8.0+cpu` (the tool's own output format) pins 2.8.0 and chooses the cpu variant;
    a PowerShell-written host file with `Linux`, `AMD64` and a full Python version resolves."""
    text = json.dumps(
        {"os": "Linux", "arch": "AMD64", "python": "3.11.9", "libc": "glibc", "libc_version": "2.35"}
    )
    (tmp_path / "host.json").write_bytes(text.encode("utf-16"))
    result = run_cli(
        tmp_path,
        _env(tmp_path),
        *("resolve", "--host", "host.json", "--dry-run", "--json", "--constraint", "torch==2.8.0+cpu"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["torch"], payload["variant"], payload["python"]) == ("2.8.0+cpu", "cpu", "3.11")


def test_cli_arm64_linux_resolves(tmp_path: Path) -> None:
    """`arm64` on Linux means aarch64 (it passed validation, then failed with exit 3)."""
    (tmp_path / "host.json").write_text(json.dumps({"os": "linux", "arch": "arm64", "python": "3.11"}))
    result = run_cli(
        tmp_path, _env(tmp_path), "resolve", "--host", "host.json", "--dry-run", "--json", timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_variables_beat_the_host_file(tmp_path: Path) -> None:
    """`STACK_RESOLVER_PYTHON` beats `--host`, as it beats `STACK_RESOLVER_HOST`."""
    (tmp_path / "host.json").write_text(json.dumps({"os": "linux", "arch": "x86_64", "python": "3.10"}))
    env = _env(
        tmp_path,
        STACK_RESOLVER_PYTHON="3.12.4",
        STACK_RESOLVER_GPUS="8.6",
        STACK_RESOLVER_ROCM_VERSION="6.4.1",
    )
    result = run_cli(tmp_path, env, "detect", "--host", "host.json", "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    host = json.loads(result.stdout)
    assert host["python"] == "3.12.4"
    assert [gpu["compute_capability"] for gpu in host["gpus"]] == ["8.6"]
    assert host["sources"]["python"] == "STACK_RESOLVER_PYTHON"
    assert host["rocm_version"] == "6.4.1"
