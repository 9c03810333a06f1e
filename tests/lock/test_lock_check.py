"""`lock --check`: exit 5 (CHECK_FAILED) when any target's lock is stale against its inputs or the
matrix, 0 when every lock is current; nothing is written either way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from resolver.errors import ExitCode
from tests.fixtures.cli import file_tree, loopback_env, run_cli, write_project
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import FixtureIndex

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed")]

MATRIX = Path(__file__).resolve().parents[2] / "matrices"


def test_lock_check_names_stale_targets_and_writes_nothing(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    team = 'packages = ["torchvision"]\n\n[targets.cpu]\nhost = "../cpu.json"\n'
    write_project(tmp_path, team)
    env = loopback_env(tmp_path, fixture_index)
    missing = run_cli(tmp_path, env, "lock", "--check", "--json")
    assert missing.returncode == ExitCode.CHECK_FAILED, missing.stderr
    assert json.loads(missing.stdout)["targets"]["cpu"] == {
        "fresh": False, "why": "not locked", "directory": "envs/cpu"
    }  # fmt: skip
    locked = run_cli(tmp_path, env, "lock")
    assert locked.returncode == 0, locked.stderr
    # not a terminal: a plain line when the long step starts, and one with its duration
    assert "poetry lock ...\n" in locked.stderr
    assert re.search(r"poetry lock: done in \d+\.\d s", locked.stderr), locked.stderr
    before = file_tree(tmp_path / "envs")
    fresh = run_cli(tmp_path, env, "lock", "--check", "-q")
    assert fresh.returncode == ExitCode.OK, fresh.stderr + fresh.stdout
    assert fresh.stderr == ""  # -q: no project line, no progress
    assert "envs/cpu: up to date" in fresh.stdout

    # the team's inputs change: a new package
    (tmp_path / "envs" / "team.toml").write_text(
        team.replace('["torchvision"]', '["torchvision", "accelerate"]')
    )
    stale = run_cli(tmp_path, env, "lock", "--check", "--json")
    assert stale.returncode == ExitCode.CHECK_FAILED
    assert json.loads(stale.stdout)["stale"] == ["cpu"]
    assert "pyproject.toml would change" in json.loads(stale.stdout)["targets"]["cpu"]["why"]
    (tmp_path / "envs" / "team.toml").write_text(team)

    # the matrix changes (a new version of the same data)
    matrix = tmp_path / "matrix"
    shutil.copytree(MATRIX, matrix, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    sources = matrix / "sources.toml"
    text = sources.read_text(encoding="utf-8")
    sources.write_text(text.replace('version = "', 'version = "9999-', 1), encoding="utf-8")
    moved = run_cli(tmp_path, env, "lock", "--check", "--matrix", str(matrix))
    assert moved.returncode == ExitCode.CHECK_FAILED, moved.stderr + moved.stdout
    assert "the matrix changed" in moved.stdout
    assert file_tree(tmp_path / "envs") == {**before, "team.toml": before["team.toml"]}
