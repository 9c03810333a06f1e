"""Reading host JSON (a file, or an inline table): validated, spellings normalised at the edge,
every error naming the file, key and value."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from resolver import files
from resolver.errors import HostFileError, Location
from resolver.host import spellings
from resolver.host.gpunames import CapabilityError, GpuNames, parse_capability
from resolver.host.spellings import ARCH_NAMES, OS_NAMES

__all__ = ["ARCH_NAMES", "OS_NAMES"]
from resolver.host.model import (
    CUDA_API_RE,
    DEVICE_KEYS,
    DRIVER_RE,
    GFX_RE,
    GPU_KEYS,
    HOST_KEYS,
    LIBC_NAMES,
    LIMIT_KEYS,
    MIG_KEYS,
    VENDORS,
    VERSION_RE,
    ComputeCapability,
    CudaDevice,
    Gpu,
    Host,
    Limits,
    MigDevice,
)

# --- reading host files -------------------------------------------------------------------

_HOST_KEY_SET = frozenset(HOST_KEYS)
_GPU_KEY_SET = frozenset(GPU_KEYS)
# A fleet's host files spell few distinct Pythons: each text is parsed once
# (both values are immutable; a text that fails raises every time, as nothing is cached for it).
_python_version = functools.lru_cache(maxsize=256)(spellings.parse_python)


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


class GpuValues(NamedTuple):
    """A validated GPU entry: `Gpu`'s fields, in a plain tuple (a fleet has hundreds of
    thousands of GPUs, and a tuple costs a tenth of a frozen dataclass to make)."""

    gpu_index: int  # `index` (a tuple has an `index` method)
    name: str
    compute_capability: ComputeCapability | None
    memory_mib: int | None
    vendor: str
    gfx_target: str | None
    uuid: str | None
    mig: tuple[MigDevice, ...] | None

    @property
    def cc(self) -> ComputeCapability:
        return self.gpu().cc if self.compute_capability is None else self.compute_capability

    def gpu(self) -> Gpu:
        return Gpu(
            index=self.gpu_index,
            name=self.name,
            compute_capability=self.compute_capability,
            memory_mib=self.memory_mib,
            vendor=self.vendor,
            gfx_target=self.gfx_target,
            uuid=self.uuid,
            mig=self.mig,
        )


def _parse_gpu(item: Any, position: int, origin: str, names: GpuNames | None) -> GpuValues:
    key = f"gpus[{position}]"
    if not isinstance(item, Mapping):
        raise _fail(origin, key, "each GPU must be an object", item, f"keys: {', '.join(GPU_KEYS)}")
    if not _GPU_KEY_SET.issuperset(item):
        unknown = sorted(set(item) - _GPU_KEY_SET)
        raise _fail(
            origin, f"{key}.{unknown[0]}", "unknown GPU key", unknown[0], f"allowed: {', '.join(GPU_KEYS)}"
        )
    vendor_raw = item.get("vendor", "nvidia")
    vendor = vendor_raw.strip().lower() if isinstance(vendor_raw, str) else vendor_raw
    if vendor not in VENDORS:
        raise _fail(origin, f"{key}.vendor", "unknown GPU vendor", vendor_raw, f"one of {', '.join(VENDORS)}")
    cc, gfx = None, None
    if vendor == "nvidia":
        cc = _parse_cc(item, key, origin, names)
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
    return GpuValues(
        gpu_index=index,
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


def _parse_device(item: Any, key: str, origin: str, names: GpuNames | None) -> CudaDevice:
    data = _check_keys(item, key, DEVICE_KEYS, origin, "visible device")
    index = _opt_int(data, "index", origin, "0")
    gpu = _opt_int(data, "gpu", origin, "0")
    if index is None or gpu is None:
        raise _fail(origin, key, "a visible device needs 'index' and 'gpu'", item, '{"index": 0, "gpu": 1}')
    cc_text = data.get("compute_capability")
    try:
        if not isinstance(cc_text, str):
            raise CapabilityError("compute capability is not MAJOR.MINOR", 'e.g. "8.6"')
        cc = parse_capability(cc_text, names)
    except CapabilityError as exc:
        raise _fail(origin, f"{key}.compute_capability", exc.message, cc_text, exc.hint) from None
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


def _visibility_fields(data: Mapping[str, Any], origin: str, names: GpuNames | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cuda_visible_devices": _opt_str(data, "cuda_visible_devices", origin),
        "nvidia_visible_devices": _opt_str(data, "nvidia_visible_devices", origin),
    }
    devices = data.get("visible_devices")
    if devices is not None:
        if not isinstance(devices, list):
            raise _fail(origin, "visible_devices", "'visible_devices' must be a list", devices, "or omit it")
        fields["visible_devices"] = tuple(
            _parse_device(d, f"visible_devices[{i}]", origin, names) for i, d in enumerate(devices)
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


def _parse_cc(item: Mapping[str, Any], key: str, origin: str, names: GpuNames | None) -> ComputeCapability:
    """MAJOR.MINOR or a product name; with no capability at all, the GPU's `name` (what
    nvidia-smi prints) when it is a product the matrix lists."""
    cc_text = item.get("compute_capability")
    name = item.get("name")
    if cc_text is None and names is not None and isinstance(name, str) and name.strip():
        try:
            return names(name)
        except CapabilityError as exc:
            which = "fits more than one GPU" if exc.ambiguous else "is not a GPU the matrix lists"
            message = f"a GPU without compute_capability, and its name {which}"
            hint = f'{exc.hint}; or give its "compute_capability"'
            raise _fail(origin, f"{key}.name", message, name, hint) from None
    if not isinstance(cc_text, str):
        raise _fail(
            origin,
            f"{key}.compute_capability",
            'compute capability must be a string like "8.6"',
            cc_text,
            "nvidia-smi --query-gpu=compute_cap prints it",
        )
    try:
        return parse_capability(cc_text, names)
    except CapabilityError as exc:
        raise _fail(origin, f"{key}.compute_capability", exc.message, cc_text, exc.hint) from None


def parse_gfx_target(text: str) -> str:
    """`gfx942`, `GFX90A`, `gfx90a:sramecc+:xnack-` -> the bare lowercase target (`gfx90a`)."""
    bare = text.strip().lower().split(":", 1)[0]
    if not GFX_RE.fullmatch(bare):
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


class HostValues(NamedTuple):
    """A validated host: `Host`'s fields in a plain tuple, its GPUs as `GpuValues`. What grouping
    a fleet reads (`.host()` makes the Host, for the few members that stand for a class)."""

    os: str
    arch: str
    os_version: str | None
    libc: str | None
    libc_version: str | None
    python: str | None
    python_version: str | None
    nvidia_driver: str | None
    cuda_driver_api: str | None
    gpus: tuple[GpuValues, ...]
    rocm_version: str | None
    cpu_count: int | None
    memory_mib: int | None
    disk_free_mib: int | None
    sources: dict[str, str]
    cuda_visible_devices: str | None = None
    nvidia_visible_devices: str | None = None
    visible_devices: tuple[CudaDevice, ...] | None = None
    masked_gpus: tuple[int, ...] = ()
    limits: Limits | None = None

    def host(self) -> Host:
        fields = self._asdict()
        fields["gpus"] = tuple(gpu.gpu() for gpu in self.gpus)
        return Host(**fields)


def host_from_mapping(data: Any, origin: str = "<host>", gpu_names: GpuNames | None = None) -> Host:
    """Validate a decoded host JSON object (or an inline team-file host table). With `gpu_names`
    (`resolver.matrix.products.gpu_names`), a GPU may be given by its product name."""
    return host_values(data, origin, gpu_names).host()


def host_values(data: Any, origin: str = "<host>", gpu_names: GpuNames | None = None) -> HostValues:
    """What `host_from_mapping` validates, without making the objects; the same errors."""
    if not isinstance(data, Mapping):
        raise HostFileError(
            "a host file must hold one JSON object",
            location=Location(origin),
            value=type(data).__name__,
            hint="produce one with `stack-resolver detect --json > host.json`",
        )
    if not _HOST_KEY_SET.issuperset(data):
        unknown = sorted(set(data) - _HOST_KEY_SET)
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
    if libc_version is not None and not VERSION_RE.fullmatch(libc_version):
        raise _fail(origin, "libc_version", "libc version is not a version", libc_version, 'e.g. "2.35"')
    os_version = _opt_str(data, "os_version", origin)
    if os_name == "macos" and os_version is not None and not VERSION_RE.fullmatch(os_version):
        raise _fail(origin, "os_version", "macOS version is not a version", os_version, 'e.g. "14.5"')
    python_text = _opt_str(data, "python", origin)
    python = None
    if python_text is not None:
        try:
            python = _python_version(python_text)
        except ValueError:
            raise _fail(
                origin, "python", "not a Python 3 version", python_text, 'e.g. "3.11" or "3.11.9"'
            ) from None
    driver = _opt_str(data, "nvidia_driver", origin)
    if driver is not None and not DRIVER_RE.fullmatch(driver):
        raise _fail(origin, "nvidia_driver", "not an NVIDIA driver version", driver, 'e.g. "535.104.05"')
    cuda_api = _opt_str(data, "cuda_driver_api", origin)
    if cuda_api is not None and not CUDA_API_RE.fullmatch(cuda_api):
        raise _fail(origin, "cuda_driver_api", "CUDA driver API must be MAJOR.MINOR", cuda_api, 'e.g. "12.4"')
    rocm = _opt_str(data, "rocm_version", origin)
    if rocm is not None and not VERSION_RE.fullmatch(rocm.strip()):
        raise _fail(origin, "rocm_version", "ROCm version is not a version", rocm, 'e.g. "6.4.1"')
    gpus_raw = data.get("gpus")
    gpus_raw = [] if gpus_raw is None else gpus_raw
    if not isinstance(gpus_raw, list):
        raise _fail(origin, "gpus", "'gpus' must be a list", gpus_raw, "use [] for a CPU host")
    gpus = tuple(_parse_gpu(item, i, origin, gpu_names) for i, item in enumerate(gpus_raw))
    sources = data.get("sources")
    sources = {} if sources is None else sources
    if not isinstance(sources, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
    ):
        raise _fail(origin, "sources", "'sources' must map strings to strings", sources, "or omit it")
    return HostValues(
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
        **_visibility_fields(data, origin, gpu_names),
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


def parse_host_json(text: str, origin: str = "<host>", gpu_names: GpuNames | None = None) -> Host:
    data = files.parse_json(text, origin, "host file", error=HostFileError, hint=_PRODUCE_HINT)
    return host_from_mapping(data, origin, gpu_names)


def read_host_file(
    path: Path | str,
    *,
    missing_hint: str = "check the path given to --host",
    gpu_names: GpuNames | None = None,
) -> Host:
    return parse_host_json(read_host_text(path, missing_hint=missing_hint), str(path), gpu_names)


def read_host_values(path: Path | str, *, missing_hint: str, gpu_names: GpuNames | None = None) -> HostValues:
    """`read_host_file` without making the objects: the same checks, the same errors."""
    origin = str(path)
    text = read_host_text(path, missing_hint=missing_hint)
    data = files.parse_json(text, origin, "host file", error=HostFileError, hint=_PRODUCE_HINT)
    return host_values(data, origin, gpu_names)


def read_host_text(path: Path | str, *, missing_hint: str = "check the path given to --host") -> str:
    """A host file's text (UTF-8, or UTF-16 as PowerShell writes it), or a HostFileError naming it."""
    return files.read_text(path, "host file", error=HostFileError, hint=missing_hint)
