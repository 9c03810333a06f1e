"""Pure parsers of what the probes read (nvidia-smi, /proc, /sys, os-release, ldd, sw_vers):
text in, values out; nothing here touches the machine."""

from __future__ import annotations

import re
from dataclasses import dataclass

from resolver.host import spellings
from resolver.host.spellings import ARCH_NAMES, OS_NAMES

__all__ = ["ARCH_NAMES", "OS_NAMES"]
from resolver.host.model import (
    DRIVER_RE,
    VERSION_RE,
    ComputeCapability,
    DriverVersion,
    Gpu,
    MigDevice,
)

# --- pure parsers for probe output ---------------------------------------------------------
#
# Each takes the exact text a source prints (or the value a library returns) and either returns
# a value or raises ProbeParseError. The probes (probes.py) turn that error into a warning naming
# the source: a present-but-broken source never crashes detection.


class ProbeParseError(ValueError):
    """A probe's output is present but not in the expected shape."""


NVIDIA_SMI_QUERY = "index,name,driver_version,compute_cap,memory.total"
NVIDIA_SMI_ARGS = (f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits")

# nvidia-smi prints these in place of a value it cannot read (GH200 memory.total, say).
_SMI_MISSING = frozenset({"[N/A]", "N/A", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]"})


@dataclass(frozen=True)
class NvidiaSmiReport:
    driver: str | None
    gpus: tuple[Gpu, ...]


def parse_nvidia_smi_csv(text: str) -> NvidiaSmiReport:
    """Parse `nvidia-smi --query-gpu=index,name,driver_version,compute_cap,memory.total
    --format=csv,noheader,nounits`: one `0, NVIDIA A100-SXM4-80GB, 535.104.05, 8.0, 81920` a GPU.
    """
    gpus: list[Gpu] = []
    drivers: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5:
            raise ProbeParseError(f"line {number}: expected 5 comma-separated fields, got {line!r}")
        index_text, name, driver_text, cc_text, memory_text = fields
        if not index_text.isdigit():
            raise ProbeParseError(f"line {number}: GPU index is not a number: {index_text!r}")
        if cc_text in _SMI_MISSING:
            raise ProbeParseError(f"line {number}: no compute capability for GPU {index_text} ({name})")
        try:
            cc = ComputeCapability.parse(cc_text)
            DriverVersion.parse(driver_text)
        except ValueError as exc:
            raise ProbeParseError(f"line {number}: {exc}") from None
        memory: int | None = None
        if memory_text not in _SMI_MISSING:
            if not memory_text.isdigit():
                raise ProbeParseError(f"line {number}: memory.total is not MiB: {memory_text!r}")
            memory = int(memory_text)
        drivers.add(driver_text)
        gpus.append(Gpu(index=int(index_text), name=name, compute_capability=cc, memory_mib=memory))
    if len(drivers) > 1:
        raise ProbeParseError(f"GPUs report different drivers: {', '.join(sorted(drivers))}")
    return NvidiaSmiReport(driver=drivers.pop() if drivers else None, gpus=tuple(gpus))


# `nvidia-smi -L`: "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5c89852c-...)", then, for a GPU in MIG
# mode, one "  MIG 1g.5gb     Device  0: (UUID: MIG-c6d4f1ef-...)" line per instance (R450 drivers
# print "MIG-GPU-<uuid>/<gi>/<ci>").
NVIDIA_SMI_LIST_ARGS = ("-L",)
_SMI_GPU_LINE = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$")
_SMI_MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+\d+: \(UUID: (MIG-[0-9A-Za-z/-]+)\)\s*$")


@dataclass(frozen=True)
class SmiListedGpu:
    index: int
    uuid: str
    mig: tuple[MigDevice, ...] | None  # None: no MIG lines under this GPU


def parse_nvidia_smi_list(text: str) -> tuple[SmiListedGpu, ...]:
    """`nvidia-smi -L`: each GPU's UUID and MIG instances. Lines of any other shape are skipped."""
    listed: list[SmiListedGpu] = []
    for line in text.splitlines():
        if gpu := _SMI_GPU_LINE.match(line):
            listed.append(SmiListedGpu(int(gpu.group(1)), gpu.group(3), None))
        elif (mig := _SMI_MIG_LINE.match(line)) and listed:
            last = listed[-1]
            instance = MigDevice(uuid=mig.group(2), name=mig.group(1))
            listed[-1] = SmiListedGpu(last.index, last.uuid, (*(last.mig or ()), instance))
    return tuple(listed)


# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023"
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (...)  ..."
# The version is the first dotted number after the banner; "x86_64" has no dot, so it never matches.
_NVRM_RE = re.compile(r"^NVRM version:(?P<banner>.*?)\s(?P<version>\d+\.\d+(?:\.\d+)?)(?=\s|$)", re.M)


@dataclass(frozen=True)
class KernelModule:
    """What `/proc/driver/nvidia/version` says: the driver version and which kernel module."""

    version: str
    open: bool


def parse_proc_driver_version(text: str) -> KernelModule:
    match = _NVRM_RE.search(text)
    if not match:
        raise ProbeParseError("no 'NVRM version: ... <version>' line")
    return KernelModule(version=match.group("version"), open=" Open " in f"{match.group('banner')} ")


def parse_sys_module_version(text: str) -> str:
    """`/sys/module/nvidia/version` holds just the version: `535.104.05`."""
    version = text.strip()
    if not DRIVER_RE.fullmatch(version):
        raise ProbeParseError(f"not an NVIDIA driver version: {version!r}")
    return version


def nvml_text(value: str | bytes) -> str:
    """nvidia-ml-py < 11.515 returned bytes, newer ones str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def nvml_cuda_version(value: int) -> str:
    """`nvmlSystemGetCudaDriverVersion()` encodes 12.4 as 12040 (1000 * major + 10 * minor)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1000:
        raise ProbeParseError(f"not an NVML CUDA driver version: {value!r}")
    return f"{value // 1000}.{value % 1000 // 10}"


def bytes_to_mib(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProbeParseError(f"not a byte count: {value!r}")
    return value // (1024 * 1024)


def parse_meminfo(text: str) -> int:
    """MemTotal of `/proc/meminfo` (`MemTotal:       65753684 kB`), in MiB."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB\s*$", text, re.M)
    if not match:
        raise ProbeParseError("no 'MemTotal: N kB' line")
    return int(match.group(1)) // 1024


def _unquote_os_release(value: str) -> str:
    # os-release(5): values are shell-quoted; only \ " $ ` and \\ escapes are defined.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return re.sub(r"\\([\\\"$`])", r"\1", value)


def parse_os_release(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.match(r"^[A-Z][A-Z0-9_]*$", key):
            raise ProbeParseError(f"not a KEY=value line: {line!r}")
        fields[key] = _unquote_os_release(value)
    return fields


def linux_os_version(text: str) -> str:
    """`/etc/os-release` -> "ubuntu 22.04", "debian 12", "alpine 3.20.3"; "arch" when rolling."""
    fields = parse_os_release(text)
    distro = fields.get("ID", "linux").lower()
    version = fields.get("VERSION_ID")
    return f"{distro} {version}" if version else distro


def parse_sw_vers(text: str) -> str:
    """macOS `sw_vers` (`ProductVersion:\t14.5`) or `sw_vers -productVersion` (`14.5`)."""
    match = re.search(r"^ProductVersion:\s*(\S+)\s*$", text, re.M)
    version = match.group(1) if match else text.strip()
    if not VERSION_RE.fullmatch(version):
        raise ProbeParseError(f"no macOS ProductVersion in {text.strip()[:80]!r}")
    return version


def windows_os_version(text: str) -> str:
    """`platform.version()` (`10.0.22631`) or `ver` (`Microsoft Windows [Version 10.0.22631.3447]`)."""
    match = re.search(r"(\d+\.\d+\.\d+)", text)
    if not match:
        raise ProbeParseError(f"no Windows version in {text.strip()[:80]!r}")
    return match.group(1)


@dataclass(frozen=True)
class Libc:
    name: str
    version: str | None


def parse_confstr_libc(text: str) -> Libc:
    """`os.confstr("CS_GNU_LIBC_VERSION")` -> "glibc 2.35"."""
    match = re.match(r"^glibc (\d+\.\d+)", text.strip())
    if not match:
        raise ProbeParseError(f"not a glibc version string: {text!r}")
    return Libc("glibc", match.group(1))


def parse_ldd_version(text: str) -> Libc:
    """`ldd --version` on glibc (`ldd (Ubuntu GLIBC 2.35-0ubuntu3.6) 2.35`) or musl, whose ldd is
    the loader and prints `musl libc (x86_64)` / `Version 1.2.4` on stderr."""
    if re.search(r"^musl libc\b", text, re.M):
        match = re.search(r"^Version\s+(\d+\.\d+(?:\.\d+)?)", text, re.M)
        return Libc("musl", match.group(1) if match else None)
    first = text.strip().splitlines()[0] if text.strip() else ""
    match = re.search(r"(?:GLIBC|GNU libc).*?\s(\d+\.\d+)\s*$", first)
    if not match:
        raise ProbeParseError(f"neither glibc nor musl: {first[:80]!r}")
    return Libc("glibc", match.group(1))


def libc_from_loader_path(path: str) -> str | None:
    """The dynamic loader names the libc: /lib/ld-musl-x86_64.so.1, /lib64/ld-linux-x86-64.so.2."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith("ld-musl-"):
        return "musl"
    if name.startswith("ld-linux"):
        return "glibc"
    return None


def normalize_os(system: str) -> str:
    """`platform.system()` -> one of OS_NAMES (resolver/host/spellings.py)."""
    try:
        return spellings.normalize_os(system)
    except ValueError:
        raise ProbeParseError(f"unsupported operating system: {system!r}") from None


def normalize_arch(machine: str, os_name: str) -> str:
    """`platform.machine()` -> one of ARCH_NAMES (resolver/host/spellings.py)."""
    try:
        return spellings.normalize_arch(machine, os_name)
    except ValueError:
        raise ProbeParseError(f"unsupported CPU architecture: {machine!r}") from None


def python_tag(major: int, minor: int, free_threaded: bool = False) -> str:
    """ "3.11", or "3.13t" for a free-threaded build (its wheels carry a different ABI tag)."""
    return f"{major}.{minor}{'t' if free_threaded else ''}"
