"""The host: what machine we resolve for, as frozen values. Reading host JSON is `hostfile.py`,
parsing probe output `parse.py`, touching the machine `probes.py`.

The host JSON (`stack-resolver detect --json`, `--host FILE`) is the one interchange format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resolver.host.spellings import ARCH_NAMES, OS_NAMES

__all__ = ["ARCH_NAMES", "OS_NAMES"]
LIBC_NAMES = ("glibc", "musl")

HOST_KEYS = (
    "os",
    "os_version",
    "arch",
    "libc",
    "libc_version",
    "python",
    "nvidia_driver",
    "cuda_driver_api",
    "rocm_version",
    "gpus",
    "cpu_count",
    "memory_mib",
    "disk_free_mib",
    "sources",
    # what CUDA sees (recorded by detection; absent in older host files)
    "cuda_visible_devices",
    "nvidia_visible_devices",
    "visible_devices",
    "masked_gpus",
    # the limits that apply to this process (cgroups, affinity)
    "limits",
)
GPU_KEYS = ("index", "name", "vendor", "compute_capability", "gfx_target", "memory_mib", "uuid", "mig")
# GPU vendors; an entry without "vendor" is NVIDIA (host files written before AMD and Intel GPUs).
VENDORS = ("nvidia", "amd", "intel")
GFX_RE = re.compile(r"gfx[0-9a-f]{3,4}", re.ASCII)
MIG_KEYS = ("uuid", "name", "memory_mib")
DEVICE_KEYS = ("index", "gpu", "name", "compute_capability", "memory_mib", "mig")
LIMIT_KEYS = ("cgroup", "memory_max_mib", "cpu_quota", "affinity_cpus", "machine_cpus")

# ASCII digits only, matched in full: `\d` also takes "٣" and `$` matches before a final newline,
# and neither would parse as a version later.
_CC_RE = re.compile(r"(\d{1,2})\.(\d)", re.ASCII)
DRIVER_RE = re.compile(r"\d+(\.\d+){0,2}", re.ASCII)
VERSION_RE = re.compile(r"\d+(\.\d+){0,3}", re.ASCII)
CUDA_API_RE = re.compile(r"\d+\.\d+", re.ASCII)


@dataclass(frozen=True, order=True)
class ComputeCapability:
    """A CUDA compute capability such as 8.6 (sm_86)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ComputeCapability:
        match = _CC_RE.fullmatch(text.strip())
        if not match:
            raise ValueError(f"not a compute capability: {text!r} (expected MAJOR.MINOR, e.g. 8.6)")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def sm(self) -> str:
        return f"sm_{self.major}{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True, order=True)
class DriverVersion:
    """An NVIDIA driver version: 470.82.01, 525.60.13, 580. Compared part by part."""

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> DriverVersion:
        text = text.strip()
        if not DRIVER_RE.fullmatch(text):
            raise ValueError(f"not an NVIDIA driver version: {text!r} (expected e.g. 535.104.05)")
        return cls(tuple(int(p) for p in text.split(".")))

    def __str__(self) -> str:
        # Keep the zero padding NVIDIA prints (525.60.02 not 525.60.2).
        head, *rest = self.parts
        return ".".join([str(head), *(f"{p:02d}" for p in rest)])


@dataclass(frozen=True)
class MigDevice:
    """A MIG instance (a slice of one GPU): CUDA sees it as a device of its parent's capability."""

    uuid: str  # "MIG-<uuid>", or "MIG-GPU-<uuid>/<gi>/<ci>" from R450 drivers
    name: str = ""  # the profile, e.g. "1g.10gb"
    memory_mib: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name, "memory_mib": self.memory_mib}


