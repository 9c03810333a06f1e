"""The write pipeline: one survey before one solve, the same answer from `--dry-run
--check-indexes` as from a real run, a dry run that asks no index and says so, and the loopback
mirror in front of Poetry only when asked for (its one assumption about Poetry's internals pinned
against Poetry itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.lock.poetry.mirror import content_hash
from tests.fixtures.cli import loopback_env, run_cli, write_project
from tests.fixtures.isolation import poetry_argv, poetry_available
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

needs_poetry = pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed")
NOT_CHECKED = "Indexes not checked (--dry-run)"

# pyproject shapes the tool writes (PEP 621 + Poetry sources) and users keep (groups, legacy tables)
PYPROJECTS = {
    "tool-written": """
[project]
name = "env"
version = "0"
requires-python = ">=3.11,<3.12"
dependencies = ["torch==2.8.0+cu129", "transformers==4.57.6"]

[tool.poetry]
package-mode = false

[tool.poetry.dependencies]
torch = {source = "pytorch-cu129"}

[[tool.poetry.source]]
name = "pytorch-cu129"
url = "https://idx.example/whl/cu129/simple"
priority = "explicit"

[[tool.poetry.source]]
name = "general"
url = "https://idx.example/simple"
priority = "primary"
""",
    "groups": """
[project]
name = "env"
version = "0"
dependencies = ["requests>=2"]

[project.optional-dependencies]
cli = ["rich"]

[dependency-groups]
dev = ["pytest>=8"]

[tool.poetry]
package-mode = false
""",
    "legacy": """
[tool.poetry]
name = "env"
version = "0"
description = ""
authors = []

[tool.poetry.dependencies]
python = "^3.11"
requests = "^2.31"

[tool.poetry.group.dev.dependencies]
pytest = "^8"
""",
}

POETRYS_HASH = """
import sys
from pathlib import Path
from poetry.factory import Factory
poetry = Factory().create_poetry(Path(sys.argv[1]))
print(poetry.locker._get_content_hash())
"""


def _poetry_python() -> str:
    """The interpreter Poetry runs in (its script's shebang, or this one for `python -m poetry`)."""
    argv = poetry_argv()
    if len(argv) > 1:
        return argv[0]
    first = Path(argv[0]).read_bytes().split(b"\n", 1)[0]
    assert first.startswith(b"#!"), argv
    return first[2:].decode().strip()


@needs_poetry
@pytest.mark.parametrize("shape", sorted(PYPROJECTS))
def test_the_mirrors_content_hash_is_poetrys_own(tmp_path: Path, shape: str) -> None:
    """The mirror re-implements Poetry's private `Locker._get_content_hash`: a Poetry upgrade that
    changes it fails here (and the mirror, which checks it too, refuses an --offline lock)."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECTS[shape], encoding="utf-8")
    proc = subprocess.run(
        [_poetry_python(), "-c", POETRYS_HASH, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ours = content_hash(tomllib.loads(PYPROJECTS[shape]))
    assert proc.stdout.strip() == ours


def _project(root: Path, index: FixtureIndex) -> None:
    write_project(
        root,
        'packages = ["torchvision"]\n\n[indexes]\n'
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\n'
        f'general = "{index.url()}"\n',
    )


def _resolve(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, "resolve", "--team", "envs/team.toml", "--host", "h100.json", *args)


def test_a_dry_run_asks_no_index_and_says_so(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    _project(tmp_path, fixture_index)
    env = loopback_env(tmp_path, fixture_index)
    fixture_index.stop()  # nothing to connect to
    proc = _resolve(tmp_path, env, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["indexes_checked"] is False
    text = _resolve(tmp_path, env, "--dry-run")
    assert text.returncode == 0, text.stderr
    assert [line for line in text.stdout.splitlines() if line.startswith(NOT_CHECKED)] != []
    assert sorted(p.name for p in (tmp_path / "envs").iterdir()) == ["team.toml"]  # nothing written


def test_check_indexes_needs_dry_run(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    _project(tmp_path, fixture_index)
    proc = _resolve(tmp_path, loopback_env(tmp_path, fixture_index), "--check-indexes")
    assert proc.returncode == 2 and "--check-indexes" in proc.stderr


@pytest.mark.e2e
@needs_poetry
def test_check_indexes_gives_the_real_runs_answer(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    """The fixture index lacks the matrix's newest builds: a plain dry run announces one of them,
    `--dry-run --check-indexes` the build the real run then locks."""
    _project(tmp_path, fixture_index)
    env = loopback_env(tmp_path, fixture_index)
    plain = json.loads(_resolve(tmp_path, env, "--dry-run", "--json").stdout)
    checked_proc = _resolve(tmp_path, env, "--dry-run", "--check-indexes", "--json")
    assert checked_proc.returncode == 0, checked_proc.stderr
    checked = json.loads(checked_proc.stdout)
    assert checked["indexes_checked"] is True
    assert not (tmp_path / "envs" / "gpu").exists()
    real_proc = _resolve(tmp_path, env, "--target", "gpu", "--json")
    assert real_proc.returncode == 0, real_proc.stderr
    real = json.loads(real_proc.stdout)
    assert real["indexes_checked"] is True
    for key in ("torch", "variant", "python", "torchvision", "transformers", "index_url"):
        assert checked[key] == real[key], key
    assert plain["torch"] != real["torch"]  # the index check is what made the difference


@pytest.mark.e2e
@needs_poetry
def test_poetry_reads_through_the_mirror_unless_switched_off(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    """By default Poetry reads the index through the tool's mirror, so the tool's cache holds
    every page Poetry read too; with `STACK_RESOLVER_MIRROR=0` Poetry talks to the index itself
    and the cache holds only what the tool read. Both ways commit the same bytes."""
    caches, locks = {}, {}
    for name, extra in (("direct", {"STACK_RESOLVER_MIRROR": "0"}), ("mirrored", {})):
        root = tmp_path / name
        _project(root, fixture_index)
        env = {**loopback_env(root, fixture_index), **extra}
        if not extra:
            env.pop("STACK_RESOLVER_MIRROR", None)  # the default, whatever the caller's shell says
        proc = _resolve(root, env, "--target", "gpu")
        assert proc.returncode == 0, proc.stderr
        caches[name] = {p.name for p in (root / "http-cache").rglob("*") if p.is_file()}
        locks[name] = (root / "envs" / "gpu" / "poetry.lock").read_bytes()
    assert caches["direct"] < caches["mirrored"]
    assert locks["direct"] == locks["mirrored"]
