"""The loader's API: default directory, frozen values, overlays, all problems at once, speed, show."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from resolver.errors import InputError, MatrixError
from resolver.host.model import ComputeCapability
from resolver.matrix.load import ENV_VAR, default_matrix_dir, load_matrix, validate_matrix
from resolver.matrix.model import Matrix, Source, variant_cuda, variant_kind
from resolver.matrix.show import show

DATA = Path(__file__).parents[1] / "data"
MINIMAL = DATA / "matrix_min"
SHIPPED = Path(__file__).resolve().parents[2] / "matrices"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def test_default_dir_is_the_shipped_matrices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_matrix_dir() == SHIPPED


def test_env_var_overrides_default_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(MINIMAL))
    assert default_matrix_dir() == MINIMAL
    assert load_matrix().version == "test-1"


def test_values_are_frozen(matrix: Matrix) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.torch[0].date = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.version = "x"  # type: ignore[misc]


def test_ordering(matrix: Matrix) -> None:
    assert [r.version for r in matrix.torch] == sorted((r.version for r in matrix.torch), reverse=True)
    tf = [t.version for t in matrix.transformers]
    assert tf == sorted(tf, reverse=True)
    assert [t.version for t in matrix.toolkits] == sorted(t.version for t in matrix.toolkits)


def test_cpu_build_is_synthesized_for_every_release(matrix: Matrix) -> None:
    for release in matrix.torch:
        build = matrix.build(release, "cpu")
        assert build is not None and build.kind == "cpu"
        assert set(release.python) <= build.platforms
        assert all(targets == () for targets in build.arch.values())


def test_rocm_builds_only_on_rocm_platforms(matrix: Matrix) -> None:
    release = matrix.release(Version("2.7.1"))
    assert release is not None
    build = matrix.build(release, "rocm6.3")
    assert build is not None and build.kind == "rocm"
    assert build.platforms == matrix.rocm_platforms == frozenset({"linux-x86_64"})


def test_variant_names() -> None:
    assert variant_cuda("cu118") == Version("11.8")
    assert variant_cuda("cu102") == Version("10.2")
    assert variant_cuda("cu130") == Version("13.0")
    assert variant_cuda("cpu") is None
    assert variant_kind("rocm6.2.4") == "rocm"
    assert variant_kind("cuda128") is None


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    base = tmp_path / "m"
    shutil.copytree(MINIMAL, base)
    torch = base / "torch.toml"
    torch.write_text(torch.read_text().replace('date = "2025-06-04"', 'date = "June"'))
    gpus = base / "gpus.toml"
    gpus.write_text(gpus.read_text().replace('cc = "9.0"', 'cc = "sm_90"'))
    with pytest.raises(MatrixError) as caught:
        load_matrix(base)
    files = [Path(p.location.file).name for p in caught.value.problems]
    assert files == ["torch.toml", "gpus.toml"]
    assert "torch.toml:7" in caught.value.render()


def test_missing_directory_is_a_problem(tmp_path: Path) -> None:
    problems = validate_matrix(tmp_path / "nope")
    assert [p.message for p in problems] == ["matrix directory not found"]


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    base = tmp_path / "m"
    shutil.copytree(MINIMAL, base)
    (base / "gpus.toml").unlink()
    problems = validate_matrix(base)
    assert problems[0].location.file == str(base / "gpus.toml")
    assert problems[0].message == "matrix file missing"


def test_overlay_adds_an_internal_build(tmp_path: Path) -> None:
    overlay = tmp_path / "team"
    overlay.mkdir()
    (overlay / "sources.toml").write_text(
        '[sources.team_ci]\ntitle = "our CI"\nurl = "https://ci.example.com/torch"\n'
    )
    (overlay / "torch.toml").write_text(
        '[[release]]\nversion = "2.7.1"\nreplace = true\ndate = "2025-06-04"\nrequires_python = ">=3.9"\n'
        'variants = ["cpu", "cu126", "cu128", "cu129"]\nglibc_min = { x86_64 = "2.28" }\n'
        'source = "team_ci"\n\n'
        '[release.python]\nlinux-x86_64 = ["3.11"]\nwindows-x86_64 = ["3.11"]\n\n'
        '[release.default_variant]\nlinux-x86_64 = "cu126"\nwindows-x86_64 = "cpu"\n'
    )
    (overlay / "builds.toml").write_text(
        '[[build]]\nseries = "2.7"\nvariant = "cu129"\nsource = "team_ci"\n\n[build.arch]\n'
        'linux-x86_64 = ["8.0", "9.0", "12.0+PTX"]\n'
    )
    (overlay / "cuda.toml").write_text(
        '[[toolkit]]\nversion = "12.9.1"\ndriver = { linux = "575.57.08", windows = "576.57" }\n'
        'source = "team_ci"\n'
    )
    matrix = load_matrix(MINIMAL, [overlay])
    release = matrix.release(Version("2.7.1"))
    assert release is not None and "cu129" in release.variants
    build = matrix.build(release, "cu129")
    assert build is not None and build.sources == ("team_ci",)
    assert matrix.sources["team_ci"].cite() == "https://ci.example.com/torch"
    assert matrix.directories == (MINIMAL, overlay)


def test_overlay_replace_overrides(tmp_path: Path) -> None:
    overlay = tmp_path / "team"
    overlay.mkdir()
    (overlay / "companions.toml").write_text(
        '[[pair]]\ntorch = "2.7.1"\ntorchvision = "0.22.1"\ntorchaudio = "none"\nreplace = true\n'
        'source = "https://example.com/no-audio"\n'
    )
    matrix = load_matrix(MINIMAL, [overlay])
    assert matrix.companions[Version("2.7.1")].torchaudio is None
    assert "https://example.com/no-audio" in matrix.sources


def test_source_cite_forms() -> None:
    assert Source("a", "t", url="https://x.example/").cite() == "https://x.example/"
    assert Source("b", "t", repo="o/r", path="p.py", commit="c" * 40).cite() == f"o/r:p.py@{'c' * 40}"
    assert Source("c", "t", repo="o/r", path="p.py").cite() == "o/r:p.py"
    assert Source("d", "t", where="PyPI project 'x'", retrieved="2026-11-24").cite() == (
        "PyPI project 'x' (read 2026-11-24)"
    )


def test_line_numbers_skip_multiline_arrays(tmp_path: Path) -> None:
    base = tmp_path / "m"
    shutil.copytree(MINIMAL, base)
    builds = base / "builds.toml"
    builds.write_text(
        builds.read_text()
        .replace(
            'linux-x86_64 = ["8.0", "8.6", "9.0"]',
            'linux-x86_64 = [\n  "8.0",\n  "8.6",\n  "9.0",\n]\nwindows-x86_64 = ["sm_80"]',
        )
        .replace('windows-x86_64 = ["8.0", "8.6", "9.0"]\n', "")
    )
    problems = validate_matrix(base)
    assert len(problems) == 1
    assert problems[0].location.line == 21
    assert problems[0].location.key == "build.arch.windows-x86_64"


@pytest.mark.parametrize(
    ("kind", "key", "needles"),
    [
        ("torch", "2.7.1", ["torch 2.7.1", "cu128", "sm_120", "torchvision 0.22.1", "pytorch/test-infra"]),
        ("cuda", "12.8", ["525.60.13", "570.26", "5.0 to 12.1", "2.7 cu128", "docs.nvidia.com"]),
        ("gpu", "8.9", ["Ada Lovelace", "NVIDIA L4", "2.7 cu128", "developer.nvidia.com"]),
        ("gpu", "sm_121", ["GB10", "2.7 cu128"]),
        (
            "transformers",
            "4.46.3",
            ["requires_python: >=3.8.0", "any version", "PyPI project 'transformers'"],
        ),
    ],
)
def test_show(matrix: Matrix, kind: str, key: str, needles: list[str]) -> None:
    text = show(matrix, kind, key)
    for needle in needles:
        assert needle in text


def test_show_cuda_13_windows_floor_unknown(matrix: Matrix) -> None:
    assert "minimum driver (windows): unknown (unverified)" in show(matrix, "cuda", "13.0")


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("torch", "9.9.9"),
        ("gpu", "4.4"),
        ("cuda", "9.0"),
        ("rocm", "6.3"),
        ("torch", "two"),
        ("transformers", "3.0.0"),
    ],
)
def test_show_unknown(matrix: Matrix, kind: str, key: str) -> None:
    with pytest.raises(InputError) as caught:
        show(matrix, kind, key)
    assert caught.value.hint


def test_gpu_lookup_by_alias(matrix: Matrix) -> None:
    thor = matrix.gpu(ComputeCapability(10, 1))
    assert thor is not None and thor.cc == ComputeCapability(11, 0)


def test_conda_facts_follow_the_matrix_directory_and_overlays(tmp_path: Path) -> None:
    """conda.toml is read by the matrix loader, so --matrix and overlays apply to it."""
    base = load_matrix(SHIPPED)
    assert base.conda is not None and base.conda.conda_name("torch") == "pytorch"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "conda.toml").write_text(
        '[[package]]\nname = "torch"\nconda = "pytorch-gpu"\nreplace = true\nunverified = true\n',
        encoding="utf-8",
    )
    layered = load_matrix(SHIPPED, [overlay])
    assert layered.conda is not None and layered.conda.conda_name("torch") == "pytorch-gpu"
    assert layered.conda.platforms == base.conda.platforms
    assert load_matrix(Path(__file__).parents[1] / "data" / "matrix_min").conda is None