@dataclass(frozen=True)
class Gpu:
    """One GPU. NVIDIA GPUs carry a compute capability, AMD GPUs a gfx target (the ISA ROCm
    kernels are built for, e.g. gfx942); Intel GPUs carry neither."""

    index: int
    name: str
    compute_capability: ComputeCapability | None
    memory_mib: int | None = None
    vendor: str = "nvidia"
    gfx_target: str | None = None
    uuid: str | None = None  # "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
    # None: MIG mode off (or unknown); a tuple (maybe empty): MIG mode on, these instances exist
    mig: tuple[MigDevice, ...] | None = None

    @property
    def cc(self) -> ComputeCapability:
        """The compute capability of an NVIDIA GPU (callers select NVIDIA GPUs first)."""
        if self.compute_capability is None:
            raise ValueError(f"GPU {self.index} ({self.vendor}) has no compute capability")
        return self.compute_capability

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "name": self.name, "vendor": self.vendor}
        if self.vendor == "nvidia":
            out["compute_capability"] = str(self.compute_capability)
        if self.vendor == "amd":
            out["gfx_target"] = self.gfx_target
        out["memory_mib"] = self.memory_mib
        # Written only when known, so hosts without them read and write as before.
        if self.uuid is not None:
            out["uuid"] = self.uuid
        if self.mig is not None:
            out["mig"] = [m.to_json() for m in self.mig]
        return out


@dataclass(frozen=True)
class CudaDevice:
    """One device as CUDA numbers it (`cuda:0`, ...): a whole GPU or one MIG instance of it."""

    index: int  # the CUDA ordinal
    gpu: int  # the physical GPU's index (nvidia-smi's numbering)
    name: str
    compute_capability: ComputeCapability
    memory_mib: int | None = None
    mig: str | None = None  # the MIG instance's UUID

    @property
    def label(self) -> str:
        """ "GPU 1 (NVIDIA A100-SXM4-80GB)", or "MIG 1g.10gb on GPU 0 (NVIDIA A100...)"."""
        if self.mig is not None:
            return f"{self.name} on GPU {self.gpu}"
        return f"GPU {self.gpu} ({self.name or 'NVIDIA GPU'})"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "gpu": self.gpu,
            "name": self.name,
            "compute_capability": str(self.compute_capability),
            "memory_mib": self.memory_mib,
            "mig": self.mig,
        }


def default_cuda_devices(gpus: tuple[Gpu, ...]) -> tuple[CudaDevice, ...]:
    """What CUDA enumerates with no CUDA_VISIBLE_DEVICES: every GPU not in MIG mode, and at most
    one MIG instance in all (a CUDA process enumerates a single MIG device)."""
    devices: list[CudaDevice] = []
    mig_taken = False
    for gpu in gpus:
        if gpu.vendor != "nvidia":  # CUDA enumerates NVIDIA GPUs only
            continue
        if gpu.mig is None:
            devices.append(cuda_device(len(devices), gpu))
        elif gpu.mig and not mig_taken:
            devices.append(cuda_device(len(devices), gpu, gpu.mig[0]))
            mig_taken = True
    return tuple(devices)


def cuda_device(ordinal: int, gpu: Gpu, mig: MigDevice | None = None) -> CudaDevice:
    if mig is None:
        return CudaDevice(ordinal, gpu.index, gpu.name, gpu.cc, gpu.memory_mib)
    name = f"MIG {mig.name}" if mig.name else "MIG instance"
    return CudaDevice(ordinal, gpu.index, name, gpu.cc, mig.memory_mib, mig.uuid)


@dataclass(frozen=True)
class Limits:
    """The limits that apply to this process, beside the machine's totals (`Host.memory_mib`)."""

    cgroup: str | None = None  # "v1" | "v2" | None (no cgroup limits found)
    memory_max_mib: int | None = None  # cgroup memory.max / memory.limit_in_bytes; None: no limit
    cpu_quota: float | None = None  # CPUs the cgroup's cpu.max / CFS quota allows; None: no quota
    affinity_cpus: int | None = None  # CPUs in the affinity mask (os.sched_getaffinity)
    machine_cpus: int | None = None  # the machine's CPUs (os.cpu_count)

    def to_json(self) -> dict[str, Any]:
        return {
            "cgroup": self.cgroup,
            "memory_max_mib": self.memory_max_mib,
            "cpu_quota": self.cpu_quota,
            "affinity_cpus": self.affinity_cpus,
            "machine_cpus": self.machine_cpus,
        }


