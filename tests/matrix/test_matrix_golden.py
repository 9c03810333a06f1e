"""Golden facts about the shipped matrix, written by hand from the sources (not derived from the data).

Each test states one fact a user relies on; if the data changes one of these, a source must say so.
"""

from __future__ import annotations

import pytest
from packaging.version import Version

from resolver.host.model import ComputeCapability, DriverVersion
from resolver.matrix.arch import ArchTarget
from resolver.matrix.load import load_matrix
from resolver.matrix.model import Build, Matrix, TorchRelease


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def release(matrix: Matrix, version: str) -> TorchRelease:
    found = matrix.release(Version(version))
    assert found is not None, version
    return found


def build(matrix: Matrix, version: str, variant: str) -> Build:
    found = matrix.build(release(matrix, version), variant)
    assert found is not None, (version, variant)
    return found


def ccs(matrix: Matrix, version: str, variant: str, platform: str = "linux-x86_64") -> set[str]:
    return {str(t.cc) for t in build(matrix, version, variant).arch[platform]}


def cc(text: str) -> ComputeCapability:
    return ComputeCapability.parse(text)


def series_key(series: str) -> tuple[int, int]:
    major, minor = series.split(".")
    return int(major), int(minor)


# --- releases, Python, platforms -------------------------------------------------------------


def test_oldest_and_newest_torch(matrix: Matrix) -> None:
    assert str(matrix.torch[-1].version) == "1.12.0"
    assert str(matrix.torch[0].version) == "2.15.0"


def test_torch_2_9_0_requires_python_3_10(matrix: Matrix) -> None:
    spec = release(matrix, "2.9.0").requires_python
    assert "3.9.0" not in spec
    assert "3.10.0" in spec


def test_torch_2_15_requires_python_3_11(matrix: Matrix) -> None:
    assert "3.10.0" not in release(matrix, "2.15.0").requires_python


def test_free_threaded_313t_from_2_7_0_until_2_12_0(matrix: Matrix) -> None:
    assert "3.13t" not in release(matrix, "2.6.0").python["linux-x86_64"]
    assert "3.13t" in release(matrix, "2.7.0").python["linux-x86_64"]
    assert "3.13t" in release(matrix, "2.12.0").python["linux-x86_64"]
    assert "3.13t" not in release(matrix, "2.12.1").python["linux-x86_64"]


def test_python_3_14_first_in_2_9_0(matrix: Matrix) -> None:
    assert "3.14" not in release(matrix, "2.8.0").python["windows-x86_64"]
    assert "3.14" in release(matrix, "2.9.0").python["windows-x86_64"]


def test_python_3_11_on_linux_x86_64_only_in_1_13(matrix: Matrix) -> None:
    rel = release(matrix, "1.13.1")
    assert "3.11" in rel.python["linux-x86_64"]
    assert "3.11" not in rel.python["windows-x86_64"]


def test_macos_x86_64_ends_at_2_2_2(matrix: Matrix) -> None:
    assert "macos-x86_64" in release(matrix, "2.2.2").platforms
    assert "macos-x86_64" not in release(matrix, "2.3.0").platforms
    assert max(r.version for r in matrix.torch if "macos-x86_64" in r.platforms) == Version("2.2.2")


def test_macos_minimum_14_from_2_12(matrix: Matrix) -> None:
    assert release(matrix, "2.11.0").macos_min == Version("11.0")
    assert release(matrix, "2.12.0").macos_min == Version("14.0")


# --- glibc ---------------------------------------------------------------------------------------


def test_glibc_2_6_0(matrix: Matrix) -> None:
    rel = release(matrix, "2.6.0")
    assert rel.glibc_min["x86_64"] == Version("2.17")
    assert rel.glibc_min["aarch64"] == Version("2.28")


def test_glibc_2_7_0_x86_64_is_2_28(matrix: Matrix) -> None:
    assert release(matrix, "2.7.0").glibc_min["x86_64"] == Version("2.28")


def test_glibc_2_5_1_aarch64_is_2_17(matrix: Matrix) -> None:
    assert release(matrix, "2.5.1").glibc_min["aarch64"] == Version("2.17")


# --- PyPI default variants -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "platform", "variant"),
    [
        ("1.12.0", "linux-x86_64", "cu102"),
        ("2.0.1", "linux-x86_64", "cu117"),
        ("2.7.1", "linux-x86_64", "cu126"),
        ("2.8.0", "linux-x86_64", "cu128"),
        ("2.10.0", "linux-aarch64", "cpu"),
        ("2.11.0", "linux-aarch64", "cu130"),
        ("2.14.1", "linux-x86_64", "cu130"),
        ("2.15.0", "linux-x86_64", "cu132"),
        ("2.7.1", "windows-x86_64", "cpu"),
        ("2.7.1", "macos-arm64", "cpu"),
    ],
)
def test_pypi_default_variant(matrix: Matrix, version: str, platform: str, variant: str) -> None:
    assert release(matrix, version).default_variant[platform] == variant


