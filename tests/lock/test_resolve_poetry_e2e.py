"""End to end: host file -> resolve -> real `poetry lock` against the loopback index -> real
`poetry install` into a fresh venv -> installed versions match the lock.

The fixture index carries torch 2.5.1-2.8.0 only, while the matrix knows releases up to 2.15, so
every run also exercises the "not on <index URL>" fallback to the newest build that exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

from resolver.lock.guard import ENVS_LOCK
from tests.fixtures.cli import run_cli, write_project
from tests.fixtures.isolation import poetry_argv, poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter"),
]


def write_team(root: Path, index: FixtureIndex, packages: list[str]) -> Path:
    return write_project(
        root,
        f"packages = {json.dumps(packages)}\n\n"
        "[indexes]\n"
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\n'
        f'general = "{index.url()}"\n',
    )


def run_resolve(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, "resolve", "--team", "envs/team.toml", *args, timeout=600)


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    env = poetry_env(tmp_path / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "http-cache")
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    return env


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def locked_packages(lock_path: Path) -> dict[str, dict[str, Any]]:
    data = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    return {pkg["name"]: pkg for pkg in data["package"]}


@pytest.mark.parametrize(
    ("host", "torch", "variant"),
    [("h100", "2.8.0+cu129", "cu129"), ("cpu", "2.8.0+cpu", "cpu"), ("k80", "2.7.1+cu118", "cu118")],
)
def test_resolve_locks_the_chosen_build_from_its_source(
    tmp_path: Path, fixture_index: FixtureIndex, tool_env: dict[str, str], host: str, torch: str, variant: str
) -> None:
    write_team(tmp_path, fixture_index, ["torchvision"])
    proc = run_resolve(tmp_path, tool_env, "--host", f"{host}.json", "--target", host, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["torch"] == torch
    assert payload["variant"] == variant
    assert payload["index_url"] == fixture_index.variant_url(variant)
    # Newer builds the matrix knows but the index lacks were rejected with the URL named
    # (for the K80 the matrix's own best, 2.7.1+cu118, is on the index).
    reasons = [r for item in payload["rejected"] for r in item["reasons"]]
    lagging = any("is not on http://127.0.0.1" in r for r in reasons)
    assert lagging == (host != "k80"), reasons

    env_dir = tmp_path / "envs" / host
    assert sorted(p.name for p in env_dir.iterdir()) == ["poetry.lock", "pyproject.toml", "resolution.json"]
    packages = locked_packages(env_dir / "poetry.lock")
    assert packages["torch"]["version"] == torch
    assert packages["torch"]["source"]["url"] == fixture_index.variant_url(variant)
    assert packages["torchvision"]["source"]["url"] == fixture_index.variant_url(variant)
    for pkg in packages.values():
        assert pkg["files"], pkg["name"]
        assert all(f["hash"].startswith("sha256:") for f in pkg["files"]), pkg["name"]
        # Every package came from one of the two loopback indexes: nothing from anywhere else.
        assert pkg["source"]["url"] in {fixture_index.url(), fixture_index.variant_url(variant)}, pkg
    if variant.startswith("cu"):
        # triton is bound to the PyTorch index (the torchtriton lesson), not left to the general one
        assert packages["triton"]["source"]["url"] == fixture_index.variant_url(variant)
    check = subprocess.run(
        [*poetry_argv(), "check", "--lock", "--no-interaction"],
        cwd=env_dir,
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    record = json.loads((env_dir / "resolution.json").read_text())
    assert record["resolution"]["torch"] == torch
    assert record["host"]["os"] == "linux"


def test_install_matches_lock_and_rerun_reuses(
    tmp_path: Path, fixture_index: FixtureIndex, tool_env: dict[str, str]
) -> None:
    write_team(tmp_path, fixture_index, ["torchvision"])
    proc = run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    env_dir = tmp_path / "envs" / "gpu"
    before = snapshot(env_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in env_dir.iterdir()}

    rerun = run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu")
    assert rerun.returncode == 0, rerun.stderr
    assert "lock reused" in rerun.stdout
    assert snapshot(env_dir) == before
    assert {p.name: p.stat().st_mtime_ns for p in env_dir.iterdir()} == mtimes

    # poetry install into a fresh virtual environment, then compare what is installed with the lock.
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    env = dict(tool_env, VIRTUAL_ENV=str(target), PATH=f"{target / 'bin'}{os.pathsep}{tool_env['PATH']}")
    install = subprocess.run(
        [*poetry_argv(), "install", "--no-root", "--no-interaction"],
        cwd=env_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr + install.stdout
    lock = locked_packages(env_dir / "poetry.lock")
    locked = {name: pkg["version"] for name, pkg in lock.items()}
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for n in json.loads(sys.argv[1]):\n"
        "    try: found[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(found))"
    )
    shown = subprocess.run(
        [str(python), "-c", script, json.dumps(sorted(locked))],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    installed = json.loads(shown.stdout)
    assert installed == {name: locked[name] for name in installed}
    # Only packages the lock marks for other platforms (colorama: Windows) may be absent.
    absent = set(locked) - set(installed)
    assert all("markers" in lock[name] for name in absent), absent
    assert {"torch", "torchvision", "transformers", "triton", "nvidia-cudnn-cu12"} <= set(installed)
    torch_version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert torch_version.stdout.strip() == "2.8.0+cu129"


def test_user_edits_are_kept_and_failures_leave_files_alone(
    tmp_path: Path, fixture_index: FixtureIndex, tool_env: dict[str, str]
) -> None:
    write_team(tmp_path, fixture_index, [])
    assert run_resolve(tmp_path, tool_env, "--host", "cpu.json", "--target", "cpu").returncode == 0
    env_dir = tmp_path / "envs" / "cpu"
    pyproject = env_dir / "pyproject.toml"
    text = pyproject.read_text()
    edited = (
        "# our notes: keep this comment\n"
        + text.replace("dependencies = [\n", 'dependencies = [\n    "pyyaml>=6",   # added by hand\n', 1)
        + "\n[tool.custom]\nanswer   =   42   # odd spacing stays\n"
    )
    pyproject.write_text(edited)
    proc = run_resolve(tmp_path, tool_env, "--host", "cpu.json", "--target", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert pyproject.read_text() == edited  # nothing the user wrote changed, byte for byte
    assert "pyyaml" in locked_packages(env_dir / "poetry.lock")  # and the lock honours it

    # A Poetry failure (a dependency no index has) leaves every file as it was.
    before = snapshot(env_dir)
    broken = edited.replace('"pyyaml>=6",', '"pyyaml>=6", "no-such-package-anywhere",', 1)
    pyproject.write_text(broken)
    before["pyproject.toml"] = broken.encode()
    failed = run_resolve(tmp_path, tool_env, "--host", "cpu.json", "--target", "cpu")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "poetry lock" in failed.stderr and "Hint:" in failed.stderr
    assert snapshot(env_dir) == before
    # nothing left behind (the advisory lock file of envs/ stays: it is not a leftover)
    assert not [
        p for p in env_dir.parent.iterdir() if p.name.startswith(".stack-resolver") and p.name != ENVS_LOCK
    ]

    # An unreachable index: the run fails naming the URL, and the files stay as they were.
    fixture_index.stop()
    pyproject.write_text(edited)
    before["pyproject.toml"] = edited.encode()
    down = run_resolve(
        tmp_path, tool_env, "--host", "cpu.json", "--target", "cpu", "--constraint", "torch<2.8"
    )
    assert down.returncode == 1, down.stdout + down.stderr
    assert "http://127.0.0.1" in down.stderr
    assert snapshot(env_dir) == before