@dataclass(frozen=True)
class Host:
    """A machine, detected or read from a host file. Only `os` and `arch` are required."""

    os: str
    arch: str
    os_version: str | None = None
    libc: str | None = None
    libc_version: str | None = None
    python: str | None = None  # the series wheels are built for: "3.11", "3.13t"
    nvidia_driver: str | None = None
    cuda_driver_api: str | None = None
    gpus: tuple[Gpu, ...] = ()
    # the host's ROCm release (e.g. "6.4.1"), where ROCm is installed
    rocm_version: str | None = None
    cpu_count: int | None = None
    memory_mib: int | None = None
    disk_free_mib: int | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    # The Python version as given when it says more than the series ("3.11.9"); kept in the record.
    python_version: str | None = None
    # The process's view of the GPUs, recorded by detection (None: not recorded, e.g. an older
    # host file; then every GPU counts as visible). The variables are kept as they were set.
    cuda_visible_devices: str | None = None
    nvidia_visible_devices: str | None = None
    visible_devices: tuple[CudaDevice, ...] | None = None
    masked_gpus: tuple[int, ...] = ()
    limits: Limits | None = None

    @property
    def cuda_devices(self) -> tuple[CudaDevice, ...]:
        """The devices CUDA will enumerate in this process, in CUDA's order."""
        if self.visible_devices is not None:
            return self.visible_devices
        return default_cuda_devices(self.gpus)

    @property
    def effective_memory_mib(self) -> int | None:
        """RAM this process may use: the machine's, or a lower cgroup limit."""
        limit = self.limits.memory_max_mib if self.limits else None
        if limit is None or self.memory_mib is None:
            return limit if self.memory_mib is None else self.memory_mib
        return min(limit, self.memory_mib)

    @property
    def effective_cpus(self) -> float | None:
        """CPUs this process may use: the affinity mask (`cpu_count`), or a lower cgroup quota."""
        quota = self.limits.cpu_quota if self.limits else None
        if quota is None or self.cpu_count is None:
            return quota if self.cpu_count is None else self.cpu_count
        return min(quota, float(self.cpu_count))

    @property
    def platform(self) -> str:
        """The matrix's platform key: `linux-x86_64`, `macos-arm64`, `windows-x86_64`."""
        return f"{self.os}-{self.arch}"

    @property
    def driver(self) -> DriverVersion | None:
        return DriverVersion.parse(self.nvidia_driver) if self.nvidia_driver else None

    @property
    def has_nvidia_gpu(self) -> bool:
        return bool(self.nvidia_gpus) or self.nvidia_driver is not None

    @property
    def nvidia_gpus(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "nvidia")

    @property
    def amd_gpus(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "amd")

    @property
    def intel_gpus(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "intel")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "os": self.os,
            "os_version": self.os_version,
            "arch": self.arch,
            "libc": self.libc,
            "libc_version": self.libc_version,
            "python": self.python_version or self.python,
            "nvidia_driver": self.nvidia_driver,
            "cuda_driver_api": self.cuda_driver_api,
            "rocm_version": self.rocm_version,
            "gpus": [gpu.to_json() for gpu in self.gpus],
            "cpu_count": self.cpu_count,
            "memory_mib": self.memory_mib,
            "disk_free_mib": self.disk_free_mib,
            "sources": dict(sorted(self.sources.items())),
        }
        # Optional blocks, written only when recorded: an older host reads and writes unchanged.
        if self.cuda_visible_devices is not None:
            data["cuda_visible_devices"] = self.cuda_visible_devices
        if self.nvidia_visible_devices is not None:
            data["nvidia_visible_devices"] = self.nvidia_visible_devices
        if self.visible_devices is not None:
            data["visible_devices"] = [d.to_json() for d in self.visible_devices]
            data["masked_gpus"] = list(self.masked_gpus)
        if self.limits is not None:
            data["limits"] = self.limits.to_json()
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"
