"""conda-lock.yml end to end against a real conda channel on loopback.

Real `.tar.bz2` packages (pytorch in a `cuda126_*` and a `cpu_*` build, cuda-version, libcublas,
python, transformers, ...) are indexed with `rattler.index` and served on 127.0.0.1. The tool
solves in-process with py-rattler for the target host's virtual packages, writes conda-lock.yml
with conda-lock's models, and the tests parse it back with conda-lock, run `conda-lock render`, and
install it with `rattler.install` into a prefix whose records must match the lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

try:
    import conda_lock.lockfile as conda_lock_lockfile
    import rattler
except ImportError as exc:  # absent, or broken (conda-lock 4 needs dulwich<0.25, Poetry 2.5 >=0.25)
    pytest.skip(
        f"py-rattler / conda-lock cannot be imported ({exc}); pip install 'stack-resolver[conda]' "
        "in an environment without Poetry (nox -s tests does)",
        allow_module_level=True,
    )

from resolver.config import team_from_mapping
from resolver.errors import ExternalToolError, NoCompatibleCombination
from resolver.explain.failure import causes, headline
from resolver.host.hostfile import host_from_mapping
from resolver.lock.conda import (
    CONDA_LOCKFILE,
    ENVIRONMENT,
    CondaSettings,
    conda_inputs,
    lock_in_staging,
    stage_conda,
    virtual_packages,
)
from resolver.lock.guard import ENVS_LOCK
from resolver.lock.runner import Completed
from resolver.matrix.load import load_matrix
from resolver.solve.request import Request
from resolver.solve.search import solve
from resolver.sources import Channels
from tests.fixtures.cli import HOSTS as SHARED_HOSTS
from tests.fixtures.cli import run_cli, write_project
from tests.fixtures.condachannel import CondaChannel, standard_packages
from tests.fixtures.isolation import offline_env, poetry_available
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.e2e

HOSTS: dict[str, dict[str, Any]] = {
    "h100": SHARED_HOSTS["h100"],
    "cpu": SHARED_HOSTS["cpu"],
    # a driver below the CUDA 12 floor (525.60.13): __cuda is 11.4
    "a100-old-driver": {
        **SHARED_HOSTS["k80"],
        "python": "3.11",
        "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}],
    },
}
DATA = Path(__file__).parents[1] / "data" / "conda"


@pytest.fixture
def channel(tmp_path: Path) -> Any:
    with CondaChannel(standard_packages(), tmp_path / "channel") as served:
        yield served


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    env = offline_env(tmp_path / "home")
    env["HOME"] = str(tmp_path / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "cache" / "http")
    return env


def write_team(root: Path, channel: CondaChannel, packages: list[str], formats: list[str]) -> Path:
    return write_project(
        root,
        f"packages = {json.dumps(packages)}\n"
        f"formats = {json.dumps(formats)}\n"
        'channels = ["conda-forge"]\n\n'
        "[conda]\n"
        f'channel_alias = "{channel.alias}"\n',
        HOSTS,
    )


def run_resolve(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, "resolve", "--team", "envs/team.toml", *args, timeout=300)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def locked(path: Path) -> dict[str, Any]:
    lock = conda_lock_lockfile.parse_conda_lock_file(path)
    return {p.name: p for p in lock.package}


def install_lock(lock_path: Path, prefix: Path, scratch: Path) -> dict[str, dict[str, Any]]:
    """Install exactly what the lock names (each archive fetched from its URL and checked against the
    lock's sha256 and md5) with rattler.install; return the prefix's conda-meta records by name."""
    lock = conda_lock_lockfile.parse_conda_lock_file(lock_path)
    scratch.mkdir(parents=True, exist_ok=True)
    records = []
    for package in lock.package:
        data = urllib.request.urlopen(package.url, timeout=30).read()
        assert hashlib.sha256(data).hexdigest() == package.hash.sha256, package.name
        assert hashlib.md5(data).hexdigest() == package.hash.md5, package.name
        archive = scratch / package.url.rsplit("/", 1)[1]
        archive.write_bytes(data)
        record = asyncio.run(rattler.RepoDataRecord.from_package_archive(archive))
        record.url = package.url
        records.append(record)
    asyncio.run(
        rattler.install(
            records,
            target_prefix=prefix,
            cache_dir=scratch / "pkgs",
            show_progress=False,
            execute_link_scripts=False,
        )
    )
    return {
        data["name"]: data
        for data in (json.loads(p.read_text()) for p in sorted((prefix / "conda-meta").glob("*.json")))
    }


@pytest.mark.parametrize(
    ("host", "build", "cuda"),
    [("h100", "cuda126_", "12.4"), ("cpu", "cpu_", None)],
)
def test_lock_parses_renders_and_installs(
    tmp_path: Path, channel: CondaChannel, tool_env: dict[str, str], host: str, build: str, cuda: str | None
) -> None:
    write_team(tmp_path, channel, ["torchvision", "accelerate"], ["conda"])
    proc = run_resolve(tmp_path, tool_env, "--host", f"{host}.json", "--target", host, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["torch"].startswith("2.8.0")
    # newer torch releases the matrix knows but the channel lacks were skipped, with the reason
    reasons = [r for item in payload["rejected"] for r in item["reasons"]]
    assert any("is not on conda channel " + channel.url in r for r in reasons), reasons

    env_dir = tmp_path / "envs" / host
    assert sorted(p.name for p in env_dir.iterdir()) == [
        "conda-lock.yml",
        "environment.yml",
        "resolution.json",
    ]
    packages = locked(env_dir / CONDA_LOCKFILE)
    assert packages["pytorch"].version == "2.8.0"
    assert packages["pytorch"].build is not None and packages["pytorch"].build.startswith(build)
    assert packages["torchvision"].build is not None and packages["torchvision"].build.startswith(build)
    assert packages["transformers"].version == "4.57.6"
    assert "accelerate" in packages
    if cuda is not None:
        assert packages["cuda-version"].version == "12.6"
        assert "libcublas" in packages
        assert "__cuda" in packages["pytorch"].dependencies
    else:
        assert "cuda-version" not in packages and "libcublas" not in packages
    for package in packages.values():
        assert package.manager == "conda" and package.platform == "linux-64"
        assert package.url.startswith(channel.url + "/"), package.url
        assert len(package.hash.md5 or "") == 32 and len(package.hash.sha256 or "") == 64, package.name
    lock = conda_lock_lockfile.parse_conda_lock_file(env_dir / CONDA_LOCKFILE)
    assert list(lock.metadata.content_hash) == ["linux-64"]
    assert [c.url for c in lock.metadata.channels] == [channel.url]
    assert lock.metadata.time_metadata is None  # no timestamp: re-locks are byte-identical

    environment = (env_dir / ENVIRONMENT).read_text()
    assert json.dumps(f"pytorch ==2.8.0 {build}*") in environment
    record = json.loads((env_dir / "resolution.json").read_text())
    assert record["formats"] == ["conda"]
    assert record["conda"]["platform"] == "linux-64"
    assert record["conda"]["virtual_packages"].get("__cuda") == cuda
    assert record["conda"]["virtual_packages"]["__glibc"] == "2.35"
    assert (
        record["conda"]["lock_sha256"] == hashlib.sha256((env_dir / CONDA_LOCKFILE).read_bytes()).hexdigest()
    )

    # conda-lock's own CLI accepts it
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    render = subprocess.run(
        [sys.executable, "-m", "conda_lock", "render", "--kind", "explicit", str(env_dir / CONDA_LOCKFILE)],
        cwd=render_dir,
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert render.returncode == 0, render.stderr
    explicit = (render_dir / "conda-linux-64.lock").read_text()
    for package in packages.values():
        assert f"{package.url}#{package.hash.md5}" in explicit

    installed = install_lock(env_dir / CONDA_LOCKFILE, tmp_path / "prefix", tmp_path / "scratch")
    assert set(installed) == set(packages)
    for name, package in packages.items():
        meta = installed[name]
        # (md5 was checked when the archive was fetched; conda-meta records carry sha256)
        assert (meta["version"], meta["build"], meta["sha256"], meta["url"]) == (
            package.version,
            package.build,
            package.hash.sha256,
            package.url,
        ), name


def test_rerun_reuses_and_relock_is_byte_identical(
    tmp_path: Path, channel: CondaChannel, tool_env: dict[str, str]
) -> None:
    write_team(tmp_path, channel, ["torchvision"], ["conda"])
    first = run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu")
    assert first.returncode == 0, first.stderr + first.stdout
    env_dir = tmp_path / "envs" / "gpu"
    before = snapshot(env_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in env_dir.iterdir()}

    rerun = run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu")
    assert rerun.returncode == 0, rerun.stderr
    assert "lock reused" in rerun.stdout
    assert snapshot(env_dir) == before
    assert {p.name: p.stat().st_mtime_ns for p in env_dir.iterdir()} == mtimes

    # A forced re-lock (the lock removed) solves again and writes the same bytes.
    (env_dir / CONDA_LOCKFILE).unlink()
    relock = run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu")
    assert relock.returncode == 0, relock.stderr
    assert (env_dir / CONDA_LOCKFILE).read_bytes() == before[CONDA_LOCKFILE]


def test_failed_solve_leaves_files_as_they_were(
    tmp_path: Path, channel: CondaChannel, tool_env: dict[str, str]
) -> None:
    write_team(tmp_path, channel, ["torchvision"], ["conda"])
    assert run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu").returncode == 0
    env_dir = tmp_path / "envs" / "gpu"
    before = snapshot(env_dir)
    write_team(tmp_path, channel, ["torchvision", "no-such-package"], ["conda"])
    proc = run_resolve(tmp_path, tool_env, "--host", "h100.json", "--target", "gpu")
    assert proc.returncode == 3, proc.stderr + proc.stdout
    assert "no-such-package" in proc.stderr
    assert snapshot(env_dir) == before
    leftovers = [p.name for p in (tmp_path / "envs").iterdir() if p.name.startswith(".")]
    assert leftovers == [ENVS_LOCK]  # the advisory lock file of envs/ stays; nothing else


def test_driver_too_old_fails_with_the_reason_not_a_cpu_build(
    tmp_path: Path, channel: CondaChannel, tool_env: dict[str, str]
) -> None:
    # Through the CLI: the resolver's own driver floor already refuses the CUDA build.
    write_team(tmp_path, channel, ["torchvision"], ["conda"])
    proc = run_resolve(tmp_path, tool_env, "--host", "a100-old-driver.json", "--variant", "cu126", "--json")
    assert proc.returncode == 3, proc.stderr + proc.stdout
    assert "525.60.13" in proc.stdout
    assert list((tmp_path / "envs").glob("*/conda-lock.yml")) == []

    # The conda layer on its own: a cu126 resolution solved for a host whose driver gives __cuda 11.4
    # fails in the rattler solve, naming __cuda and the cuda-version pin, and writes nothing.
    matrix = load_matrix(None)
    good = host_from_mapping(HOSTS["h100"])
    old = host_from_mapping(HOSTS["a100-old-driver"])
    request = Request(packages=("torchvision",), variant="cu126")
    team = team_from_mapping({"channels": ["conda-forge"]}, str(tmp_path / "team.toml"), tmp_path)
    settings = CondaSettings(
        channels=Channels(team.channels.names, channel.alias), cache_dir=tmp_path / "rattler-cache"
    )
    from resolver.lock.conda import channel_gaps

    gaps, gaps_tf = channel_gaps(matrix, good, ("torchvision",), settings)
    resolution = solve(good, matrix, replace(request, unavailable=gaps, unavailable_transformers=gaps_tf))
    assert resolution.variant == "cu126"
    inputs = conda_inputs("old", old, matrix, resolution, ("torchvision",), settings)
    assert {p.name: p.version for p in inputs.virtual}["__cuda"] == "11.4"
    target = tmp_path / "envs" / "old"
    with pytest.raises(NoCompatibleCombination) as failure:
        stage_conda(target, inputs, settings, {})
    text = headline(failure.value) + "\n" + "\n".join(causes(failure.value))
    assert "__cuda=11.4" in headline(failure.value)
    assert "__cuda >=12" in text and "cuda-version ==12.6" in text
    assert not target.exists()


def test_conda_lock_engine_runs_conda_lock_with_the_targets_virtual_packages(
    tmp_path: Path, channel: CondaChannel
) -> None:
    matrix = load_matrix(None)
    host = host_from_mapping(HOSTS["h100"])
    settings = CondaSettings(channels=Channels(("conda-forge",), channel.alias), cache_dir=tmp_path / "cache")
    from resolver.lock.conda import channel_gaps

    gaps, gaps_tf = channel_gaps(matrix, host, ("torchvision",), settings)
    resolution = solve(
        host, matrix, Request(packages=("torchvision",), unavailable=gaps, unavailable_transformers=gaps_tf)
    )
    # a real lock from the in-process engine is what the fake conda-lock "writes"
    real = lock_in_staging(
        conda_inputs("gpu", host, matrix, resolution, ("torchvision",), settings), settings, tmp_path
    )

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    micromamba = bin_dir / "micromamba"
    micromamba.write_text("#!/bin/sh\nexit 99\n")
    micromamba.chmod(0o755)
    seen: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def fake_runner(argv: Any, *, cwd: Path, env: Any, timeout: float) -> Completed:
        files = {p.name: p.read_text() for p in cwd.iterdir() if p.is_file()}
        seen.append((tuple(argv), files))
        (cwd / CONDA_LOCKFILE).write_bytes(real)
        return Completed(tuple(argv), 0, "", "")

    engine = replace(settings, engine="conda-lock", runner=fake_runner, environ={"PATH": str(bin_dir)})
    inputs = conda_inputs("gpu", host, matrix, resolution, ("torchvision",), engine)
    staged = stage_conda(tmp_path / "envs" / "gpu", inputs, engine, {})
    assert staged.files[CONDA_LOCKFILE] == real
    assert staged.record["engine"] == "conda-lock"
    ((argv, files),) = seen
    assert argv[1:4] == ("-m", "conda_lock", "lock")
    assert argv[argv.index("--platform") + 1] == "linux-64"
    assert argv[argv.index("--conda") + 1] == str(micromamba)
    assert "--micromamba" in argv
    spec_file = argv[argv.index("--virtual-package-spec") + 1]
    assert '__cuda: "12.4"' in files[spec_file]
    assert '__glibc: "2.35"' in files[spec_file]
    assert files[argv[argv.index("--file") + 1]] == inputs.environment_text

    with pytest.raises(ExternalToolError, match="conda, mamba or micromamba"):
        stage_conda(
            tmp_path / "envs" / "x", inputs, replace(engine, environ={"PATH": str(tmp_path / "none")}), {}
        )


def _virtual_cases() -> list[dict[str, Any]]:
    data = tomllib.loads((DATA / "virtual_packages.toml").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data["case"]
    return cases


@pytest.mark.parametrize("case", _virtual_cases(), ids=lambda c: c["name"])
def test_virtual_packages_come_from_the_target_host(case: dict[str, Any]) -> None:
    from resolver.matrix.load import load_conda_facts

    host = host_from_mapping(case["host"])
    found = {p.name: p.spec_text for p in virtual_packages(host, load_matrix(None), load_conda_facts())}
    assert found == case["expected"]


def test_channels_config_and_environment_override(tmp_path: Path) -> None:
    from resolver.errors import ConfigError
    from resolver.sources import effective_channels

    origin = str(tmp_path / "team.toml")
    default = team_from_mapping({}, origin, tmp_path)
    assert default.channels == Channels(("conda-forge",), None)
    team = team_from_mapping(
        {
            "channels": ["conda-forge", "https://mirror.example.org/extra"],
            "conda": {"channel_alias": "http://x:1"},
        },
        origin,
        tmp_path,
    )
    assert team.channels.names == ("conda-forge", "https://mirror.example.org/extra")
    overridden = effective_channels(team, {"STACK_RESOLVER_CONDA_CHANNELS": " a , b "})
    assert overridden == Channels(("a", "b"), "http://x:1")
    with pytest.raises(ConfigError, match="channel_alias"):
        team_from_mapping({"conda": {"channel_alias": "mirror"}}, origin, tmp_path)
    with pytest.raises(ConfigError, match=r"conda\.alias"):
        team_from_mapping({"conda": {"alias": "http://x"}}, origin, tmp_path)


@pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not available (STACK_RESOLVER_POETRY or in-process)"
)
def test_poetry_and_conda_together_are_one_resolution_committed_together(
    tmp_path: Path, channel: CondaChannel, fixture_index: FixtureIndex, tool_env: dict[str, str]
) -> None:
    write_team(tmp_path, channel, ["torchvision"], ["poetry", "conda"])
    team = tmp_path / "envs" / "team.toml"
    team.write_text(
        team.read_text()
        + f'\n[indexes]\npytorch = "{fixture_index.base_url}/whl/{{variant}}/simple"\n'
        + f'general = "{fixture_index.url()}"\n',
        encoding="utf-8",
    )
    env = dict(tool_env)
    if os.environ.get("STACK_RESOLVER_POETRY"):
        env["STACK_RESOLVER_POETRY"] = os.environ["STACK_RESOLVER_POETRY"]
    proc = run_resolve(tmp_path, env, "--host", "h100.json", "--target", "gpu", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    env_dir = tmp_path / "envs" / "gpu"
    assert sorted(p.name for p in env_dir.iterdir()) == [
        "conda-lock.yml",
        "environment.yml",
        "poetry.lock",
        "pyproject.toml",
        "resolution.json",
    ]
    record = json.loads((env_dir / "resolution.json").read_text())
    assert record["formats"] == ["poetry", "conda"]
    # one resolution for both: the build both the pip index and the channel carry
    assert record["resolution"]["torch"] == "2.8.0+cu126"
    assert str(locked(env_dir / CONDA_LOCKFILE)["pytorch"].build).startswith("cuda126_")
    assert 'name = "torch"\nversion = "2.8.0+cu126"' in (env_dir / "poetry.lock").read_text()
    rerun = run_resolve(tmp_path, env, "--host", "h100.json", "--target", "gpu")
    assert rerun.returncode == 0 and "lock reused" in rerun.stdout, rerun.stderr + rerun.stdout


def test_the_team_lock_honours_formats(
    tmp_path: Path, channel: CondaChannel, tool_env: dict[str, str]
) -> None:
    """`lock` stages every target through the same path as `resolve`: a conda team gets conda locks
    (it was Poetry-only), all targets and team.lock.json committed together; a rerun reuses them."""
    write_team(tmp_path, channel, [], ["conda"])
    team = tmp_path / "envs" / "team.toml"
    team.write_text(
        team.read_text()
        + "\n[targets.gpu]\nhost = "
        + json.dumps(str(tmp_path / "h100.json"))
        + "\n\n[targets.cpu]\nhost = "
        + json.dumps(str(tmp_path / "cpu.json"))
        + "\n",
        encoding="utf-8",
    )
    proc = run_cli(tmp_path, tool_env, "lock", "--team", "envs/team.toml", timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    summary = json.loads((tmp_path / "envs" / "team.lock.json").read_text())
    for name in ("gpu", "cpu"):
        env_dir = tmp_path / "envs" / name
        assert sorted(p.name for p in env_dir.iterdir()) == [
            "conda-lock.yml",
            "environment.yml",
            "resolution.json",
        ]
        record = json.loads((env_dir / "resolution.json").read_text())
        assert record["formats"] == ["conda"]
        lock = (env_dir / CONDA_LOCKFILE).read_bytes()
        assert record["conda"]["lock_sha256"] == hashlib.sha256(lock).hexdigest()
        assert summary["targets"][name]["conda_lock_sha256"] == hashlib.sha256(lock).hexdigest()
        assert summary["targets"][name]["files"] == ["conda-lock.yml", "environment.yml", "resolution.json"]
    assert str(locked(tmp_path / "envs" / "gpu" / CONDA_LOCKFILE)["pytorch"].build).startswith("cuda")
    assert str(locked(tmp_path / "envs" / "cpu" / CONDA_LOCKFILE)["pytorch"].build).startswith("cpu_")
    rerun = run_cli(tmp_path, tool_env, "lock", "--team", "envs/team.toml", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.count("lock reused") == 2 and "team.lock.json: unchanged" in rerun.stdout
