"""The pure parsers in resolver/host.py, on captured real text (tests/data, sources in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.errors import HostFileError
from resolver.host import hostfile as hf
from resolver.host import parse as hp

DATA = Path(__file__).parents[1] / "data"


def data(name: str) -> str:
    # Bytes, so a CRLF capture keeps its CR.
    return (DATA / name).read_bytes().decode("utf-8")


# --- nvidia-smi ---------------------------------------------------------------------------

# file -> (driver, [(index, name, cc, memory_mib), ...])
SMI_CASES = {
    "a100-sxm4-80gb.csv": ("535.104.05", [(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920)]),
    "a100-sxm4-40gb-x2.csv": (
        "580.126.09",
        [(0, "NVIDIA A100-SXM4-40GB", "8.0", 40960), (1, "NVIDIA A100-SXM4-40GB", "8.0", 40960)],
    ),
    "rtx-4090-d.csv": ("550.107.02", [(0, "NVIDIA GeForce RTX 4090 D", "8.9", 24564)]),
    "rtx-4090-windows.csv": ("560.94", [(0, "NVIDIA GeForce RTX 4090", "8.9", 24564)]),
    "mixed-titanv-rtx5880.csv": (
        "570.86.15",
        [(0, "NVIDIA TITAN V", "7.0", 12288), (1, "NVIDIA RTX 5880 Ada Generation", "8.9", 49140)],
    ),
    "mixed-3090-1080ti.csv": (
        "535.129.03",
        [(0, "NVIDIA GeForce RTX 3090", "8.6", 24576), (1, "NVIDIA GeForce GTX 1080 Ti", "6.1", 11264)],
    ),
    "h100-sxm-x8.csv": ("550.54.15", [(i, "NVIDIA H100 80GB HBM3", "9.0", 81559) for i in range(8)]),
    "gb10-unified-memory.csv": ("580.173.02", [(0, "NVIDIA GB10", "12.1", None)]),
}


@pytest.mark.parametrize("name", sorted(SMI_CASES))
def test_nvidia_smi_csv(name: str) -> None:
    driver, gpus = SMI_CASES[name]
    report = hp.parse_nvidia_smi_csv(data(f"nvidia-smi/{name}"))
    assert report.driver == driver
    assert [(g.index, g.name, str(g.compute_capability), g.memory_mib) for g in report.gpus] == gpus


def test_nvidia_smi_mixed_box_keeps_each_gpu_distinct() -> None:
    report = hp.parse_nvidia_smi_csv(data("nvidia-smi/mixed-3090-1080ti.csv"))
    assert [g.compute_capability.sm for g in report.gpus] == ["sm_86", "sm_61"]


def test_nvidia_smi_empty_output_is_no_gpu() -> None:
    assert hp.parse_nvidia_smi_csv("") == hp.NvidiaSmiReport(driver=None, gpus=())
    assert hp.parse_nvidia_smi_csv("\n\n") == hp.NvidiaSmiReport(driver=None, gpus=())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (data("nvidia-smi/failed-no-driver.txt"), "expected 5 comma-separated fields"),
        (data("nvidia-smi/old-driver-no-compute-cap.txt"), "expected 5 comma-separated fields"),
        (data("nvidia-smi/no-devices.txt"), "expected 5 comma-separated fields"),
        ("0, NVIDIA A100-SXM4-80GB, 535.104.05, 81920\n", "expected 5"),
        ("x, NVIDIA A100-SXM4-80GB, 535.104.05, 8.0, 81920\n", "index is not a number"),
        ("0, Tesla K80, 470.82.01, [N/A], 11441\n", "no compute capability"),
        ("0, NVIDIA A100-SXM4-80GB, 535.104.05, 80, 81920\n", "not a compute capability"),
        ("0, NVIDIA A100-SXM4-80GB, 535.104.05, 8.0, 81920 MiB\n", "memory.total is not MiB"),
        ("0, NVIDIA A100-SXM4-80GB, r535, 8.0, 81920\n", "not an NVIDIA driver version"),
        (
            "0, NVIDIA TITAN V, 570.86.15, 7.0, 12288\n1, NVIDIA TITAN V, 570.86.16, 7.0, 12288\n",
            "different drivers",
        ),
    ],
)
def test_nvidia_smi_bad_output(text: str, message: str) -> None:
    with pytest.raises(hp.ProbeParseError, match=message):
        hp.parse_nvidia_smi_csv(text)


# --- kernel module ------------------------------------------------------------------------

PROC_CASES = {
    "driver-version-x86_64-proprietary": ("535.104.05", False),
    "driver-version-x86_64-open": ("555.58.02", True),
    "driver-version-aarch64-proprietary": ("550.120", False),
    "driver-version-aarch64-open": ("550.144.03", True),
    "driver-version-jetson-open": ("540.4.0", True),
}


@pytest.mark.parametrize("name", sorted(PROC_CASES))
def test_proc_driver_version(name: str) -> None:
    version, is_open = PROC_CASES[name]
    assert hp.parse_proc_driver_version(data(f"proc/{name}")) == hp.KernelModule(version, is_open)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module\n",
    ],
)
def test_proc_driver_version_without_version(text: str) -> None:
    # The GCC line's "12.2.0" must never be taken for the driver.
    with pytest.raises(hp.ProbeParseError):
        hp.parse_proc_driver_version(text)


def test_sys_module_version() -> None:
    assert hp.parse_sys_module_version(data("proc/sys-module-nvidia-version")) == "535.104.05"
    with pytest.raises(hp.ProbeParseError):
        hp.parse_sys_module_version("")


# --- NVML values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12040, "12.4"), (12020, "12.2"), (11080, "11.8"), (13000, "13.0"), (12090, "12.9"), (10010, "10.1")],
)
def test_nvml_cuda_version(value: int, expected: str) -> None:
    assert hp.nvml_cuda_version(value) == expected


@pytest.mark.parametrize("value", [0, -1, 999, True, "12040"])
def test_nvml_cuda_version_rejects(value: object) -> None:
    with pytest.raises(hp.ProbeParseError):
        hp.nvml_cuda_version(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(85899345920, 81920), (85520809984, 81559), (25757220864, 24564), (0, 0), (1048575, 0)],
)
def test_bytes_to_mib(value: int, expected: int) -> None:
    assert hp.bytes_to_mib(value) == expected


def test_nvml_text_accepts_old_bytes_and_new_str() -> None:
    assert hp.nvml_text(b"NVIDIA A100-SXM4-80GB") == "NVIDIA A100-SXM4-80GB"
    assert hp.nvml_text("535.104.05") == "535.104.05"


# --- OS, libc, memory ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("os-release-ubuntu-22.04", "ubuntu 22.04"),
        ("os-release-rhel-9", "rhel 9.4"),
        ("os-release-alpine-3.20", "alpine 3.20.3"),
        ("os-release-arch", "arch"),
    ],
)
def test_linux_os_version(name: str, expected: str) -> None:
    assert hp.linux_os_version(data(f"os/{name}")) == expected


def test_os_release_quoting() -> None:
    fields = hp.parse_os_release('NAME="A \\"quoted\\" distro"\nID=\'x\'\n# comment\n\n')
    assert fields == {"NAME": 'A "quoted" distro', "ID": "x"}
    with pytest.raises(hp.ProbeParseError):
        hp.parse_os_release("this is not os-release\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(data("os/sw_vers-macos-14.5"), "14.5"), ("15.1.1\n", "15.1.1"), ("13.6.7", "13.6.7")],
)
def test_sw_vers(text: str, expected: str) -> None:
    assert hp.parse_sw_vers(text) == expected


def test_sw_vers_rejects_garbage() -> None:
    with pytest.raises(hp.ProbeParseError):
        hp.parse_sw_vers("sw_vers: command not found")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.22631", "10.0.22631"), ("Microsoft Windows [Version 10.0.22631.3447]", "10.0.22631")],
)
def test_windows_version(text: str, expected: str) -> None:
    assert hp.windows_os_version(text) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ldd-glibc-ubuntu", hp.Libc("glibc", "2.35")),
        ("ldd-glibc-rhel", hp.Libc("glibc", "2.34")),
        ("ldd-musl-alpine", hp.Libc("musl", "1.2.5")),
    ],
)
def test_ldd_version(name: str, expected: hp.Libc) -> None:
    assert hp.parse_ldd_version(data(f"os/{name}")) == expected


def test_ldd_version_rejects_other_text() -> None:
    with pytest.raises(hp.ProbeParseError):
        hp.parse_ldd_version("ldd: command not found")


def test_confstr_libc() -> None:
    assert hp.parse_confstr_libc("glibc 2.35") == hp.Libc("glibc", "2.35")
    with pytest.raises(hp.ProbeParseError):
        hp.parse_confstr_libc("musl")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/lib/ld-musl-x86_64.so.1", "musl"),
        ("/lib/ld-musl-aarch64.so.1", "musl"),
        ("/lib64/ld-linux-x86-64.so.2", "glibc"),
        ("/lib/ld-linux-aarch64.so.1", "glibc"),
        ("/usr/lib/dyld", None),
    ],
)
def test_libc_from_loader_path(path: str, expected: str | None) -> None:
    assert hp.libc_from_loader_path(path) == expected


def test_meminfo() -> None:
    assert hp.parse_meminfo(data("proc/meminfo")) == 64212
    with pytest.raises(hp.ProbeParseError):
        hp.parse_meminfo("MemFree: 1 kB\n")


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", ("linux", "x86_64")),
        ("Linux", "aarch64", ("linux", "aarch64")),
        ("Linux", "arm64", ("linux", "aarch64")),
        ("Darwin", "arm64", ("macos", "arm64")),
        ("Darwin", "x86_64", ("macos", "x86_64")),
        ("Windows", "AMD64", ("windows", "x86_64")),
        ("Windows", "ARM64", ("windows", "aarch64")),
    ],
)
def test_os_and_arch(system: str, machine: str, expected: tuple[str, str]) -> None:
    os_name = hp.normalize_os(system)
    assert (os_name, hp.normalize_arch(machine, os_name)) == expected


@pytest.mark.parametrize(
    ("system", "machine"), [("FreeBSD", "amd64"), ("Linux", "ppc64le"), ("Linux", "i686")]
)
def test_unsupported_os_or_arch(system: str, machine: str) -> None:
    with pytest.raises(hp.ProbeParseError):
        hp.normalize_arch(machine, hp.normalize_os(system))


def test_python_tag() -> None:
    assert hp.python_tag(3, 11) == "3.11"
    assert hp.python_tag(3, 13, free_threaded=True) == "3.13t"


# --- the host JSON reader (the parts this change touched) ---------------------------------


def test_gpu_memory_error_names_the_gpu() -> None:
    data = {"os": "linux", "arch": "x86_64", "gpus": [{"compute_capability": "8.6", "memory_mib": "24 GB"}]}
    with pytest.raises(HostFileError, match=r"\[gpus\[0\]\.memory_mib\]"):
        hf.host_from_mapping(data, "host.json")


def test_read_host_text_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HostFileError, match="host file not found"):
        hf.read_host_text(tmp_path / "nope.json")
