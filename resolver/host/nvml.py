"""The NVML step of the NVIDIA probe chain (resolver/host/probes.py): the driver, the CUDA driver
API and every GPU (name, compute capability, memory, UUID, MIG instances) from nvidia-ml-py's
`pynvml`. Absent NVML (no module, no libnvidia-ml) moves on silently; a broken one warns."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from resolver.host import model as h
from resolver.host import parse as hp


class Collector(Protocol):
    """What the probes fill in (resolver/host/probes.py `_Collector`)."""

    def missing(self, *keys: str) -> bool: ...

    def put(self, key: str, value: Any, source: str) -> None: ...

    def warn(self, source: str, message: str) -> None: ...


def probe_nvml(load_nvml: Callable[[], Any], out: Collector) -> None:
    """The driver, CUDA driver API and GPUs from NVML, where each is still missing."""
    source = "nvml"
    try:
        nvml = load_nvml()
    except Exception as exc:  # a broken install can fail in arbitrary ways on import
        out.warn(source, f"cannot load pynvml: {exc}")
        return
    if nvml is None:
        return
    try:
        nvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError and its generated subclasses
        # No libnvidia-ml.so: NVML is absent (a CPU host with nvidia-ml-py installed), not broken.
        if type(exc).__name__ == "NVMLError_LibraryNotFound":
            return
        out.warn(source, f"nvmlInit failed: {_nvml_message(exc)}")
        return
    try:
        if out.missing("nvidia_driver"):
            try:
                driver = hp.nvml_text(nvml.nvmlSystemGetDriverVersion())
                h.DriverVersion.parse(driver)
                out.put("nvidia_driver", driver, source)
            except Exception as exc:
                out.warn(source, f"driver version: {_nvml_message(exc)}")
        if out.missing("cuda_driver_api"):
            try:
                out.put(
                    "cuda_driver_api", hp.nvml_cuda_version(nvml.nvmlSystemGetCudaDriverVersion()), source
                )
            except Exception as exc:
                out.warn(source, f"CUDA driver version: {_nvml_message(exc)}")
        if out.missing("gpus"):
            try:
                out.put("gpus", _nvml_gpus(nvml), source)
            except Exception as exc:
                out.warn(source, f"GPU list: {_nvml_message(exc)}")
    finally:
        # Shutting down is best effort: the answers are already in.
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _nvml_message(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and name.startswith("NVMLError") else (text or name)


def _nvml_gpus(nvml: Any) -> tuple[h.Gpu, ...]:
    gpus = []
    for index in range(int(nvml.nvmlDeviceGetCount())):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        gpus.append(
            h.Gpu(
                index=index,
                name=hp.nvml_text(nvml.nvmlDeviceGetName(handle)),
                compute_capability=h.ComputeCapability(int(major), int(minor)),
                memory_mib=hp.bytes_to_mib(int(nvml.nvmlDeviceGetMemoryInfo(handle).total)),
                uuid=_optional_text(_nvml_call(nvml, "nvmlDeviceGetUUID", handle)),
                mig=_nvml_mig(nvml, handle),
            )
        )
    return tuple(gpus)


def _optional_text(value: Any) -> str | None:
    return hp.nvml_text(value) if isinstance(value, (str, bytes)) else None


def _nvml_call(nvml: Any, function: str, *args: Any) -> Any:
    # UUIDs and MIG are extras: an old pynvml or a GPU without MIG ("NotSupported") answers none.
    try:
        return getattr(nvml, function)(*args)
    except Exception:
        return None


def _nvml_mig(nvml: Any, handle: Any) -> tuple[h.MigDevice, ...] | None:
    mode = _nvml_call(nvml, "nvmlDeviceGetMigMode", handle)
    if not mode or int(mode[0]) != 1:  # (current, pending); 1 is NVML_DEVICE_MIG_ENABLE
        return None
    instances = []
    for slot in range(int(_nvml_call(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle) or 0)):
        mig = _nvml_call(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        uuid = _nvml_call(nvml, "nvmlDeviceGetUUID", mig) if mig is not None else None
        if not uuid:  # an empty slot raises NVMLError_NotFound
            continue
        name = hp.nvml_text(_nvml_call(nvml, "nvmlDeviceGetName", mig) or "")
        memory = _nvml_call(nvml, "nvmlDeviceGetMemoryInfo", mig)
        # "NVIDIA A100-SXM4-40GB MIG 1g.5gb" -> "1g.5gb"
        instances.append(
            h.MigDevice(
                uuid=hp.nvml_text(uuid),
                name=name.rsplit(" MIG ", 1)[-1],
                memory_mib=hp.bytes_to_mib(int(memory.total)) if memory is not None else None,
            )
        )
    return tuple(instances)
