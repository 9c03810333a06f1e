"""AMD and Intel GPU detection (resolver/host/vendors.py) with captured outputs under tests/data/amd
and tests/data/intel, passed through fake `Probes`; and the host JSON fields they fill."""

from __future__ import annotations

import fnmatch
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from resolver.errors import HostFileError, InputError
from resolver.host import hostfile as hf
from resolver.host import parse as hp
from resolver.host import probes as p
from resolver.host import vendors as v

DATA = Path(__file__).parents[1] / "data"
LINUX = p.PlatformInfo(system="Linux", machine="x86_64", python=(3, 12))


def data(name: str) -> str:
    return (DATA / name).read_text()


def kfd(fixture: str) -> dict[str, str]:
    """A captured KFD topology directory as the files the probe reads."""
    root = DATA / "amd" / fixture / "nodes"
    return {
        f"/sys/class/kfd/kfd/topology/nodes/{n.name}/properties": (n / "properties").read_text()
        for n in root.iterdir()
    }


@dataclass
class Machine:
    files: Mapping[str, str] = field(default_factory=dict)
    # " ".join(argv) -> stdout (exit 0)
    commands: Mapping[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)

    def run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
        line = " ".join(argv)
        self.ran.append(line)
        out = self.commands.get(line)
        return None if out is None else subprocess.CompletedProcess(list(argv), 0, out, "")

    def detect(self, environ: Mapping[str, str] | None = None) -> p.Detection:
        probes = p.Probes(
            environ=environ or {},
            platform=LINUX,
            read_text=self.files.get,
            run=self.run,
            load_nvml=lambda: None,
            confstr=lambda name: "glibc 2.35",
            glob=lambda pattern: sorted(f for f in self.files if fnmatch.fnmatch(f, pattern)),
        )
        return p.detect(probes)


# --- pure parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "gfx"),
    [
        (90402, "gfx942"),
        (90010, "gfx90a"),
        (90006, "gfx906"),
        (100300, "gfx1030"),
        (110000, "gfx1100"),
        (120001, "gfx1201"),
        (110501, "gfx1151"),
        (90500, "gfx950"),
    ],
)
def test_gfx_target_version(value: int, gfx: str) -> None:
    assert v.gfx_from_target_version(value) == gfx


def test_kfd_cpu_node_is_not_a_gpu() -> None:
    assert v.parse_kfd_properties(data("amd/kfd-mi300x-x2/nodes/0/properties")) is None
    assert v.parse_kfd_properties(data("amd/kfd-mi300x-x2/nodes/1/properties")) == "gfx942"
    assert v.parse_kfd_properties(data("amd/kfd-rx7900xtx/nodes/1/properties")) == "gfx1100"


def test_kfd_garbage_is_a_parse_error() -> None:
    with pytest.raises(hp.ProbeParseError):
        v.parse_kfd_properties("simd_count lots\n")


def test_rocminfo_lists_gpu_agents_only() -> None:
    assert v.parse_rocminfo(data("amd/rocminfo-rx580-gfx803.txt")) == (("gfx803", "Radeon RX 580 Series"),)


def test_amd_smi_both_shapes() -> None:
    assert v.parse_amd_smi_static(data("amd/amd-smi-static-mi300x.json")) == (
        ("gfx942", "AMD Instinct MI300X"),
        ("gfx942", "AMD Instinct MI300X"),
    )
    assert v.parse_amd_smi_static(data("amd/amd-smi-static-gpu-data-mi250.json")) == (
        ("gfx90a", "AMD Instinct MI250X/MI250"),
    )


def test_rocm_version_sources() -> None:
    assert v.parse_rocm_version(data("amd/rocm-info-version")) == "6.4.1"
    assert v.parse_rocm_version(data("amd/amd-smi-version.txt")) == "6.4.1"


def test_xpu_smi_discovery() -> None:
    assert v.parse_xpu_smi_discovery(data("intel/xpu-smi-discovery-arc-a770.json")) == (
        "Intel(R) Arc(TM) A770 Graphics",
    )


# --- the chains through detect() -----------------------------------------------------------------


def test_kfd_first_then_rocm_version_file() -> None:
    machine = Machine(
        files={**kfd("kfd-mi300x-x2"), "/opt/rocm/.info/version": data("amd/rocm-info-version")}
    )
    host = machine.detect().host
    assert [(g.vendor, g.gfx_target) for g in host.gpus] == [("amd", "gfx942"), ("amd", "gfx942")]
    assert host.rocm_version == "6.4.1"
    assert host.sources["amd_gpus"] == "/sys/class/kfd"
    assert "rocminfo" not in machine.ran  # the first answer wins


