"""The vendor parsers on captured real outputs (issue 20): the table tests/data/vendor_captures.toml
maps each file under tests/data/amd/captured/ and tests/data/intel/captured/ to the answer, and the
probe chains are run on the captured KFD trees."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from resolver.host import vendors as v
from resolver.host.parse import ProbeParseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).parents[1] / "data"
CASES: dict[str, list[dict[str, Any]]] = tomllib.loads((DATA / "vendor_captures.toml").read_text("utf-8"))
CAPTURED = [DATA / "amd" / "captured", DATA / "intel" / "captured"]


def text(relative: str) -> str:
    return (DATA / relative).read_text("utf-8")


def kfd_files(relative: str) -> dict[str, str]:
    """A captured KFD tree as the files the probe reads, under the real sysfs paths."""
    root = DATA / relative / "nodes"
    return {
        f"/sys/class/kfd/kfd/topology/nodes/{n.name}/properties": (n / "properties").read_text("utf-8")
        for n in root.iterdir()
    }


def node_order(path: Path) -> int:
    return int(path.parent.name)


def test_every_capture_has_a_case() -> None:
    listed = {row["file"] for rows in CASES.values() for row in rows if "file" in row}
    listed |= {row["dir"] for row in CASES.get("kfd", [])}
    on_disk = set()
    for folder in CAPTURED:
        for path in folder.iterdir():
            if path.name != "SOURCES.md":
                on_disk.add(path.relative_to(DATA).as_posix())
    assert on_disk == listed


@pytest.mark.parametrize("row", CASES["rocminfo"], ids=lambda r: r["file"].rsplit("/", 1)[-1])
def test_rocminfo_captures(row: dict[str, Any]) -> None:
    assert v.parse_rocminfo(text(row["file"])) == tuple(zip(row["gfx"], row["names"], strict=True))


@pytest.mark.parametrize("row", CASES["kfd"], ids=lambda r: r["dir"].rsplit("/", 1)[-1])
def test_kfd_captures(row: dict[str, Any]) -> None:
    gfx, cpu_nodes, no_target = [], 0, 0
    for path in sorted((DATA / row["dir"]).glob("nodes/*/properties"), key=node_order):
        try:
            target = v.parse_kfd_properties(path.read_text("utf-8"))
        except v.KfdNoTarget:
            no_target += 1
            continue
        if target is None:
            cpu_nodes += 1
        else:
            gfx.append(target)
    assert (gfx, cpu_nodes, no_target) == (row["gfx"], row["cpu_nodes"], row["no_target"])


@pytest.mark.parametrize("row", CASES["amd_smi"], ids=lambda r: r["file"].rsplit("/", 1)[-1])
def test_amd_smi_captures(row: dict[str, Any]) -> None:
    assert v.parse_amd_smi_static(text(row["file"])) == tuple(zip(row["gfx"], row["names"], strict=True))


@pytest.mark.parametrize("row", CASES["rocm_version"], ids=lambda r: r["file"].rsplit("/", 1)[-1])
def test_rocm_version_captures(row: dict[str, Any]) -> None:
    assert v.parse_rocm_version(text(row["file"])) == row["version"]


@pytest.mark.parametrize("row", CASES["xpu_smi"], ids=lambda r: r["file"].rsplit("/", 1)[-1])
def test_xpu_smi_captures(row: dict[str, Any]) -> None:
    assert v.parse_xpu_smi_discovery(text(row["file"])) == tuple(row["names"])


# --- the AMD chain on the captured KFD trees -----------------------------------------------------


class Sysfs:
    """Files and commands for `probe_amd`; records the commands asked."""

    def __init__(self, files: dict[str, str], commands: dict[str, str] | None = None) -> None:
        self.files, self.commands, self.ran = files, commands or {}, []

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def run(self, argv: Sequence[str], source: str) -> str | None:
        self.ran.append(" ".join(argv))
        return self.commands.get(" ".join(argv))

    def glob(self, pattern: str) -> list[str]:
        return [f for f in self.files if fnmatch.fnmatch(f, pattern)]


def test_chain_on_mi210_kfd_tree() -> None:
    machine = Sysfs(kfd_files("amd/captured/kfd-mi210-x8"))
    report = v.probe_amd(machine.read, machine.run, machine.glob)
    assert report.gpus is not None and [g.gfx_target for g in report.gpus] == ["gfx90a"] * 8
    assert [g.index for g in report.gpus] == list(range(8))
    assert report.gpus_source == "/sys/class/kfd" and report.warnings == []
    assert not any(line.startswith("rocminfo") for line in machine.ran)


def test_chain_on_mi308x_cpx_tree_counts_every_partition() -> None:
    machine = Sysfs(kfd_files("amd/captured/kfd-mi308x-cpx"))
    report = v.probe_amd(machine.read, machine.run, machine.glob)
    assert report.gpus is not None and len(report.gpus) == 32
    assert {g.gfx_target for g in report.gpus} == {"gfx942"} and report.warnings == []


def test_old_kernel_kfd_tree_falls_through_to_rocminfo() -> None:
    """Bug found by the 2018 Vega 10 capture: its CPU node has no gfx_target_version line, and the
    parser called that a broken file (a warning per node, a false one for the CPU). Now the CPU node
    is a CPU node, and the GPU node without a target sends the chain on with one warning."""
    machine = Sysfs(
        kfd_files("amd/captured/kfd-vega10-2018"),
        {"rocminfo": text("amd/captured/rocminfo-vega20-x8-gfx906.txt")},  # any rocminfo answer
    )
    report = v.probe_amd(machine.read, machine.run, machine.glob)
    assert "rocminfo" in machine.ran and report.gpus_source == "rocminfo"
    assert len(report.warnings) == 1 and "no gfx_target_version" in report.warnings[0]
    cpu_node = text("amd/captured/kfd-vega10-2018/nodes/0/properties")
    assert "gfx_target_version" not in cpu_node and v.parse_kfd_properties(cpu_node) is None


def test_kfd_node_without_simd_count_is_still_a_parse_error() -> None:
    with pytest.raises(ProbeParseError, match="simd_count"):
        v.parse_kfd_properties("cpu_cores_count 4\ngfx_target_version 0\n")


# --- the human-readable and table forms ------------------------------------------------------------


def test_amd_smi_text_skips_non_gpu_blocks_and_reads_title_case_keys() -> None:
    # A CPU block as `amd-smi static` prints on MI300A hosts; a key spelled as a title.
    given = (
        "CPU: 0\n    SMU:\n        FW_VERSION: 85.90.0\n"
        "GPU: 0\n    ASIC:\n        Market Name: AMD Instinct MI300X OAM: 750W SKU\n"
        "        TARGET_GRAPHICS_VERSION: gfx942\n    BOARD:\n        PRODUCT_NAME: other\n"
    )
    assert v.parse_amd_smi_static(given) == (("gfx942", "AMD Instinct MI300X OAM: 750W SKU"),)


def test_amd_smi_text_without_a_target_is_a_parse_error() -> None:
    # amd-smi before ROCm 6.1 printed no TARGET_GRAPHICS_VERSION.
    with pytest.raises(ProbeParseError, match="TARGET_GRAPHICS_VERSION"):
        v.parse_amd_smi_static("GPU: 0\n    ASIC:\n        MARKET_NAME: AMD Instinct MI210\n")
    with pytest.raises(ProbeParseError, match="neither JSON"):
        v.parse_amd_smi_static("command not found\n")


def test_xpu_smi_borderless_table() -> None:
    # The layout of newer xpu-smi (no `|` borders), lines as pasted in ggml-org/llama.cpp#28725.
    given = (
        "  Device ID     Device Information                                \n"
        "  0             Device Type: Discrete GPU                         \n"
        "                Device Name: Intel(R) Arc(TM) A770 Graphics       \n"
        "                Device State: normal                              \n"
    )
    assert v.parse_xpu_smi_discovery(given) == ("Intel(R) Arc(TM) A770 Graphics",)


def test_xpu_smi_garbage_is_a_parse_error() -> None:
    with pytest.raises(ProbeParseError):
        v.parse_xpu_smi_discovery("xpu-smi: error while loading shared libraries\n")
