"""`matrix refresh` against loopback indexes: the scenarios of tests/data/refresh/scenarios.toml,
the pure derivations, and the command line (`--write`, `--offline`, no general index)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.errors import ResolverError
from resolver.index.client import HttpPolicy, IndexClient
from resolver.index.listing import IndexFile
from resolver.matrix.load import MATRIX_FILES, load_matrix, validate_matrix
from resolver.matrix.refresh.propose import propose, write_proposal
from resolver.matrix.refresh.wheels import (
    cuda_variant,
    exact_pin,
    platform_facts,
    read_wheel,
    torch_extra,
    torch_pin,
)
from resolver.matrix.wheeltags import tag_platforms, tag_python
from resolver.sources import Indexes
from tests.fixtures.catalog import GENERAL, Catalog, WheelSpec
from tests.fixtures.cli import run_cli
from tests.fixtures.isolation import offline_env
from tests.fixtures.pyindex import Fault, FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).parents[1] / "data"
SCENARIOS = tomllib.loads((DATA / "refresh" / "scenarios.toml").read_text(encoding="utf-8"))["scenario"]
TODAY = date(2026, 12, 1)
RETRIES = 1
# matrix_min knows CUDA 12.6 and 12.8; a new cu129 variant needs its toolkit to validate.
TOOLKIT_12_9 = """
[[toolkit]]
version = "12.9.1"
driver = { linux = "575.57.08", windows = "576.57" }
source = "meson_cuda"
"""
CUDA_MARKER = 'platform_system == "Linux" and platform_machine == "x86_64"'
CUDA_RUNTIME = {"cu126": "12.6.77", "cu128": "12.8.90", "cu129": "12.9.79", "cu140": "14.0.10"}
LINUX, MACOS_11, WINDOWS = "manylinux_2_28_x86_64", "macosx_11_0_arm64", "win_amd64"


# --- the fixture universe ----------------------------------------------------------------------


def torch_release(
    version: str,
    pythons: list[str],
    variants: list[str],
    default: str,
    macos: str,
    torchvision: str | None = None,
    torchaudio: str | None = None,
) -> list[WheelSpec]:
    """torch wheels laid out as the real indexes have them: the general index serves the default
    CUDA build on Linux (no label) and CPU wheels elsewhere; each variant index its labelled
    builds (cpu also the unlabelled macOS wheels); companions pin torch exactly."""
    specs = []
    for tag in pythons:
        abi, interpreter = tag, tag.rstrip("t")
        general_linux = (f"nvidia-cuda-runtime-cu12=={CUDA_RUNTIME[default]}; {CUDA_MARKER}",)
        specs += [
            WheelSpec("torch", version, f"{interpreter}-{abi}-{LINUX}", general_linux, ">=3.9"),
            WheelSpec(
                "torch",
                version,
                f"{interpreter}-{'none' if abi == interpreter else abi}-{macos}",
                (),
                ">=3.9",
                indexes=(GENERAL, "cpu"),
            ),
            WheelSpec("torch", version, f"{interpreter}-{abi}-{WINDOWS}", (), ">=3.9"),
        ]
        for variant in variants:
            requires = () if variant == "cpu" else (f"nvidia-cuda-runtime-cu12=={CUDA_RUNTIME[variant]}",)
            for platform in (LINUX, WINDOWS):
                tags = f"{interpreter}-{abi}-{platform}"
                specs.append(
                    WheelSpec("torch", f"{version}+{variant}", tags, requires, ">=3.9", indexes=(variant,))
                )
    for name, companion in (("torchvision", torchvision), ("torchaudio", torchaudio)):
        if companion is not None:
            specs.append(WheelSpec(name, companion, f"cp311-cp311-{LINUX}", (f"torch=={version}",), ">=3.9"))
    return specs


def transformers_release(version: str, requires_python: str, torch: str) -> WheelSpec:
    return WheelSpec(
        "transformers",
        version,
        requires_dist=("filelock", f'torch{torch}; extra == "torch"', 'torch>=1.0; extra == "all"'),
        requires_python=requires_python,
        extras=("torch", "all"),
    )


def base_catalog() -> Catalog:
    """What tests/data/matrix_min says, as wheels (plus its rocm6.3 variant's absence)."""
    return Catalog(
        (
            *torch_release(
                "2.7.1", ["cp311", "cp312"], ["cpu", "cu126", "cu128"], "cu126", MACOS_11, "0.22.1", "2.7.1"
            ),
            transformers_release("4.52.3", ">=3.9.0", "<2.7,>=2.1"),
            transformers_release("4.46.3", ">=3.8.0", ""),
            transformers_release("4.40.0", ">=3.8.0", ""),  # older than the matrix: not its business
        )
    )


def scenario_catalog(scenario: dict[str, Any]) -> Catalog:
    catalog = base_catalog()
    for row in scenario.get("torch", []):
        catalog = catalog.extended(*torch_release(**row))
    for row in scenario.get("transformers", []):
        catalog = catalog.extended(transformers_release(**row))
    for filename in scenario.get("yank", []):
        catalog = catalog.yanking(filename)
    return catalog


def copy_matrix(root: Path) -> Path:
    target = root / "matrix"
    shutil.copytree(DATA / "matrix_min", target)
    with open(target / "cuda.toml", "a", encoding="utf-8") as handle:
        handle.write(TOOLKIT_12_9)
    return target


@dataclass
class Setup:
    index: FixtureIndex
    matrix: Path
    cache: Path
    indexes: Indexes

    def client(self, offline: bool = False) -> IndexClient:
        policy = HttpPolicy(timeout=10, retries=RETRIES, backoff=0, max_backoff=0)
        return IndexClient(policy=policy, cache_dir=self.cache, offline=offline, sleep=lambda _s: None)

    def propose(self, offline: bool = False, extra_variants: list[str] | None = None) -> Any:
        client = self.client(offline)
        return propose(self.matrix, self.indexes, client, today=TODAY, extra_variants=extra_variants or [])


@pytest.fixture
def setup_for(tmp_path: Path) -> Iterator[Any]:
    started: list[FixtureIndex] = []

    def make(scenario: dict[str, Any]) -> Setup:
        index = FixtureIndex(scenario_catalog(scenario), tmp_path).start()
        started.append(index)
        indexes = Indexes(pytorch=f"{index.base_url}/whl/{{variant}}/simple", general=index.url())
        return Setup(index, copy_matrix(tmp_path), tmp_path / "cache", indexes)

    yield make
    for index in started:
        index.stop()


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def added_lines(diff: str, name: str) -> list[str]:
    """Lines the diff adds to one file."""
    lines: list[str] = []
    current = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            current = Path(line[4:]).name
        elif line.startswith("+") and current == name:
            lines.append(line[1:])
    return lines


# --- scenarios ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(scenario: dict[str, Any], setup_for: Any) -> None:
    setup = setup_for(scenario)
    fault = scenario.get("fault")
    if fault is not None:
        setup.index.faults.add(fault["path"], _fault(fault["kind"]), times=RETRIES + 1)
    before = snapshot(setup.matrix)
    if "error" in scenario:
        with pytest.raises(ResolverError) as raised:
            setup.propose(extra_variants=scenario.get("extra_variants"))
        for part in scenario["error"]:
            assert part in raised.value.render()
        assert snapshot(setup.matrix) == before
        return

    proposal = setup.propose()
    assert list(proposal.changed) == scenario["changed"], proposal.diff()
    diff = proposal.diff()
    for name, lines in scenario.get("added", {}).items():
        added = added_lines(diff, name)
        for line in lines:
            assert line in added, f"{name}: {line!r} not added\n{diff}"
    if not proposal.changed:
        assert diff == ""
    assert snapshot(setup.matrix) == before  # proposing writes nothing

    written = write_proposal(proposal)
    assert sorted(p.name for p in written) == sorted(scenario["changed"])
    assert validate_matrix(setup.matrix) == []
    after = snapshot(setup.matrix)
    for name in MATRIX_FILES:
        if name not in scenario["changed"]:
            assert after[name] == before[name], f"{name} was touched"
    # A second refresh against the same index finds nothing new: every row it added is read back.
    again = setup.propose()
    assert again.changed == (), again.diff()


def _fault(kind: str) -> Fault:
    if kind == "garbled":
        return Fault.garbled()
    body = b'{"meta": {"api-version": "1.1"}, "files": [{"filename": "torch-2.9.0-oops.whl", "url": "x"}]}'
    return Fault(body=body)


def test_new_release_rows_read_back_as_facts(setup_for: Any) -> None:
    scenario = next(s for s in SCENARIOS if s["name"] == "new torch release with a new variant")
    setup = setup_for(scenario)
    write_proposal(setup.propose())
    matrix = load_matrix(setup.matrix)
    release = matrix.release(Version("2.8.0"))
    assert release is not None and not release.unverified
    assert release.variants == ("cpu", "cu128", "cu129")
    assert release.python["windows-x86_64"] == ("3.11", "3.12", "3.13", "3.13t")
    assert release.macos_min_arch == {"arm64": Version("14.0")}
    assert release.default_variant == {"linux-x86_64": "cu128", "windows-x86_64": "cpu", "macos-arm64": "cpu"}
    new_build = matrix.builds[("2.8", "cu129")]
    assert new_build.unverified and new_build.platforms == {"linux-x86_64", "windows-x86_64"}
    assert new_build.note is not None and "build_cuda.sh" in new_build.note
    pair = matrix.companions[Version("2.8.0")]
    assert (pair.torchvision, pair.torchaudio, pair.unverified) == (
        Version("0.23.0"),
        Version("2.8.0"),
        False,
    )
    assert matrix.version == TODAY.isoformat()


def test_offline_uses_only_the_cache(setup_for: Any) -> None:
    scenario = next(s for s in SCENARIOS if s["name"] == "new torch release with a new variant")
    setup = setup_for(scenario)
    online = setup.propose()
    setup.index.stop()  # nothing answers now
    offline = setup.propose(offline=True)
    assert offline.new == online.new
    setup.cache = setup.cache.parent / "empty-cache"
    with pytest.raises(ResolverError, match="not in the cache"):
        setup.propose(offline=True)


def test_no_general_index_is_an_input_error(tmp_path: Path) -> None:
    matrix = copy_matrix(tmp_path)
    client = IndexClient(cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(ResolverError) as raised:
        propose(matrix, Indexes(general=None), client, today=TODAY)
    assert raised.value.exit_code == 2
    assert "STACK_RESOLVER_INDEX_URL" in raised.value.render()


# --- pure derivations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("manylinux_2_28_x86_64", [("linux-x86_64", "2.28")]),
        ("manylinux2014_aarch64", [("linux-aarch64", "2.17")]),
        ("manylinux1_x86_64", [("linux-x86_64", "2.5")]),
        ("linux_x86_64", [("linux-x86_64", None)]),
        ("win_amd64", [("windows-x86_64", None)]),
        ("macosx_14_0_arm64", [("macos-arm64", "14.0")]),
        ("macosx_10_9_universal2", [("macos-arm64", "10.9"), ("macos-x86_64", "10.9")]),
        ("musllinux_1_2_x86_64", []),
        ("win_arm64", []),
    ],
)
def test_tag_platforms(tag: str, expected: list[tuple[str, str | None]]) -> None:
    assert [(p, str(f) if f else None) for p, f in tag_platforms(tag)] == expected


