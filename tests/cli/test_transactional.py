"""Guarantee 2 (transactional runs): a run that fails, even after it staged some targets, leaves
every file of envs/ byte-identical to before, and no staging folder or temporary file anywhere.

Each test locks the five-target team of tests/data/team for real (Poetry against the loopback
fixture index), snapshots envs/, then runs a `lock` that changes every target's inputs
(`--constraint transformers<5`) and fails in one way: a Poetry error in one target after the
others were locked, an index fault that only one target's Poetry lock meets, the index down,
or bad input. The single-target `resolve` equivalents for a Poetry error and the index down are
in tests/lock/test_resolve_poetry_e2e.py (`test_user_edits_are_kept_and_failures_leave_files_alone`);
bad input for `resolve` is here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resolver.fsutil import TEMP_PREFIX
from tests.fixtures.cli import loopback_env, run_cli
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import Fault, FixtureIndex

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter"),
]

TEAM = Path(__file__).parents[1] / "data" / "team"
CHANGE = ("--constraint", "transformers<5")  # every target's pyproject and lock would change


def _env(tmp: Path, index: FixtureIndex) -> dict[str, str]:
    env = loopback_env(tmp, index)
    scratch = tmp / "system-tmp"  # where Poetry's staging folders go
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    return env


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (None), so an extra folder shows up too."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def _locked_team(tmp: Path, env: dict[str, str]) -> Path:
    shutil.copytree(TEAM, tmp / "envs")
    proc = run_cli(tmp, env, "lock", "--team", "envs/team.toml")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return tmp / "envs"


def _assert_untouched(envs: Path, before: dict[str, bytes | None], env: dict[str, str]) -> None:
    assert _snapshot(envs) == before
    assert not list(envs.rglob(f"{TEMP_PREFIX}*"))
    assert not list(envs.rglob("stack-resolver-staging-*"))
    assert not list(Path(env["TMPDIR"]).iterdir()), "a staging folder was left in the system temp dir"


def test_poetry_error_in_the_last_target_after_the_others_locked(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    env = _env(tmp_path, fixture_index)
    envs = _locked_team(tmp_path, env)
    # A dependency no index has, added by hand to one target: only its Poetry lock fails.
    pyproject = envs / "mac-laptop" / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace("dependencies = [\n", 'dependencies = [\n    "no-such-package-anywhere",\n', 1)
    )
    before = _snapshot(envs)
    fixture_index.clear_log()
    # One job: the four other targets are locked, one after the other, before mac-laptop fails.
    proc = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml", "--jobs", "1", *CHANGE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "poetry lock" in proc.stderr and "no-such-package-anywhere" in proc.stderr
    # The others really were locked anew: Poetry read the cu118 torch metadata (a100-old-driver).
    assert fixture_index.requests_for(index="cu118", kind="metadata")
    _assert_untouched(envs, before, env)


def test_index_fault_only_one_targets_poetry_lock_meets(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _env(tmp_path, fixture_index)
    envs = _locked_team(tmp_path, env)
    # Only a100-old-driver (cu118) needs the CUDA 11 runtime packages, and only its Poetry lock
    # asks for them (the tool's own look-ups never do) when it locks without a previous lock
    # (with one, Poetry keeps the locked versions and asks for nothing).
    (envs / "a100-old-driver" / "poetry.lock").unlink()
    before = _snapshot(envs)
    fixture_index.faults.add("/simple/nvidia-cudnn-cu11/", Fault.http(500), times=100)
    proc = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml", *CHANGE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # Poetry reads through the tool's mirror: the tool's client names the URL and the 500
    assert "/simple/nvidia-cudnn-cu11/" in proc.stderr and "500" in proc.stderr
    _assert_untouched(envs, before, env)


def test_index_down(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _env(tmp_path, fixture_index)
    envs = _locked_team(tmp_path, env)
    before = _snapshot(envs)
    fixture_index.stop()
    proc = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml", *CHANGE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "http://127.0.0.1" in proc.stderr
    _assert_untouched(envs, before, env)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("team.toml", '[targets.gtx1080\nhost = "hosts/gtx1080.json"\n'),  # TOML syntax error
        ("hosts/gtx1080.json", '{"os": "linux", "arch": '),  # a host file cut short
        ("hosts/rtx5090.json", '{"os": "linux", "arch": "x86_64", "nvidia_driver": "banana"}'),
    ],
)
def test_bad_input(tmp_path: Path, fixture_index: FixtureIndex, path: str, content: str) -> None:
    env = _env(tmp_path, fixture_index)
    envs = _locked_team(tmp_path, env)
    (envs / path).write_text(content)
    before = _snapshot(envs)
    proc = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml", *CHANGE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert path.rsplit("/", 1)[-1] in proc.stderr
    _assert_untouched(envs, before, env)


def test_resolve_with_bad_input_writes_nothing(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _env(tmp_path, fixture_index)
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "team.toml").write_text('packages = ["torchvision"]\n')
    host = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
    (tmp_path / "cpu.json").write_text(json.dumps(host))
    args = ("resolve", "--team", "envs/team.toml", "--host", "cpu.json", "--target", "cpu")
    first = run_cli(tmp_path, env, *args)
    assert first.returncode == 0, first.stderr
    before = _snapshot(envs)
    for bad in (("--constraint", "torch<<2.8"), ("--variant", "cu9999x"), ("--python", "three")):
        proc = run_cli(tmp_path, env, *args, *bad)
        assert proc.returncode == 2, (bad, proc.stdout + proc.stderr)
        _assert_untouched(envs, before, env)
    (tmp_path / "cpu.json").write_text('{"os": "linux", ')
    proc = run_cli(tmp_path, env, *args, "--constraint", "torch<2.8")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _assert_untouched(envs, before, env)