# --- GPU architectures in builds -----------------------------------------------------------------


def test_2_7_cu128_is_the_first_build_with_sm_120(matrix: Matrix) -> None:
    with_120 = [
        b for b in matrix.builds.values() if any(t.cc == cc("12.0") for ts in b.arch.values() for t in ts)
    ]
    first = min(with_120, key=lambda b: series_key(b.series))
    assert (first.series, first.variant) == ("2.7", "cu128")
    assert not any(b.series == "2.7" and b.variant != "cu128" for b in with_120)


def test_2_7_cu128_has_no_ptx_on_12_0(matrix: Matrix) -> None:
    assert ArchTarget(cc("12.0"), ptx=False) in build(matrix, "2.7.0", "cu128").arch["linux-x86_64"]


def test_cu13x_builds_carry_nothing_below_sm_75(matrix: Matrix) -> None:
    cu13 = [b for b in matrix.builds.values() if b.cuda is not None and b.cuda.major == 13]
    assert len(cu13) >= 10
    for b in cu13:
        for targets in b.arch.values():
            assert all(t.cc >= cc("7.5") for t in targets), (b.series, b.variant)


def test_2_8_cu128_has_sm_70_but_2_11_cu128_does_not(matrix: Matrix) -> None:
    assert "7.0" in ccs(matrix, "2.8.0", "cu128")
    assert "7.0" in ccs(matrix, "2.10.0", "cu128")
    assert "7.0" not in ccs(matrix, "2.11.0", "cu128")


def test_k80_only_in_cu10_cu11_builds_through_2_7_cu118(matrix: Matrix) -> None:
    with_37 = [
        b for b in matrix.builds.values() if any(t.cc == cc("3.7") for ts in b.arch.values() for t in ts)
    ]
    assert all(b.cuda is not None and b.cuda.major in (10, 11) for b in with_37)
    last = max(with_37, key=lambda b: series_key(b.series))
    assert (last.series, last.variant) == ("2.7", "cu118")
    assert "3.7" in ccs(matrix, "1.12.0", "cu102")


def test_sm_90_first_in_2_0_cu118_not_cu117(matrix: Matrix) -> None:
    assert "9.0" in ccs(matrix, "2.0.0", "cu118")
    assert "9.0" not in ccs(matrix, "2.0.0", "cu117")


def test_cu121_has_no_kepler(matrix: Matrix) -> None:
    assert ccs(matrix, "2.1.0", "cu121") == {"5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0"}


def test_2_5_cu124_aarch64_is_hopper_only(matrix: Matrix) -> None:
    assert ccs(matrix, "2.5.0", "cu124", "linux-aarch64") == {"9.0"}


def test_cu130_aarch64_carries_jetson_thor(matrix: Matrix) -> None:
    assert ccs(matrix, "2.11.0", "cu130", "linux-aarch64") == {"8.0", "9.0", "10.0", "11.0", "12.0"}
    assert "11.0" not in ccs(matrix, "2.11.0", "cu130", "linux-x86_64")


def test_windows_lists_carry_no_ptx(matrix: Matrix) -> None:
    assert "12.0+PTX" in [str(t) for t in build(matrix, "2.12.0", "cu130").arch["linux-x86_64"]]
    for b in matrix.builds.values():
        assert not any(t.ptx for t in b.arch.get("windows-x86_64", ()))


def test_cu102_is_linux_only(matrix: Matrix) -> None:
    assert build(matrix, "1.12.1", "cu102").platforms == frozenset({"linux-x86_64"})


def test_2_15_non_pypi_variants_are_unverified(matrix: Matrix) -> None:
    assert build(matrix, "2.15.0", "cu126").unverified
    assert build(matrix, "2.15.0", "cu134").unverified
    cu132 = build(matrix, "2.15.0", "cu132")
    assert not cu132.is_unverified_on("linux-x86_64")
    assert cu132.is_unverified_on("windows-x86_64")


def test_cu129_after_2_8_is_unverified(matrix: Matrix) -> None:
    assert not build(matrix, "2.8.0", "cu129").unverified
    assert build(matrix, "2.9.0", "cu129").unverified


# --- CUDA drivers ------------------------------------------------------------------------------


def test_cuda_12_floor(matrix: Matrix) -> None:
    assert matrix.driver_floor(Version("12.8"), "linux") == DriverVersion.parse("525.60.13")
    assert matrix.driver_floor(Version("12.1"), "windows") == DriverVersion.parse("528.33")


def test_cuda_11_floor(matrix: Matrix) -> None:
    assert matrix.driver_floor(Version("11.8"), "linux") == DriverVersion.parse("450.80.02")
    assert matrix.driver_floor(Version("11.3"), "windows") == DriverVersion.parse("452.39")