def test_wheel_tags_to_platform_facts() -> None:
    names = [
        "torch-2.9.0-cp313-cp313t-manylinux_2_28_x86_64.whl",
        "torch-2.9.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "torch-2.9.0-cp312-cp312-manylinux_2_28_aarch64.whl",
        "torch-2.9.0-cp312-none-macosx_11_0_arm64.whl",
        "torch-2.9.0-cp313-none-macosx_14_0_arm64.whl",
        "torch-2.9.0+cu128-cp312-cp312-linux_x86_64.whl",
    ]
    facts = platform_facts(read_wheel(IndexFile(n, f"http://x/{n}", None)) for n in names)
    assert facts.python == {
        "linux-x86_64": ("3.12", "3.13t"),
        "linux-aarch64": ("3.12",),
        "macos-arm64": ("3.12", "3.13"),
    }
    # glibc: the lowest tag of one wheel, the highest floor across wheels
    assert facts.glibc_min == {"x86_64": Version("2.28"), "aarch64": Version("2.28")}
    # macOS: the floor belongs to the wheel; the arch's is the lowest, higher ones are listed apart
    assert facts.macos_min == {"arm64": Version("11.0")}
    assert facts.macos_min_python == {"arm64": {"3.13": Version("14.0")}}
    assert tag_python("cp313", "cp313t") == "3.13t" and tag_python("py3", "none") is None


