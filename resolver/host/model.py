"""The host: what machine we resolve for. Values and pure parsers only; nothing here touches the
machine (the probes live in `probes.py`).

The host JSON (`stack-resolver detect --json`, `--host FILE`) is the one interchange format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resolver import files
from resolver.errors import HostFileError, Location
from resolver.host import spellings
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
_GFX_RE = re.compile(r"gfx[0-9a-f]{3,4}", re.ASCII)
MIG_KEYS = ("uuid", "name", "memory_mib")
DEVICE_KEYS = ("index", "gpu", "name", "compute_capability", "memory_mib", "mig")
LIMIT_KEYS = ("cgroup", "memory_max_mib", "cpu_quota", "affinity_cpus", "machine_cpus")

# ASCII digits only, matched in full: `\d` also takes "٣" and `$` matches before a final newline,
# and neither would parse as a version later.
_CC_RE = re.compile(r"(\d{1,2})\.(\d)", re.ASCII)
_DRIVER_RE = re.compile(r"\d+(\.\d+){0,2}", re.ASCII)
_VERSION_RE = re.compile(r"\d+(\.\d+){0,3}", re.ASCII)
_CUDA_API_RE = re.compile(r"\d+\.\d+", re.ASCII)


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
        if not _DRIVER_RE.fullmatch(text):
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


# --- reading host files -------------------------------------------------------------------


def _fail(origin: str, key: str, message: str, value: object, hint: str) -> HostFileError:
    return HostFileError(message, location=Location(origin, key=key), value=value, hint=hint)


def _opt_str(data: Mapping[str, Any], key: str, origin: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _fail(origin, key, f"'{key}' must be a string or null", value, "quote the value")


def _opt_int(data: Mapping[str, Any], key: str, origin: str, example: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(origin, key, f"'{key}' must be a non-negative integer", value, f"e.g. {example}")
    return value


def _parse_gpu(item: Any, position: int, origin: str) -> Gpu:
    key = f"gpus[{position}]"
    if not isinstance(item, Mapping):
        raise _fail(origin, key, "each GPU must be an object", item, f"keys: {', '.join(GPU_KEYS)}")
    unknown = sorted(set(item) - set(GPU_KEYS))
    if unknown:
        raise _fail(
            origin, f"{key}.{unknown[0]}", "unknown GPU key", unknown[0], f"allowed: {', '.join(GPU_KEYS)}"
        )
    vendor_raw = item.get("vendor", "nvidia")
    vendor = vendor_raw.strip().lower() if isinstance(vendor_raw, str) else vendor_raw
    if vendor not in VENDORS:
        raise _fail(origin, f"{key}.vendor", "unknown GPU vendor", vendor_raw, f"one of {', '.join(VENDORS)}")
    cc, gfx = None, None
    if vendor == "nvidia":
        cc = _parse_cc(item, key, origin)
        if item.get("gfx_target") is not None:
            raise _fail(
                origin, f"{key}.gfx_target", "an NVIDIA GPU has no gfx target", item["gfx_target"], "drop it"
            )
    else:
        if item.get("compute_capability") is not None:
            raise _fail(
                origin,
                f"{key}.compute_capability",
                f"an {vendor.upper()} GPU has no CUDA compute capability",
                item["compute_capability"],
                'drop it, or set "vendor": "nvidia"',
            )
        gfx = _parse_gfx(item, key, origin) if vendor == "amd" else None
        if vendor == "intel" and item.get("gfx_target") is not None:
            raise _fail(
                origin, f"{key}.gfx_target", "an Intel GPU has no gfx target", item["gfx_target"], "drop it"
            )
    index = item.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise _fail(origin, f"{key}.index", "GPU index must be a non-negative integer", index, "e.g. 0")
    name = item.get("name", "")
    if not isinstance(name, str):
        raise _fail(origin, f"{key}.name", "GPU name must be a string", name, 'e.g. "NVIDIA A100"')
    memory = item.get("memory_mib")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory < 0):
        # Name the GPU in the key: "gpus[1].memory_mib", not a bare "memory_mib".
        raise _fail(
            origin,
            f"{key}.memory_mib",
            "GPU memory must be a non-negative integer (MiB)",
            memory,
            "e.g. 81920",
        )
    uuid = item.get("uuid")
    if uuid is not None and not isinstance(uuid, str):
        raise _fail(origin, f"{key}.uuid", "GPU UUID must be a string", uuid, 'e.g. "GPU-8932f937-..."')
    mig_raw = item.get("mig")
    mig: tuple[MigDevice, ...] | None = None
    if mig_raw is not None:
        if not isinstance(mig_raw, list):
            raise _fail(origin, f"{key}.mig", "'mig' must be a list of MIG instances", mig_raw, "or omit it")
        mig = tuple(_parse_mig(m, f"{key}.mig[{i}]", origin) for i, m in enumerate(mig_raw))
    return Gpu(
        index=index,
        name=name,
        compute_capability=cc,
        memory_mib=memory,
        vendor=vendor,
        gfx_target=gfx,
        uuid=uuid,
        mig=mig,
    )


def _check_keys(item: Any, key: str, allowed: tuple[str, ...], origin: str, what: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise _fail(origin, key, f"each {what} must be an object", item, f"keys: {', '.join(allowed)}")
    unknown = sorted(set(item) - set(allowed))
    if unknown:
        raise _fail(
            origin, f"{key}.{unknown[0]}", f"unknown {what} key", unknown[0], f"allowed: {', '.join(allowed)}"
        )
    return item


def _parse_mig(item: Any, key: str, origin: str) -> MigDevice:
    data = _check_keys(item, key, MIG_KEYS, origin, "MIG instance")
    uuid = data.get("uuid")
    if not isinstance(uuid, str) or not uuid.startswith("MIG-"):
        raise _fail(origin, f"{key}.uuid", "a MIG instance needs its UUID", uuid, 'e.g. "MIG-c6d4f1ef-..."')
    name = _opt_str(data, "name", origin) or ""
    return MigDevice(uuid=uuid, name=name, memory_mib=_opt_int(data, "memory_mib", origin, "9856"))


def _parse_device(item: Any, key: str, origin: str) -> CudaDevice:
    data = _check_keys(item, key, DEVICE_KEYS, origin, "visible device")
    index = _opt_int(data, "index", origin, "0")
    gpu = _opt_int(data, "gpu", origin, "0")
    if index is None or gpu is None:
        raise _fail(origin, key, "a visible device needs 'index' and 'gpu'", item, '{"index": 0, "gpu": 1}')
    try:
        cc = ComputeCapability.parse(str(data.get("compute_capability")))
    except ValueError:
        raise _fail(
            origin, f"{key}.compute_capability", "compute capability is not MAJOR.MINOR", item, 'e.g. "8.6"'
        ) from None
    return CudaDevice(
        index=index,
        gpu=gpu,
        name=_opt_str(data, "name", origin) or "",
        compute_capability=cc,
        memory_mib=_opt_int(data, "memory_mib", origin, "81920"),
        mig=_opt_str(data, "mig", origin),
    )


def _parse_limits(item: Any, origin: str) -> Limits:
    data = _check_keys(item, "limits", LIMIT_KEYS, origin, "limits")
    cgroup = _opt_str(data, "cgroup", origin)
    if cgroup not in (None, "v1", "v2"):
        raise _fail(origin, "limits.cgroup", "cgroup must be v1, v2 or null", cgroup, '"v2"')
    quota = data.get("cpu_quota")
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, (int, float)) or quota <= 0):
        raise _fail(origin, "limits.cpu_quota", "CPU quota must be a positive number", quota, "e.g. 2.5")
    return Limits(
        cgroup=cgroup,
        memory_max_mib=_opt_int(data, "memory_max_mib", origin, "16384"),
        cpu_quota=None if quota is None else float(quota),
        affinity_cpus=_opt_int(data, "affinity_cpus", origin, "8"),
        machine_cpus=_opt_int(data, "machine_cpus", origin, "64"),
    )


def _visibility_fields(data: Mapping[str, Any], origin: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cuda_visible_devices": _opt_str(data, "cuda_visible_devices", origin),
        "nvidia_visible_devices": _opt_str(data, "nvidia_visible_devices", origin),
    }
    devices = data.get("visible_devices")
    if devices is not None:
        if not isinstance(devices, list):
            raise _fail(origin, "visible_devices", "'visible_devices' must be a list", devices, "or omit it")
        fields["visible_devices"] = tuple(
            _parse_device(d, f"visible_devices[{i}]", origin) for i, d in enumerate(devices)
        )
    masked = data.get("masked_gpus") or []
    if not isinstance(masked, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in masked
    ):
        raise _fail(origin, "masked_gpus", "'masked_gpus' must list GPU indices", masked, "e.g. [0, 2]")
    fields["masked_gpus"] = tuple(masked)
    if data.get("limits") is not None:
        fields["limits"] = _parse_limits(data["limits"], origin)
    return fields


def _parse_cc(item: Mapping[str, Any], key: str, origin: str) -> ComputeCapability:
    cc_text = item.get("compute_capability")
    if not isinstance(cc_text, str):
        raise _fail(
            origin,
            f"{key}.compute_capability",
            'compute capability must be a string like "8.6"',
            cc_text,
            "nvidia-smi --query-gpu=compute_cap prints it",
        )
    try:
        return ComputeCapability.parse(cc_text)
    except ValueError:
        raise _fail(
            origin,
            f"{key}.compute_capability",
            "compute capability is not MAJOR.MINOR",
            cc_text,
            'write it as "8.6", not "sm_86" or "86"',
        ) from None


def parse_gfx_target(text: str) -> str:
    """`gfx942`, `GFX90A`, `gfx90a:sramecc+:xnack-` -> the bare lowercase target (`gfx90a`)."""
    bare = text.strip().lower().split(":", 1)[0]
    if not _GFX_RE.fullmatch(bare):
        raise ValueError(f"not a gfx target: {text!r} (expected e.g. gfx942)")
    return bare


def _parse_gfx(item: Mapping[str, Any], key: str, origin: str) -> str:
    text = item.get("gfx_target")
    hint = 'rocminfo or amd-smi prints it, e.g. "gfx942"'
    if not isinstance(text, str):
        raise _fail(origin, f"{key}.gfx_target", "an AMD GPU needs a gfx target string", text, hint)
    try:
        return parse_gfx_target(text)
    except ValueError:
        raise _fail(origin, f"{key}.gfx_target", "not a gfx target", text, hint) from None


def host_from_mapping(data: Any, origin: str = "<host>") -> Host:
    """Validate a decoded host JSON object (or an inline team-file host table)."""
    if not isinstance(data, Mapping):
        raise HostFileError(
            "a host file must hold one JSON object",
            location=Location(origin),
            value=type(data).__name__,
            hint="produce one with `stack-resolver detect --json > host.json`",
        )
    unknown = sorted(set(data) - set(HOST_KEYS))
    if unknown:
        raise _fail(origin, unknown[0], "unknown host key", unknown[0], f"allowed: {', '.join(HOST_KEYS)}")
    for required in ("os", "arch"):
        if required not in data:
            raise _fail(origin, required, f"missing required key '{required}'", None, _REQUIRED_HINT)
    os_name = _spelled(
        origin, "os", data["os"], spellings.normalize_os, "unknown OS", f"one of {', '.join(OS_NAMES)}"
    )
    arch = _spelled(
        origin,
        "arch",
        data["arch"],
        lambda text: spellings.normalize_arch(text, os_name),
        "unknown CPU architecture",
        f"one of {', '.join(ARCH_NAMES)}",
    )
    libc = _opt_str(data, "libc", origin)
    if libc is not None and libc not in LIBC_NAMES:
        raise _fail(origin, "libc", "unknown libc", libc, f"one of {', '.join(LIBC_NAMES)}")
    libc_version = _opt_str(data, "libc_version", origin)
    if libc_version is not None and not _VERSION_RE.fullmatch(libc_version):
        raise _fail(origin, "libc_version", "libc version is not a version", libc_version, 'e.g. "2.35"')
    os_version = _opt_str(data, "os_version", origin)
    if os_name == "macos" and os_version is not None and not _VERSION_RE.fullmatch(os_version):
        raise _fail(origin, "os_version", "macOS version is not a version", os_version, 'e.g. "14.5"')
    python_text = _opt_str(data, "python", origin)
    python = None
    if python_text is not None:
        try:
            python = spellings.parse_python(python_text)
        except ValueError:
            raise _fail(
                origin, "python", "not a Python 3 version", python_text, 'e.g. "3.11" or "3.11.9"'
            ) from None
    driver = _opt_str(data, "nvidia_driver", origin)
    if driver is not None and not _DRIVER_RE.fullmatch(driver):
        raise _fail(origin, "nvidia_driver", "not an NVIDIA driver version", driver, 'e.g. "535.104.05"')
    cuda_api = _opt_str(data, "cuda_driver_api", origin)
    if cuda_api is not None and not _CUDA_API_RE.fullmatch(cuda_api):
        raise _fail(origin, "cuda_driver_api", "CUDA driver API must be MAJOR.MINOR", cuda_api, 'e.g. "12.4"')
    rocm = _opt_str(data, "rocm_version", origin)
    if rocm is not None and not _VERSION_RE.fullmatch(rocm.strip()):
        raise _fail(origin, "rocm_version", "ROCm version is not a version", rocm, 'e.g. "6.4.1"')
    gpus_raw = data.get("gpus")
    gpus_raw = [] if gpus_raw is None else gpus_raw
    if not isinstance(gpus_raw, list):
        raise _fail(origin, "gpus", "'gpus' must be a list", gpus_raw, "use [] for a CPU host")
    gpus = tuple(_parse_gpu(item, i, origin) for i, item in enumerate(gpus_raw))
    sources = data.get("sources")
    sources = {} if sources is None else sources
    if not isinstance(sources, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
    ):
        raise _fail(origin, "sources", "'sources' must map strings to strings", sources, "or omit it")
    return Host(
        os=os_name,
        arch=arch,
        os_version=os_version,
        libc=libc,
        libc_version=libc_version,
        python=python.series if python else None,
        python_version=python.full if python and python.full != python.series else None,
        nvidia_driver=driver,
        cuda_driver_api=cuda_api,
        gpus=gpus,
        rocm_version=rocm.strip() if rocm is not None else None,
        cpu_count=_opt_int(data, "cpu_count", origin, '"cpu_count": 16'),
        memory_mib=_opt_int(data, "memory_mib", origin, '"memory_mib": 65536 (MiB)'),
        disk_free_mib=_opt_int(data, "disk_free_mib", origin, '"disk_free_mib": 512000 (MiB)'),
        sources=dict(sources),
        **_visibility_fields(data, origin),
    )


_REQUIRED_HINT = 'a host file needs at least "os" and "arch"'
_PRODUCE_HINT = "produce one with `stack-resolver detect --json > host.json`"


def _spelled(origin: str, key: str, value: Any, normalize: Any, message: str, hint: str) -> str:
    """A required string field in any spelling `normalize` accepts, in its one written form."""
    if not isinstance(value, str):
        raise _fail(origin, key, f"'{key}' must be a string", value, hint)
    try:
        result: str = normalize(value)
    except ValueError:
        raise _fail(origin, key, message, value, hint) from None
    return result


def parse_host_json(text: str, origin: str = "<host>") -> Host:
    data = files.parse_json(text, origin, "host file", error=HostFileError, hint=_PRODUCE_HINT)
    return host_from_mapping(data, origin)


def read_host_file(path: Path, *, missing_hint: str = "check the path given to --host") -> Host:
    return parse_host_json(read_host_text(path, missing_hint=missing_hint), str(path))


def read_host_text(path: Path, *, missing_hint: str = "check the path given to --host") -> str:
    """A host file's text (UTF-8, or UTF-16 as PowerShell writes it), or a HostFileError naming it."""
    return files.read_text(path, "host file", error=HostFileError, hint=missing_hint)


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
    if not _DRIVER_RE.fullmatch(version):
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
    if not _VERSION_RE.fullmatch(version):
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
