"""An unchanged re-run of `resolve` asks no index and rewrites nothing (resolver/lock/fresh.py);
any change to what the lock was made from (the lock itself, the team file, the matrix, the
record) sends the run down the full path again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resolver.matrix.load import default_matrix_dir
from tests.fixtures.pyindex import FixtureIndex
from tests.lock.test_resolve_poetry_e2e import run_resolve, snapshot, tool_env, write_team

__all__ = ["tool_env"]  # the fixture, shared with the end-to-end tests

pytestmark = pytest.mark.e2e

TARGET = ("--host", "h100.json", "--target", "gpu", "--json")


def _rerun(root: Path, env: dict[str, str], index: FixtureIndex) -> tuple[dict[str, object], int]:
    before = len(index.requests)
    proc = run_resolve(root, env, *TARGET)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout), len(index.requests) - before


def test_an_unchanged_rerun_asks_nothing_and_any_change_asks_again(
    tmp_path: Path, fixture_index: FixtureIndex, tool_env: dict[str, str]
) -> None:
    write_team(tmp_path, fixture_index, ["torchvision"])
    first, asked = _rerun(tmp_path, tool_env, fixture_index)
    assert asked > 0
    env_dir = tmp_path / "envs" / "gpu"
    record = json.loads((env_dir / "resolution.json").read_text())
    assert record["fresh"]["request_hash"].startswith("sha256:")
    assert record["matrix_sha256"].startswith("sha256:")
    committed = snapshot(env_dir)

    # 1. unchanged: no request, no file touched, the same answer
    again, asked = _rerun(tmp_path, tool_env, fixture_index)
    assert asked == 0
    assert snapshot(env_dir) == committed
    keys = ("torch", "variant", "python")
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}

    # 2. a hand-edited lock is not vouched for: the index is asked and the lock made again
    (env_dir / "poetry.lock").write_bytes(committed["poetry.lock"] + b"\n# edited\n")
    _, asked = _rerun(tmp_path, tool_env, fixture_index)
    assert asked > 0
    assert snapshot(env_dir)["poetry.lock"] == committed["poetry.lock"]
    assert _rerun(tmp_path, tool_env, fixture_index)[1] == 0

    # 3. a record from before the digest existed: asked once, then only the record is rewritten
    record = json.loads((env_dir / "resolution.json").read_text())
    del record["fresh"]
    (env_dir / "resolution.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    assert _rerun(tmp_path, tool_env, fixture_index)[1] > 0
    assert snapshot(env_dir)["poetry.lock"] == committed["poetry.lock"]
    assert _rerun(tmp_path, tool_env, fixture_index)[1] == 0

    # 4. the matrix changed (even a comment): its digest differs, so the run asks again
    matrix = Path(shutil.copytree(default_matrix_dir(), tmp_path / "matrix"))
    with (matrix / "gpus.toml").open("a", encoding="utf-8") as gpus:
        gpus.write("\n# a note\n")
    changed = dict(tool_env, STACK_RESOLVER_MATRIX=str(matrix))
    assert _rerun(tmp_path, changed, fixture_index)[1] > 0
    assert _rerun(tmp_path, changed, fixture_index)[1] == 0

    # 5. the team file changed: a constraint that keeps the same choice still asks once
    team = tmp_path / "envs" / "team.toml"
    team.write_text('constraints = ["torch>=2.0"]\n' + team.read_text())
    assert _rerun(tmp_path, changed, fixture_index)[1] > 0
    assert _rerun(tmp_path, changed, fixture_index)[1] == 0
