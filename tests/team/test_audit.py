"""Upgrade audits over the multi-target fixture team (tests/data/team)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from resolver.config import load_team
from resolver.matrix.load import load_matrix
from resolver.solve.request import Request
from resolver.sources import Indexes
from resolver.team import audit
from resolver.team.lock import team_json
from resolver.team.solve import solve_team
from resolver.team.targets import load_targets
from tests.fixtures.cli import run_cli
from tests.fixtures.isolation import poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

TEAM = Path(__file__).parents[1] / "data" / "team"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load_matrix()


@pytest.fixture(scope="module")
def team_setup(matrix: Any) -> tuple[Any, Any, dict[str, Any]]:
    team = load_team(TEAM / "team.toml")
    targets = load_targets(team, matrix)
    current = team_json(solve_team(targets, matrix, Request()), Indexes())
    return team, targets, current


def run_audit(matrix: Any, team_setup: Any, *specs: str) -> audit.Audit:
    _, targets, current = team_setup
    return audit.audit_team(targets, matrix, Request(), specs, current)


def by_name(result: audit.Audit) -> dict[str, audit.TargetAudit]:
    return {t.name: t for t in result.targets}


def test_bump_that_drops_an_old_gpu(matrix: Any, team_setup: Any) -> None:
    result = run_audit(matrix, team_setup, "torch==2.15.0")
    targets = by_name(result)
    assert targets["gtx1080"].status == "broken"
    assert any("lacks sm_61" in c for c in targets["gtx1080"].causes)
    assert targets["cpu-laptop"].status == "ok" and targets["mac-laptop"].status == "ok"
    assert result.exit_code == 4


def test_bump_that_needs_a_newer_driver(matrix: Any, team_setup: Any) -> None:
    result = run_audit(matrix, team_setup, "torch==2.8.0")
    targets = by_name(result)
    old = targets["a100-old-driver"]
    assert old.status == "broken"
    assert old.causes[0].endswith("CUDA 12.x needs driver >= 525.60.13; this host has driver 470.82.01")
    # What it would take, the bump kept: the driver floor of CUDA 12.x (never "drop torch==2.8.0").
    assert {"nvidia_driver": "525.60.13"} in [dict(f.apply) for f in old.fixes]
    assert not any("drop_constraint" in f.apply for f in old.fixes)
    # The Blackwell card stays valid but switches to the newer CUDA build of 2.8.
    assert targets["rtx5090"].status == "changed"
    assert "variant cu128 -> cu129" in targets["rtx5090"].changes
    assert targets["gtx1080"].status == "ok"
    assert "torch 2.7.1+cu126 -> 2.8.0+cu126" in targets["gtx1080"].changes
    assert result.exit_code == 4


def test_transformers_bump_that_needs_a_newer_torch(tmp_path: Path, matrix: Any) -> None:
    (tmp_path / "team.toml").write_text(
        f'[targets.legacy]\nhost = "{TEAM / "hosts/cpu-laptop.json"}"\nconstraints = ["torch<2.6"]\n'
        f'[targets.cpu-laptop]\nhost = "{TEAM / "hosts/cpu-laptop.json"}"\n'
    )
    targets = load_targets(load_team(tmp_path / "team.toml"), matrix)
    current = team_json(solve_team(targets, matrix, Request()), Indexes())
    result = audit.audit_team(targets, matrix, Request(), ["transformers>=5.20"], current)
    targets_by = by_name(result)
    assert targets_by["legacy"].status == "broken"
    assert any("has no transformers within transformers>=5.20" in c for c in targets_by["legacy"].causes)
    assert targets_by["cpu-laptop"].status == "ok"
    assert result.exit_code == 4


def test_harmless_bump(matrix: Any, team_setup: Any) -> None:
    result = run_audit(matrix, team_setup, "torch==2.7.1")
    assert {t.status for t in result.targets} == {"ok"}
    assert all(t.changes == () for t in result.targets)
    assert result.exit_code == 0


def test_json_markdown_and_svg(matrix: Any, team_setup: Any) -> None:
    result = run_audit(matrix, team_setup, "torch==2.8.0")
    payload = audit.audit_json(result)
    assert payload["status"] == "broken"
    assert payload["targets"]["a100-old-driver"]["status"] == "broken"
    assert payload["targets"]["rtx5090"]["proposed"]["torch"] == "2.8.0+cu129"
    markdown = audit.render_markdown(result)
    assert "| a100-old-driver | broken |" in markdown and "| gtx1080 | ok |" in markdown

    root = ET.fromstring(audit.render_svg(result))
    cells = root.findall(f"{SVG}g")
    releases = payload["grid"]["releases"]
    assert releases[0] == "2.7.1" and releases[-1] == "2.15.0"
    assert len(cells) == len(result.targets) * len(releases)
    for cell in cells:
        target, release = cell.get("data-target"), cell.get("data-release")
        expected = payload["grid"]["targets"][target][release]["status"]
        assert cell.get("data-status") == expected
        assert cell.find(f"{SVG}rect").get("fill") == audit.COLOURS[expected]
        assert release in cell.find(f"{SVG}title").text
    # how far each machine can go: the old driver is broken from 2.8.0 on, the laptop never
    grid = payload["grid"]["targets"]
    assert grid["a100-old-driver"]["2.7.1"]["status"] == "ok"
    assert grid["a100-old-driver"]["2.8.0"]["status"] == "broken"
    assert {c["status"] for c in grid["cpu-laptop"].values()} == {"ok"}


def test_cli_exit_status_gates_the_bump(tmp_path: Path) -> None:
    shutil.copytree(TEAM, tmp_path / "envs")
    env = dict(__import__("os").environ)
    broken = run_cli(
        tmp_path, env, "audit", "--team", "envs/team.toml", "--no-lock", "--json", "torch==2.8.0"
    )
    assert broken.returncode == 4, broken.stderr
    assert json.loads(broken.stdout)["status"] == "broken"
    fine = run_cli(
        tmp_path,
        env,
        "audit",
        "--team",
        "envs/team.toml",
        "--no-lock",
        "--report",
        "audit.md",
        "--grid",
        "grid.svg",
        "torch==2.7.1",
    )
    assert fine.returncode == 0, fine.stderr
    assert (tmp_path / "audit.md").read_text().startswith("## Upgrade audit")
    ET.parse(tmp_path / "grid.svg")


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
def test_package_diff_from_a_scratch_lock_leaves_envs_alone(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    envs = tmp_path / "envs"
    shutil.copytree(TEAM, envs)
    # Without the old-driver machine the team can reach 2.8.0, the newest the fixture index has.
    text = (envs / "team.toml").read_text()
    (envs / "team.toml").write_text(
        text.replace('[targets.a100-old-driver]\nhost = "hosts/a100-driver-470.json"', "")
    )
    env = poetry_env(tmp_path / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "http-cache")
    env["STACK_RESOLVER_PYTORCH_INDEX"] = f"{fixture_index.base_url}/whl/{{variant}}/simple"
    env["STACK_RESOLVER_INDEX_URL"] = fixture_index.url()
    locked = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml")
    assert locked.returncode == 0, locked.stderr + locked.stdout
    before = {str(p): p.read_bytes() for p in envs.rglob("*") if p.is_file()}

    proc = run_cli(tmp_path, env, "audit", "--team", "envs/team.toml", "--json", "torch==2.7.1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    gtx = payload["targets"]["gtx1080"]["packages"]
    assert gtx["downgraded"]["torch"] == ["2.8.0+cu126", "2.7.1+cu126"]
    assert gtx["downgraded"]["triton"] == ["3.4.0", "3.3.1"]
    assert payload["targets"]["mac-laptop"]["packages"]["downgraded"]["torch"] == ["2.8.0", "2.7.1"]
    # envs/ was only read
    assert {str(p): p.read_bytes() for p in envs.rglob("*") if p.is_file()} == before


def test_audit_of_a_matrix_update(tmp_path: Path) -> None:
    """`audit --matrix OTHER_DIR`: what a refreshed matrix changes for the team. Here the update
    says 2.x cu126 builds no longer carry sm_60 (so no sm_61 GPU runs them)."""
    other = tmp_path / "matrix"
    shutil.copytree(Path(__file__).parents[2] / "matrices", other)
    builds = other / "builds.toml"
    builds.write_text(builds.read_text().replace('"5.0", "6.0", "7.0"', '"5.0", "7.0"'))
    shutil.copytree(TEAM, tmp_path / "envs")
    env = dict(__import__("os").environ)
    env.pop("STACK_RESOLVER_MATRIX", None)
    # the current team lock, made with the shipped matrix
    current = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml", "--dry-run", "--json")
    assert current.returncode == 0, current.stderr
    (tmp_path / "envs" / "team.lock.json").write_text(current.stdout)
    proc = run_cli(
        tmp_path, env, "audit", "--team", "envs/team.toml", "--no-lock", "--json", "--matrix", str(other)
    )
    assert proc.returncode == 4, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["targets"]["gtx1080"]["status"] == "broken"
    assert any("lacks sm_61" in c for c in payload["targets"]["gtx1080"]["causes"])
    assert payload["targets"]["rtx5090"]["status"] == "ok"
