"""Source pinning (dependency confusion): each torch-family package, and each name in the matrix's
`[index] bound_packages`, is locked only from the PyTorch index chosen for the target, even when
the general index offers it at a higher version, at the same version with other content, or under
a look-alike name.

The fixture universe is the default catalog plus an attacker's uploads on the general index, and
a cu129 torch build that requires `torchtriton` (the December 2022 incident: the PyTorch nightly
index served `torchtriton`, PyPI got a malicious `torchtriton` of a higher version, and installs
that consulted both indexes took PyPI's).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from resolver.errors import ExternalToolError
from resolver.lock.poetry.checks import check_lock_sources
from resolver.lock.poetry.pyproject import Dependency, EnvironmentSpec, SourceSpec
from resolver.matrix.load import load_matrix
from resolver.matrix.model import Matrix
from tests.fixtures.catalog import CUDA_MARKER, GENERAL, BuiltCatalog, WheelSpec, default_catalog
from tests.fixtures.cli import HOSTS, run_cli
from tests.fixtures.isolation import poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ATTACKER = (("evil/__init__.py", "raise SystemExit('installed from the wrong index')\n"),)
LINUX_311 = "cp311-cp311-manylinux_2_28_x86_64"
OTHER_311 = "cp311-cp311-manylinux_2_17_x86_64"  # a file name the variant index does not have


def attacker(name: str, version: str, tags: str = "py3-none-any", **fields: Any) -> WheelSpec:
    return WheelSpec(name, version, tags=tags, files=ATTACKER, indexes=(GENERAL,), **fields)


def pinning_catalog() -> Any:
    base = default_catalog()
    # cu129 torch 2.8.0 requires torchtriton (unpinned, as the 2022 nightlies did) instead of triton
    torch_cu129 = [s for s in base.files("cu129", "torch") if s.version == "2.8.0+cu129"]
    rebuilt = [
        dataclasses.replace(
            spec,
            requires_dist=tuple(
                f"torchtriton; {CUDA_MARKER}" if r.startswith("triton==") else r for r in spec.requires_dist
            ),
        )
        for spec in torch_cu129
    ]
    torchtriton = [
        WheelSpec(
            "torchtriton",
            "3.4.0",
            tags=f"{py}-{py}-manylinux_2_27_x86_64.manylinux_2_28_x86_64",
            indexes=("cu129",),
        )
        for py in ("cp310", "cp311", "cp312", "cp313")
    ]
    uploads = [
        attacker("torch", "9.9.9", LINUX_311),
        attacker("torch", "2.8.0", OTHER_311),  # same version, no local label, other content
        attacker("torch", "2.8.0+cu129", OTHER_311),  # even the same full version
        attacker("torch", "2.8.0+cpu", OTHER_311),
        attacker("torchvision", "9.9.9"),
        attacker("torchaudio", "9.9.9"),
        attacker("triton", "9.9.9"),
        attacker("triton", "3.4.0", OTHER_311),
        attacker("torchtriton", "9.9.9"),  # the 2022 upload: a higher version under the real name
        attacker("torchtriton", "3.4.0", OTHER_311),
        attacker("pytorch-triton", "9.9.9"),  # a look-alike nothing requires
        # a package of the general index that pulls torchaudio without the team naming it
        WheelSpec("audio-helper", "1.0.0", requires_dist=("torchaudio",)),
    ]
    return base.without(*(s.filename for s in torch_cu129)).extended(*rebuilt, *torchtriton, *uploads)


@pytest.fixture(scope="module")
def pinning_wheels(tmp_path_factory: pytest.TempPathFactory) -> BuiltCatalog:
    built: BuiltCatalog = pinning_catalog().build(tmp_path_factory.mktemp("pinning-wheels"))
    return built


@pytest.fixture
def pinning_index(pinning_wheels: BuiltCatalog) -> Iterator[FixtureIndex]:
    with FixtureIndex(pinning_wheels) as index:
        yield index


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def resolve(
    root: Path, index: FixtureIndex, host: str, packages: list[str]
) -> subprocess.CompletedProcess[str]:
    envs = root / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    (envs / "team.toml").write_text(
        f"packages = {json.dumps(packages)}\n\n[indexes]\n"
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\ngeneral = "{index.url()}"\n',
        encoding="utf-8",
    )
    (root / f"{host}.json").write_text(json.dumps(HOSTS[host]), encoding="utf-8")
    env = poetry_env(root / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(root / "http-cache")
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    return run_cli(
        root,
        env,
        "resolve",
        "--team",
        "envs/team.toml",
        "--host",
        f"{host}.json",
        "--target",
        host,
        "--json",
        timeout=600,
    )


def locked(path: Path) -> dict[str, dict[str, Any]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {str(canonicalize_name(p["name"])): p for p in data["package"]}


needs_poetry = pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not installed in this interpreter"
)


@pytest.mark.e2e
@needs_poetry
@pytest.mark.parametrize(
    ("host", "variant", "expected"),
    [
        (
            "h100",
            "cu129",
            {
                "torch": "2.8.0+cu129",
                "torchvision": "0.23.0+cu129",
                "torchaudio": "2.8.0+cu129",
                "torchtriton": "3.4.0",
            },
        ),
        ("cpu", "cpu", {"torch": "2.8.0+cpu", "torchvision": "0.23.0+cpu", "torchaudio": "2.8.0+cpu"}),
    ],
)
def test_the_torch_family_comes_only_from_the_pytorch_index(
    tmp_path: Path,
    pinning_index: FixtureIndex,
    pinning_wheels: BuiltCatalog,
    matrix: Matrix,
    host: str,
    variant: str,
    expected: dict[str, str],
) -> None:
    proc = resolve(tmp_path, pinning_index, host, ["torchvision", "torchaudio", "accelerate"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["variant"] == variant
    packages = locked(tmp_path / "envs" / host / "poetry.lock")
    pytorch, general = pinning_index.variant_url(variant), pinning_index.url()

    for name, version in expected.items():
        package = packages[name]
        assert (package["version"], package["source"]["url"]) == (version, pytorch), package
        # every file of the entry is the variant index's, with the hash it advertises
        served = {w.filename: w.sha256 for w in pinning_wheels.files(variant, name)}
        assert package["files"], name
        for entry in package["files"]:
            assert entry["hash"] == f"sha256:{served[entry['file']]}", (name, entry)

    bound = {str(canonicalize_name(n)) for n in matrix.index_bound_packages}
    assert {"torchtriton", "triton", "pytorch-triton"} <= bound
    from_general = {name for name, p in packages.items() if p["source"]["url"] == general}
    assert not from_general & (bound | {"torch", "torchvision", "torchaudio"}), from_general
    assert {p["source"]["url"] for p in packages.values()} == {pytorch, general}
    assert "pytorch-triton" not in packages  # a look-alike nothing requires never enters the lock
    if variant == "cu129":
        assert "triton" not in packages  # this torch build requires torchtriton instead
    assert not [p for p in packages.values() if p["version"] == "9.9.9"]
    # The attacker's uploads were never even read: no metadata, no file of theirs was requested.
    attacker_files = {s.filename for s in pinning_wheels.catalog if s.files == ATTACKER}
    assert not [r.path for r in pinning_index.requests if r.filename in attacker_files]


@pytest.mark.e2e
@needs_poetry
def test_a_torch_family_package_pulled_from_the_general_index_fails_the_lock(
    tmp_path: Path, pinning_index: FixtureIndex
) -> None:
    """torchaudio pulled in by another package, not pinned by the team: Poetry would take the
    general index's (the attacker's 9.9.9); the lock is refused and nothing is written."""
    proc = resolve(tmp_path, pinning_index, "h100", ["torchvision", "audio-helper"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        f"poetry.lock takes torchaudio 9.9.9 from {pinning_index.url()}, not from the PyTorch index "
        f"{pinning_index.variant_url('cu129')}" in proc.stderr
    ), proc.stderr
    assert "add it to `packages`" in proc.stderr
    assert not (tmp_path / "envs" / "h100").exists()


# --- unit: the post-lock check on hand-made locks -----------------------------------------------------

PYTORCH = "https://mirror.example.org/whl/cu129"
GENERAL_URL = "https://mirror.example.org/simple"


def spec(bound: tuple[str, ...] = ("torch",)) -> EnvironmentSpec:
    return EnvironmentSpec(
        name="t",
        requires_python=">=3.11,<3.12",
        dependencies=tuple(Dependency(f"{n}", "pytorch-cu129") for n in bound),
        sources=(
            SourceSpec("pytorch-cu129", PYTORCH, "explicit"),
            SourceSpec("general", GENERAL_URL, "primary"),
        ),
    )


def lock_text(*packages: tuple[str, str, str | None]) -> bytes:
    parts = []
    for name, version, url in packages:
        parts.append(f'[[package]]\nname = "{name}"\nversion = "{version}"\nfiles = []\n')
        if url is not None:
            parts.append(f'\n[package.source]\ntype = "legacy"\nurl = "{url}"\nreference = "x"\n')
        parts.append("\n")
    return "".join(parts).encode()


@pytest.mark.parametrize(
    ("packages", "culprit"),
    [
        ((("torch", "2.8.0+cu129", PYTORCH), ("sympy", "1.14.0", GENERAL_URL)), None),
        ((("torch", "2.8.0+cu129", PYTORCH + "/"), ("triton", "3.4.0", PYTORCH)), None),
        ((("torch", "2.8.0+cu129", PYTORCH), ("triton", "3.4.0", GENERAL_URL)), "triton 3.4.0"),
        ((("torch", "2.8.0+cu129", PYTORCH), ("TorchTriton", "9.9.9", GENERAL_URL)), "torchtriton 9.9.9"),
        ((("torch", "2.8.0+cu129", PYTORCH), ("pytorch_triton", "9.9.9", None)), "pytorch-triton 9.9.9"),
        ((("torch", "9.9.9", GENERAL_URL),), "torch 9.9.9"),
        ((("torch", "2.8.0+cu129", PYTORCH), ("torchaudio", "2.8.0", GENERAL_URL)), "torchaudio 2.8.0"),
    ],
    ids=["clean", "clean-slash", "triton", "torchtriton", "no-source", "torch", "torchaudio"],
)
def test_check_lock_sources(
    matrix: Matrix, packages: tuple[tuple[str, str, str | None], ...], culprit: str | None
) -> None:
    lock = lock_text(*packages)
    if culprit is None:
        check_lock_sources(lock, spec(), matrix)
        return
    with pytest.raises(ExternalToolError) as raised:
        check_lock_sources(lock, spec(), matrix)
    assert raised.value.message.startswith(f"poetry.lock takes {culprit} from ")
    assert f"not from the PyTorch index {PYTORCH}" in raised.value.message


def test_a_target_without_a_pytorch_source_binds_nothing(matrix: Matrix) -> None:
    """macOS: torch itself comes from the general index; nothing to check."""
    unbound = dataclasses.replace(spec(()), sources=(SourceSpec("general", GENERAL_URL, "primary"),))
    check_lock_sources(lock_text(("torch", "2.8.0", GENERAL_URL)), unbound, matrix)
