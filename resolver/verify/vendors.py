"""`check` and `verify` on AMD (ROCm) and Intel (XPU) GPUs: what the smoke test is told to expect,
and `check`'s findings for a host whose GPUs are AMD or Intel.

A ROCm build of torch drives AMD GPUs through HIP behind `torch.cuda`; its
`torch.cuda.get_arch_list()` names the gfx targets it carries code objects for, and an AMD GPU
runs only code built for its own gfx target. An XPU build drives Intel GPUs through `torch.xpu`.
The gfx lists are the build's own (what torch reports), else the matrix's; a build whose gfx
targets neither knows is reported as unverified for each AMD GPU, never as working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from packaging.version import Version

from resolver.host.model import Gpu, Host
from resolver.matrix.vocab import CPU, CUDA, ROCM, XPU, Variant
from resolver.verify.findings import Finding, failed, passed, skipped
from resolver.verify.remedies import Context, install_fix
from resolver.verify.smoke import gfx_name, hip_matches

GPU_KINDS = (CUDA, ROCM, XPU)


def gpu_kind(variant: str) -> str | None:
    """ "cuda", "rocm" or "xpu" for a GPU build; None for a CPU build or an unknown name."""
    parsed = Variant.of(variant)
    return parsed.kind if parsed is not None and parsed.kind in GPU_KINDS else None


def rocm_release(variant: str) -> str | None:
    """The ROCm major.minor a rocmX.Y[.Z] build reports in torch.version.hip: rocm6.2.4 -> "6.2"."""
    parsed = Variant.of(variant)
    if parsed is None or parsed.kind != ROCM or parsed.version is None:
        return None
    return f"{parsed.version.major}.{parsed.version.minor}"


def expected_devices(host: Host, variant: str) -> int:
    """The devices the build should see: those CUDA enumerates, the AMD GPUs or the Intel GPUs."""
    kind = gpu_kind(variant)
    if kind == ROCM:
        return len(host.amd_gpus)
    if kind == XPU:
        return len(host.intel_gpus)
    return len(host.cuda_devices) if kind == CUDA else 0


def host_gfx(host: Host) -> tuple[str, ...]:
    return tuple(str(g.gfx_target) for g in host.amd_gpus if g.gfx_target)


def smoke_payload(
    versions: Mapping[str, str], variant: str, cuda: str | None, host_gpus: int, gfx_targets: Sequence[str]
) -> dict[str, Any]:
    """The smoke module's expectations (its argument, as JSON)."""
    kind = gpu_kind(variant)
    return {
        "versions": dict(versions),
        "variant": variant,
        "cuda": cuda,
        "hip": rocm_release(variant),
        "gpu": kind,
        "host_gpus": host_gpus,
        "gfx_targets": list(gfx_targets),
        "gpu_target": kind == CUDA,
    }


# --- check: a host whose GPUs are AMD or Intel --------------------------------------------------


def vendor_findings(ctx: Context, shown: str) -> list[Finding] | None:
    """The device findings when the host's GPUs for this build are AMD or Intel; None when the
    NVIDIA (CUDA) findings apply: a CUDA build on a host where CUDA sees GPUs, or a host whose
    only GPUs are NVIDIA (or none)."""
    host, variant = ctx.host, ctx.installed.variant or "cpu"
    kind = gpu_kind(variant)
    if kind == ROCM and host.amd_gpus:
        return rocm_findings(ctx, shown, variant)
    if kind == XPU and host.intel_gpus:
        return xpu_findings(ctx)
    if host.cuda_devices or not (host.amd_gpus or host.intel_gpus):
        return None
    amd = bool(host.amd_gpus)
    gpus = host.amd_gpus or host.intel_gpus
    build = "a ROCm build for the AMD GPUs" if amd else "an XPU build for the Intel GPUs"
    vendor = "AMD" if amd else "Intel"
    what = {
        CUDA: "a CUDA build (NVIDIA GPUs only)",
        ROCM: "a ROCm build (AMD GPUs only)",
        XPU: "an XPU build (Intel GPUs only)",
    }.get(kind or CPU, "a CPU build")
    why = f"torch {shown} is {what} and this host's GPUs are {vendor} ({_gpu_list(gpus)})"
    return [
        failed(
            "ROCm build" if amd else "XPU build",
            build,
            f"{shown} ({variant})",
            f"{_gpu_list(gpus)} cannot be used by this torch",
            install_fix(ctx, why),
            gpu=True,
        )
    ]


