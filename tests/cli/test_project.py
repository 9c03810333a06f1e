"""Project discovery: from any folder below the one holding envs/team.toml, or with --project."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from resolver.errors import InputError
from resolver.project import find_project
from tests.fixtures.cli import run_cli, write_project

# A team constraint the shipped matrix's best choice for an H100 does not meet, so the choice shows
# whether the team file was read.
TEAM = 'constraints = ["torch<2.6"]\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_project(root, TEAM)
    (root / "envs" / "hosts").mkdir()
    (root / "elsewhere").mkdir()
    return root


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STACK_RESOLVER_")}


@pytest.mark.parametrize("sub", [".", "envs", "envs/hosts"])
def test_the_team_file_is_found_from_any_folder_below_the_project(project: Path, sub: str) -> None:
    host = os.path.relpath(project / "h100.json", project / sub)
    proc = run_cli(project / sub, _env(), "resolve", "--dry-run", "--json", "--host", host)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["torch"].startswith("2.5."), proc.stdout
    assert f"project: {project.resolve()}" in proc.stderr


def test_project_flag_names_it_from_outside(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    args = ("--project", str(project), "--dry-run", "--json", "--host", "../repo/h100.json")
    proc = run_cli(outside, _env(), "resolve", *args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["torch"].startswith("2.5.")
    assert f"project: {project.resolve()} (--project)" in proc.stderr


def test_without_a_team_file_the_working_directory_is_used_silently(tmp_path: Path) -> None:
    write_project(tmp_path, "")
    (tmp_path / "envs" / "team.toml").unlink()
    proc = run_cli(tmp_path, _env(), "resolve", "--dry-run", "--json", "--host", "h100.json")
    assert proc.returncode == 0, proc.stderr
    assert not json.loads(proc.stdout)["torch"].startswith("2.5.")
    assert "project:" not in proc.stderr


def test_the_nearest_project_wins(project: Path) -> None:
    inner = project / "elsewhere"
    write_project(inner, "")
    found = find_project(inner / "envs")
    assert found.root == inner.resolve()
    assert found.team_file == inner.resolve() / "envs" / "team.toml"
    assert find_project(project / "envs" / "hosts").root == project.resolve()


def test_a_missing_project_folder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--project"):
        find_project(tmp_path, tmp_path / "nope")
    proc = run_cli(tmp_path, _env(), "matrix", "validate", "--project", "nope")
    assert proc.returncode == 2
    assert "nope" in proc.stderr


def test_lock_dry_run_from_inside_envs_sees_the_team_targets(tmp_path: Path) -> None:
    shutil.copytree(Path(__file__).parents[1] / "data" / "team", tmp_path / "envs")
    proc = run_cli(tmp_path / "envs" / "hosts", _env(), "lock", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "rtx5090" in json.loads(proc.stdout)["targets"]