def test_requirement_readers() -> None:
    linux = [
        "filelock",
        'nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux" and platform_machine == "x86_64"',
    ]
    assert cuda_variant(linux, "linux-x86_64", "3.12") == "cu128"
    assert cuda_variant(linux, "linux-aarch64", "3.12") is None
    assert cuda_variant(
        ['cuda-toolkit[cudart]==13.2.2; platform_system == "Linux"'], "linux-aarch64", "3.13"
    ) == ("cu132")
    assert torch_extra(['torch>=2.2; extra == "torch"', 'torch>=1.0; extra == "all"', "numpy"]) == ">=2.2"
    assert torch_extra(['torch; extra == "torch"']) == ""
    assert exact_pin(torch_pin(["numpy", "torch==2.7.1"])) == Version("2.7.1")
    assert exact_pin(torch_pin(["torch>=2.14.0"])) is None
    assert torch_pin(["numpy"]) is None
    assert exact_pin(SpecifierSet("==2.7.*")) is None


# --- command line ------------------------------------------------------------------------------


def run_refresh(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, "matrix", "refresh", "--matrix", "matrix", *args, timeout=120)


def test_cli_prints_then_writes(setup_for: Any, tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s["name"] == "new transformers release with a raised torch floor")
    setup = setup_for(scenario)
    env = offline_env(tmp_path / "home")
    env.update(
        {
            "STACK_RESOLVER_INDEX_URL": setup.index.url(),
            "STACK_RESOLVER_PYTORCH_INDEX": f"{setup.index.base_url}/whl/{{variant}}/simple",
            "STACK_RESOLVER_CACHE_DIR": str(tmp_path / "cli-cache"),
            "STACK_RESOLVER_HTTP_BACKOFF": "0",
        }
    )
    before = snapshot(setup.matrix)
    shown = run_refresh(tmp_path, env, "--only", "transformers")
    assert shown.returncode == 0, shown.stderr
    assert '+version = "4.53.0"' in shown.stdout and "--write" in shown.stderr
    assert snapshot(setup.matrix) == before
    offline = run_refresh(tmp_path, env, "--only", "transformers", "--offline", "--write")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == shown.stdout
    assert "wrote" in offline.stderr
    assert 'version = "4.53.0"' in (setup.matrix / "transformers.toml").read_text(encoding="utf-8")
    again = run_refresh(tmp_path, env, "--only", "transformers", "--write")
    assert again.returncode == 0 and again.stdout == "" and "up to date" in again.stderr


def test_cli_without_general_index(tmp_path: Path) -> None:
    copy_matrix(tmp_path)
    env = offline_env(tmp_path / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "cache")
    result = run_refresh(tmp_path, env)
    assert result.returncode == 2
    assert "general package index" in result.stderr and "STACK_RESOLVER_INDEX_URL" in result.stderr