def _gpu_label(gpu: Gpu) -> str:
    return f"GPU {gpu.index} ({gpu.name or gpu.vendor.upper() + ' GPU'})"


def _gpu_list(gpus: Sequence[Gpu]) -> str:
    return ", ".join(f"{_gpu_label(g)}{f' {g.gfx_target}' if g.gfx_target else ''}" for g in gpus)


def _matrix_gfx(ctx: Context, variant: str) -> tuple[str, ...]:
    torch = ctx.installed.torch
    release = ctx.matrix.release(Version(torch.public)) if torch else None
    build = ctx.matrix.build(release, variant) if release else None
    return tuple(build.gfx.get(ctx.host.platform, ())) if build else ()


def rocm_findings(ctx: Context, shown: str, variant: str) -> list[Finding]:
    installed, host = ctx.installed, ctx.host
    findings: list[Finding] = []
    want = rocm_release(variant)
    if installed.hip is None or not hip_matches(want, installed.hip):
        detail = (
            f"the +{variant} label says ROCm {want}, but torch was not built with HIP"
            if installed.hip is None
            else f"the +{variant} label says ROCm {want}, torch was built with HIP {installed.hip}"
        )
        fix = install_fix(ctx, f"torch {shown} is not the ROCm {want} build it is labelled")
        findings.append(failed("torch.version.hip", f"{want}.x", str(installed.hip), detail, fix, gpu=True))
    arch_list = tuple(gfx_name(a) for a in installed.arch_list)
    source = installed.arch_source or "the matrix"
    if not arch_list:
        arch_list = _matrix_gfx(ctx, variant)
    for gpu in host.amd_gpus:
        gfx = str(gpu.gfx_target)
        name = f"{_gpu_label(gpu)} {gfx}"
        if not arch_list:
            why = (
                f"unverified for {gfx}: torch reports no arch list and the matrix does not know the gfx "
                f"targets of the {variant} build of torch {shown.split('+')[0]}"
            )
            findings.append(skipped(name, why, gpu=True))
        elif gfx in arch_list:
            findings.append(passed(name, f"{gfx} in torch's arch list", gfx, gpu=True))
        else:
            why = f"torch {shown} carries no {gfx} kernels for {_gpu_label(gpu)}"
            findings.append(
                failed(
                    name,
                    f"{gfx} in torch's arch list",
                    " ".join(arch_list),
                    f"from {source}; HIP would say 'invalid device function'",
                    install_fix(ctx, why),
                    gpu=True,
                )
            )
    findings.extend(
        _availability(installed.available, installed.device_count, installed.cuda_error, host, ROCM)
    )
    return findings


def xpu_findings(ctx: Context) -> list[Finding]:
    installed = ctx.installed
    return _availability(
        installed.xpu_available, installed.xpu_device_count, installed.xpu_error, ctx.host, XPU
    )


def _availability(available: bool, count: int, error: str, host: Host, kind: str) -> list[Finding]:
    gpus = host.amd_gpus if kind == ROCM else host.intel_gpus
    label, call = ("ROCm (HIP)", "torch.cuda") if kind == ROCM else ("XPU", "torch.xpu")
    if not available:
        detail = error or f"{call}.is_available() is False: torch cannot reach {_gpu_list(gpus)}"
        return [failed(f"{label} available", "True", "False", detail, gpu=True)]
    name, expected = f"{label} device count", str(len(gpus))
    if count != len(gpus):
        masks = "HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES" if kind == ROCM else "ZE_AFFINITY_MASK"
        detail = f"torch sees {count}, the host has {len(gpus)}: is {masks} set?"
        return [
            passed(f"{label} available", "True", "True", gpu=True),
            failed(name, expected, str(count), detail, gpu=True),
        ]
    return [
        passed(f"{label} available", "True", "True", gpu=True),
        passed(name, expected, str(count), gpu=True),
    ]