def test_rocminfo_when_no_kfd_then_amd_smi() -> None:
    rocminfo = Machine(commands={"rocminfo": data("amd/rocminfo-rx580-gfx803.txt")})
    assert [g.gfx_target for g in rocminfo.detect().host.gpus] == ["gfx803"]
    smi = Machine(
        commands={
            "amd-smi static --asic --json": data("amd/amd-smi-static-mi300x.json"),
            "amd-smi version": data("amd/amd-smi-version.txt"),
        }
    )
    host = smi.detect().host
    assert [g.name for g in host.gpus] == ["AMD Instinct MI300X", "AMD Instinct MI300X"]
    assert host.rocm_version == "6.4.1" and host.sources["rocm_version"] == "amd-smi version"


def test_broken_rocminfo_warns_and_moves_on() -> None:
    machine = Machine(
        commands={
            "rocminfo": "garbage",
            "amd-smi static --asic --json": data("amd/amd-smi-static-gpu-data-mi250.json"),
        }
    )
    detection = machine.detect()
    assert [g.gfx_target for g in detection.host.gpus] == ["gfx90a"]
    assert any(w.startswith("rocminfo:") for w in detection.warnings)


def test_intel_xpu_smi_then_sysfs() -> None:
    smi = Machine(commands={"xpu-smi discovery -j": data("intel/xpu-smi-discovery-arc-a770.json")})
    assert [(g.vendor, g.name) for g in smi.detect().host.gpus] == [
        ("intel", "Intel(R) Arc(TM) A770 Graphics")
    ]
    sysfs = Machine(
        files={
            "/sys/class/drm/card0/device/vendor": "0x8086\n",
            "/sys/class/drm/card0/device/class": "0x030000\n",
            "/sys/class/drm/card0/device/device": "0x56a0\n",
            "/sys/class/drm/card1/device/vendor": "0x1234\n",  # not Intel
            "/sys/class/drm/card1/device/class": "0x030000\n",
        }
    )
    assert [(g.vendor, g.name) for g in sysfs.detect().host.gpus] == [("intel", "Intel GPU 0x56a0")]


def test_overrides_win_and_a_bad_one_names_the_variable() -> None:
    machine = Machine(files=kfd("kfd-mi300x-x2"))
    host = machine.detect(
        {"STACK_RESOLVER_AMD_GPUS": "MI250=gfx90a", "STACK_RESOLVER_ROCM_VERSION": "6.3"}
    ).host
    assert [(g.name, g.gfx_target) for g in host.gpus] == [("MI250", "gfx90a")]
    assert host.rocm_version == "6.3" and host.sources["amd_gpus"] == "STACK_RESOLVER_AMD_GPUS"
    with pytest.raises(InputError, match="STACK_RESOLVER_AMD_GPUS"):
        machine.detect({"STACK_RESOLVER_AMD_GPUS": "sm_90"})
    assert machine.detect({"STACK_RESOLVER_NO_GPU": "1"}).host.gpus == ()


# --- host JSON -----------------------------------------------------------------------------------

MIXED = {
    "os": "linux",
    "arch": "x86_64",
    "rocm_version": "6.4.1",
    "gpus": [
        {
            "index": 0,
            "name": "AMD Instinct MI300X",
            "vendor": "amd",
            "gfx_target": "gfx942",
            "memory_mib": 196592,
        },
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
        {"index": 0, "name": "Intel(R) Arc(TM) A770 Graphics", "vendor": "intel"},
    ],
}


def test_host_json_round_trip_is_exact() -> None:
    host = hf.host_from_mapping(MIXED)
    assert [g.vendor for g in host.gpus] == ["amd", "nvidia", "intel"]  # order kept, nvidia by default
    again = hf.parse_host_json(host.dumps())
    assert again == host
    assert again.dumps() == host.dumps()
    assert json.loads(host.dumps())["gpus"][0] == {
        "index": 0,
        "name": "AMD Instinct MI300X",
        "vendor": "amd",
        "gfx_target": "gfx942",
        "memory_mib": 196592,
    }


@pytest.mark.parametrize(
    ("gpu", "key"),
    [
        ({"vendor": "amd", "name": "x"}, "gpus[0].gfx_target"),
        ({"vendor": "amd", "gfx_target": "sm_90"}, "gpus[0].gfx_target"),
        (
            {"vendor": "amd", "gfx_target": "gfx942", "compute_capability": "9.0"},
            "gpus[0].compute_capability",
        ),
        ({"vendor": "matrox", "compute_capability": "9.0"}, "gpus[0].vendor"),
        ({"compute_capability": "9.0", "gfx_target": "gfx942"}, "gpus[0].gfx_target"),
    ],
)
def test_bad_vendor_fields_name_the_key(gpu: dict[str, str], key: str) -> None:
    with pytest.raises(HostFileError) as caught:
        hf.host_from_mapping({"os": "linux", "arch": "x86_64", "gpus": [gpu]}, "host.json")
    assert caught.value.location is not None and caught.value.location.key == key


def test_vendor_spellings_are_normalised() -> None:
    host = hf.host_from_mapping(
        {"os": "linux", "arch": "x86_64", "gpus": [{"vendor": "AMD", "gfx_target": "GFX90A:sramecc+:xnack-"}]}
    )
    assert (host.gpus[0].vendor, host.gpus[0].gfx_target) == ("amd", "gfx90a")
