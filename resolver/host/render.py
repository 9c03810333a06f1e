"""The readable summary `stack-resolver detect` prints. Pure: a host (and warnings) in, text out."""

from __future__ import annotations

from resolver.host.doctor import render_limits
from resolver.host.model import Gpu, Host
from resolver.host.probes import Detection

_WIDTH = 11


def _row(label: str, value: str) -> str:
    return f"{label:<{_WIDTH}}{value}\n"


def _mib(value: int | None) -> str:
    if value is None:
        return "unknown"
    return f"{value} MiB ({value / 1024:.1f} GiB)"


def render_gpu(gpu: Gpu) -> str:
    """`0: NVIDIA A100-SXM4-80GB  sm_80 (8.0)  81920 MiB`; `0: AMD Instinct MI300X  gfx942  ...`."""
    memory = f"{gpu.memory_mib} MiB" if gpu.memory_mib is not None else "memory unknown"
    cc = gpu.compute_capability
    if cc is not None:
        return f"{gpu.index}: {gpu.name or 'NVIDIA GPU'}  {cc.sm} ({cc})  {memory}"
    target = gpu.gfx_target or "xpu"
    return f"{gpu.index}: {gpu.name or gpu.vendor.upper() + ' GPU'}  {target}  {memory}"


def render_host(subject: Detection | Host) -> str:
    detection = subject if isinstance(subject, Detection) else Detection(host=subject)
    host = detection.host
    out = []
    os_text = host.os + (f" ({host.os_version})" if host.os_version else "")
    out.append(_row("OS", f"{os_text}, {host.arch}"))
    if host.libc is not None or host.os == "linux":
        libc = " ".join(p for p in (host.libc, host.libc_version) if p) or "unknown"
        out.append(_row("libc", libc))
    out.append(_row("Python", host.python or "unknown"))
    if host.nvidia_driver is not None:
        api = f" (CUDA driver API {host.cuda_driver_api})" if host.cuda_driver_api else ""
        out.append(_row("Driver", f"NVIDIA {host.nvidia_driver}{api}"))
    else:
        out.append(_row("Driver", "no NVIDIA driver"))
    if host.rocm_version is not None:
        out.append(_row("ROCm", host.rocm_version))
    if host.gpus:
        for position, gpu in enumerate(host.gpus):
            out.append(_row("GPUs" if position == 0 else "", render_gpu(gpu)))
            if gpu.mig is not None and gpu.compute_capability is not None:
                # MIG instances run what their parent runs: the same compute capability.
                shown = ", ".join(m.name or m.uuid for m in gpu.mig) or "no instance"
                out.append(_row("", f"   MIG mode: {shown} ({gpu.compute_capability.sm} each)"))
    else:
        out.append(_row("GPUs", "none (CPU host)"))
    if host.gpus and host.visible_devices is not None:
        seen = ", ".join(f"cuda:{d.index} = {d.label}" for d in host.visible_devices) or "no GPU"
        variables = [
            f"{name}={value!r}"
            for name, value in (
                ("NVIDIA_VISIBLE_DEVICES", host.nvidia_visible_devices),
                ("CUDA_VISIBLE_DEVICES", host.cuda_visible_devices),
            )
            if value is not None
        ]
        out.append(_row("CUDA sees", seen + (f" ({', '.join(variables)})" if variables else "")))
        if host.masked_gpus:
            out.append(_row("Masked", ", ".join(f"GPU {i}" for i in host.masked_gpus)))
    out.append(_row("CPU cores", str(host.cpu_count) if host.cpu_count is not None else "unknown"))
    out.append(_row("Memory", _mib(host.memory_mib)))
    out.append(_row("Disk free", _mib(host.disk_free_mib)))
    if host.limits is not None:
        out.append(_row("Limits", render_limits(host).removeprefix("limits: ").rstrip()))
    if host.sources:
        out.append("Sources:\n")
        out.extend(f"  {key:<16}{source}\n" for key, source in sorted(host.sources.items()))
    if detection.warnings:
        out.append("Warnings:\n")
        out.extend(f"  {warning}\n" for warning in detection.warnings)
    return "".join(out)
