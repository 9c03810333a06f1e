"""`stack-resolver verify` for conda targets, end to end against the loopback conda channel.

resolve --format conda writes conda-lock.yml; verify downloads every locked archive (md5 and sha256
checked), installs them with py-rattler into a fresh prefix and compares the prefix's conda-meta
with the lock and resolution.json. The fixture channel's `python` package holds no interpreter, so
the smoke test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

try:
    import conda_lock.lockfile  # noqa: F401
    import rattler.index
    import yaml
except ImportError as exc:  # absent, or broken (conda-lock 4 needs dulwich<0.25, Poetry 2.5 >=0.25)
    pytest.skip(
        f"py-rattler / conda-lock cannot be imported ({exc}); pip install 'stack-resolver[conda]' "
        "in an environment without Poetry (nox -s tests does)",
        allow_module_level=True,
    )

from resolver.errors import InputError
from resolver.host.hostfile import parse_host_json
from resolver.verify import conda as verify_conda
from resolver.verify import poetry as verify
from resolver.verify.smoke import Check
from tests.fixtures.cli import run_cli
from tests.fixtures.condachannel import CondaChannel, FakePackage, standard_packages
from tests.fixtures.isolation import offline_env

pytestmark = pytest.mark.e2e

CPU = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
H100 = dict(
    CPU,
    nvidia_driver="550.54.15",
    gpus=[{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
)
CPU_TORCH = "pytorch-2.8.0-cpu_generic_py311_h5d6e7f8_2.tar.bz2"
CUDA_TORCH = "pytorch-2.8.0-cuda126_generic_py311_h1a2b3c4_202.tar.bz2"


@pytest.fixture
def channel(tmp_path: Path) -> Any:
    with CondaChannel(standard_packages(), tmp_path / "channel") as served:
        yield served


def run_tool(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, *args, timeout=300)


def resolved(root: Path, channel: CondaChannel, host: dict[str, Any], target: str) -> dict[str, str]:
    """envs/<target>/ resolved with --format conda against the channel; the tool's environment."""
    envs = root / "envs"
    envs.mkdir(exist_ok=True)
    (envs / "team.toml").write_text(
        'packages = ["torchvision"]\nformats = ["conda"]\nchannels = ["conda-forge"]\n\n'
        f'[conda]\nchannel_alias = "{channel.alias}"\n',
        encoding="utf-8",
    )
    (root / f"{target}.json").write_text(json.dumps(host), encoding="utf-8")
    env = offline_env(root / "home")
    env["HOME"] = str(root / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(root / "cache" / "http")
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    env["STACK_RESOLVER_NO_GPU"] = "1"  # this machine's GPUs, whatever the target was resolved for
    (root / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(root / "tmp")  # verify's scratch folder must be gone afterwards
    env.pop("LD_LIBRARY_PATH", None)
    proc = run_tool(
        root, env, "resolve", "--team", "envs/team.toml", "--host", f"{target}.json", "--target", target
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env


def verify_json(
    root: Path, env: dict[str, str], target: str, *args: str
) -> tuple[int, dict[str, Check], str]:
    proc = run_tool(root, env, "verify", "--team", "envs/team.toml", "--target", target, "--json", *args)
    assert proc.stdout, proc.stderr
    payload = json.loads(proc.stdout)
    return proc.returncode, {c["name"]: Check(**c) for c in payload["checks"]}, proc.stdout


def edit_lock(lock: Path, name: str, **changes: Any) -> None:
    data = yaml.safe_load(lock.read_text(encoding="utf-8"))
    for package in data["package"]:
        if package["name"] == name:
            hashes = changes.pop("hash", None)
            package.update(changes)
            if hashes is not None:
                package["hash"] = hashes
    lock.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize(("host", "build"), [(CPU, "cpu_"), (H100, "cuda126_")], ids=["cpu", "cuda"])
def test_verify_installs_the_lock_and_passes(
    tmp_path: Path, channel: CondaChannel, host: dict[str, Any], build: str
) -> None:
    env = resolved(tmp_path, channel, host, "t")
    locked = yaml.safe_load((tmp_path / "envs" / "t" / "conda-lock.yml").read_text())["package"]
    before = len(channel.requests)
    code, checks, shown = verify_json(tmp_path, env, "t", "--keep", str(tmp_path / "prefix"))
    assert code == 0, shown
    assert [n for n, c in checks.items() if c.status == "fail"] == []
    assert checks["conda-lock.yml as written by resolve"].status == "pass"
    assert checks["hashes of the locked archives"].found == f"{len(locked)} archives match"
    assert checks["install the lock"].status == "pass"
    assert checks["records installed as locked"].found == f"{len(locked)} records match"
    torch = checks["torch installed as resolved"]
    assert torch.status == "pass" and torch.expected == f"pytorch ==2.8.0 {build}* (resolution.json)"
    assert torch.found.startswith(f"pytorch 2.8.0 {build}")
    assert checks["torchvision installed as resolved"].status == "pass"
    assert checks["transformers locked as resolved"].status == "pass"
    smoke = checks["smoke test"]
    assert smoke.status == "skip" and smoke.detail == verify_conda.NO_PYTHON

    # Every archive fetched once, by verify's checked download; rattler linked those bytes.
    fetched = [r for r in channel.requests[before:] if r.endswith(".tar.bz2")]
    assert sorted(fetched) == sorted(p["url"].removeprefix(channel.alias) for p in locked)
    meta = {
        d["name"]: d
        for d in (json.loads(p.read_text()) for p in (tmp_path / "prefix" / "conda-meta").glob("*.json"))
    }
    assert {n: (m["version"], m["build"], m["url"]) for n, m in meta.items()} == {
        p["name"]: (p["version"], p["build"], p["url"]) for p in locked
    }
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch folder is removed


def test_an_edited_lock_names_the_package_expected_and_found(tmp_path: Path, channel: CondaChannel) -> None:
    env = resolved(tmp_path, channel, CPU, "cpu")
    lock = tmp_path / "envs" / "cpu" / "conda-lock.yml"
    original = lock.read_text(encoding="utf-8")

    # Only the version edited: the archive still holds 2.8.0, and the prefix says so.
    edit_lock(lock, "pytorch", version="2.7.0")
    code, checks, shown = verify_json(tmp_path, env, "cpu")
    assert code == 5, shown
    locked = checks["torch locked as resolved"]
    assert locked.status == "fail"
    assert locked.expected == "pytorch ==2.8.0 cpu_* (resolution.json)"
    assert locked.found == "pytorch 2.7.0 cpu_generic_py311_h5d6e7f8_2 (conda-lock.yml)"
    installed = checks["pytorch installed as locked"]
    assert installed.status == "fail"
    assert installed.expected == "2.7.0 cpu_generic_py311_h5d6e7f8_2 (conda-lock.yml)"
    assert installed.found == "2.8.0 cpu_generic_py311_h5d6e7f8_2 (conda-meta)"
    assert checks["conda-lock.yml as written by resolve"].status == "fail"

    # The other build, consistently (URL, hashes, build): it installs, and is not what was resolved.
    lock.write_text(original, encoding="utf-8")
    data = (channel.root / "conda-forge" / "linux-64" / CUDA_TORCH).read_bytes()
    edit_lock(
        lock,
        "pytorch",
        build="cuda126_generic_py311_h1a2b3c4_202",
        url=f"{channel.url}/linux-64/{CUDA_TORCH}",
        hash={"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()},
    )
    code, checks, shown = verify_json(tmp_path, env, "cpu")
    assert code == 5, shown
    assert checks["install the lock"].status == "pass"
    assert checks["records installed as locked"].status == "pass"
    torch = checks["torch installed as resolved"]
    assert (torch.status, torch.expected, torch.found) == (
        "fail",
        "pytorch ==2.8.0 cpu_* (resolution.json)",
        "pytorch 2.8.0 cuda126_generic_py311_h1a2b3c4_202 (conda-meta)",
    )
    assert checks["torch locked as resolved"].found.startswith("pytorch 2.8.0 cuda126_")


def test_a_tampered_archive_fails_its_hash_and_nothing_is_installed(
    tmp_path: Path, channel: CondaChannel
) -> None:
    env = resolved(tmp_path, channel, CPU, "cpu")
    locked = {
        p["name"]: p
        for p in yaml.safe_load((tmp_path / "envs" / "cpu" / "conda-lock.yml").read_text())["package"]
    }
    served = channel.root / "conda-forge" / "linux-64" / CPU_TORCH
    tampered = served.read_bytes() + b"\0"
    served.write_bytes(tampered)
    code, checks, shown = verify_json(tmp_path, env, "cpu", "--keep", str(tmp_path / "prefix"))
    assert code == 5, shown
    failed = [n for n, c in checks.items() if c.status == "fail"]
    assert failed == [f"hash of {CPU_TORCH}"], shown
    check = checks[f"hash of {CPU_TORCH}"]
    torch = locked["pytorch"]
    assert check.expected == f"sha256:{torch['hash']['sha256']} md5:{torch['hash']['md5']} (conda-lock.yml)"
    assert check.found == (
        f"sha256:{hashlib.sha256(tampered).hexdigest()} md5:{hashlib.md5(tampered).hexdigest()} (served)"
    )
    assert check.detail.startswith("pytorch 2.8.0: ") and check.detail.endswith(torch["url"])
    assert checks["install the lock"].status == "skip"
    assert not (tmp_path / "prefix").exists()


def test_lock_format_choice(tmp_path: Path, channel: CondaChannel) -> None:
    env = resolved(tmp_path, channel, CPU, "cpu")
    directory = tmp_path / "envs" / "cpu"
    host = parse_host_json(json.dumps(CPU))
    assert verify.find_target(tmp_path / "envs", None, host) == directory  # a conda-only target is listed
    assert verify.lock_format_for(directory, None) == "conda"
    with pytest.raises(InputError, match=r"has no poetry\.lock"):
        verify.lock_format_for(directory, "poetry")
    (directory / "poetry.lock").write_text("", encoding="utf-8")
    assert verify.lock_format_for(directory, None) == "poetry"  # both: poetry unless --format conda
    assert verify.lock_format_for(directory, "conda") == "conda"
    (directory / "poetry.lock").unlink()
    proc = run_tool(tmp_path, env, "verify", "--team", "envs/team.toml", "--format", "poetry")
    assert proc.returncode == 2 and "has no poetry.lock" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("spec", "version", "build", "fits"),
    [
        ("pytorch ==2.8.0 cpu_*", "2.8.0", "cpu_generic_py311_h0_2", True),
        ("pytorch ==2.8.0 cpu_*", "2.8", "cpu_x", True),  # conda: 2.8 is 2.8.0
        ("pytorch ==2.8.0 cpu_*", "2.8.0", "cuda126_x", False),
        ("pytorch ==2.8.0 cpu_*", "2.8.0.post1", "cpu_x", False),
        ("transformers ==4.57.6", "4.57.6", "pyhd8ed1ab_0", True),
        ("transformers ==4.57.6", "not a version!", "pyhd8ed1ab_0", False),
    ],
)
def test_spec_fits(spec: str, version: str, build: str, fits: bool) -> None:
    assert verify_conda.spec_fits(spec, version, build) is fits


def python_archive(package: FakePackage, interpreter: str) -> bytes:
    """A `python` package whose bin/python runs `interpreter` (which has no torch)."""
    script = f'#!/bin/sh\nexec "{interpreter}" "$@"\n'.encode()
    paths = {
        "paths": [
            {
                "_path": "bin/python",
                "path_type": "hardlink",
                "sha256": hashlib.sha256(script).hexdigest(),
                "size_in_bytes": len(script),
            }
        ],
        "paths_version": 1,
    }
    members = {
        "info/index.json": (json.dumps(package.index_json()).encode(), 0o644),
        "info/paths.json": (json.dumps(paths).encode(), 0o644),
        "bin/python": (script, 0o755),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, (data, mode) in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return bz2.compress(raw.getvalue())


@pytest.mark.skipif(sys.platform == "win32", reason="bin/python is a shell script")
def test_a_prefix_with_python_runs_the_smoke_test_expecting_conda_versions(
    tmp_path: Path, channel: CondaChannel
) -> None:
    (python,) = [p for p in standard_packages() if p.name == "python"]
    subdir = channel.root / channel.name
    (subdir / "linux-64" / python.filename).write_bytes(python_archive(python, sys.executable))
    (subdir / "linux-64" / "repodata.json").unlink()  # the indexer keeps entries it already has
    asyncio.run(rattler.index.index_fs(subdir, write_zst=False, write_shards=False))
    env = resolved(tmp_path, channel, H100, "gpu")
    code, checks, shown = verify_json(tmp_path, env, "gpu")
    assert code == 5, shown  # this interpreter has no torch
    assert checks["install the lock"].status == "pass" and "smoke test" not in checks, shown
    torch = checks["torch version"]
    assert (torch.status, torch.expected) == ("fail", "2.8.0"), shown  # the conda version: no +cu126
    assert checks["torchvision version"].expected == "0.23.0"
    assert checks["transformers version"].expected == "4.57.6"
    assert checks["torchaudio version"].status == "skip"  # not in the lock
    assert checks["torch.version.cuda"].expected == "12.6"
    assert checks["GPU checks"].detail == "no NVIDIA GPU on this machine"