def test_cuda_13_floor_linux_580_windows_unknown(matrix: Matrix) -> None:
    assert matrix.driver_floor(Version("13.0"), "linux") == DriverVersion.parse("580")
    assert matrix.driver_floor(Version("13.2"), "windows") is None
    assert "windows" in matrix.cuda_families[13].unverified_os


def test_cuda_10_2_needs_its_own_driver(matrix: Matrix) -> None:
    assert not matrix.cuda_families[10].minor_version_compatibility
    assert matrix.driver_floor(Version("10.2"), "linux") == DriverVersion.parse("440.33")


def test_toolkit_12_8_ships_570_26(matrix: Matrix) -> None:
    toolkit = matrix.toolkit(Version("12.8"))
    assert toolkit is not None
    assert toolkit.driver["linux"] == DriverVersion.parse("570.26")


def test_cuda_family_targets(matrix: Matrix) -> None:
    assert (str(matrix.cuda_families[12].cc_min), str(matrix.cuda_families[12].cc_max)) == ("5.0", "12.1")
    assert str(matrix.cuda_families[13].cc_min) == "7.5"


# --- GPUs ----------------------------------------------------------------------------------------


def test_ada_products(matrix: Matrix) -> None:
    ada = matrix.gpus[cc("8.9")]
    assert ada.architecture == "Ada Lovelace"
    assert "NVIDIA L4" in ada.products


def test_tegra_parts_and_thor_alias(matrix: Matrix) -> None:
    rule = matrix.tegra_rule
    assert {cc("5.3"), cc("6.2"), cc("7.2"), cc("8.7"), cc("11.0"), cc("10.1")} <= rule.tegra
    assert cc("8.6") not in rule.tegra
    assert rule.same_part(cc("10.1"), cc("11.0"))


def test_blackwell_first_cuda(matrix: Matrix) -> None:
    assert matrix.gpus[cc("12.0")].first_cuda == Version("12.8")
    assert matrix.gpus[cc("3.7")].removed_in_cuda == Version("12.0")


# --- companions ----------------------------------------------------------------------------------


def test_torchvision_pairs(matrix: Matrix) -> None:
    assert matrix.companions[Version("2.7.1")].torchvision == Version("0.22.1")
    assert matrix.companions[Version("2.0.0")].torchvision == Version("0.15.1")
    assert matrix.companions[Version("1.12.0")].torchaudio == Version("0.12.0")


def test_torchaudio_none_after_2_11(matrix: Matrix) -> None:
    assert matrix.companions[Version("2.11.0")].torchaudio == Version("2.11.0")
    for version in ("2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0"):
        assert matrix.companions[Version(version)].torchaudio is None


def test_2_15_torchvision_pairing_is_unverified(matrix: Matrix) -> None:
    assert matrix.companions[Version("2.15.0")].unverified
    assert not matrix.companions[Version("2.14.1")].unverified


# --- transformers --------------------------------------------------------------------------------


def tf(matrix: Matrix, version: str) -> object:
    found = matrix.transformers_release(Version(version))
    assert found is not None, version
    return found


def test_transformers_range(matrix: Matrix) -> None:
    assert str(matrix.transformers[-1].version) == "4.20.0"
    assert str(matrix.transformers[0].version) == "5.24.0"
    assert len(matrix.transformers) == 170


def test_transformers_4_47_needs_python_3_9(matrix: Matrix) -> None:
    row = matrix.transformers_release(Version("4.47.0"))
    assert row is not None
    assert "3.8.0" not in row.requires_python
    assert "3.9.0" in row.requires_python


def test_transformers_4_52_caps_torch_below_2_7(matrix: Matrix) -> None:
    row = matrix.transformers_release(Version("4.52.3"))
    assert row is not None
    assert Version("2.7.0") not in row.torch
    assert Version("2.6.0") in row.torch
    assert Version("2.0.1") not in row.torch
    assert row.runtime_min_torch == Version("2.1.0")


def test_transformers_4_22_literal_exclusion(matrix: Matrix) -> None:
    row = matrix.transformers_release(Version("4.22.1"))
    assert row is not None
    assert "!=0.12.0" in str(row.torch)


def test_transformers_4_56_gate_differs_from_extra(matrix: Matrix) -> None:
    row = matrix.transformers_release(Version("4.56.0"))
    assert row is not None
    assert Version("2.1.2") not in row.torch
    assert row.runtime_min_torch == Version("2.1.0")


def test_transformers_5_21_needs_python_3_11(matrix: Matrix) -> None:
    row = matrix.transformers_release(Version("5.21.0"))
    assert row is not None
    assert "3.10.0" not in row.requires_python


def test_transformers_yanked(matrix: Matrix) -> None:
    yanked = {str(t.version) for t in matrix.transformers if t.yanked}
    assert yanked == {"4.25.0", "4.46.0", "4.52.0", "4.57.0", "5.10.0"}
