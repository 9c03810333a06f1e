"""The rules: what the host, the request and the matrix make of one torch release and one build.

Each rule returns typed reasons (`reasons.py`), never prose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from packaging.version import Version

from resolver.host.model import Gpu, Host
from resolver.matrix.arch import ArchTarget, Coverage, coverage, sm_list
from resolver.matrix.model import Build, Matrix, TorchRelease, TransformersRelease
from resolver.matrix.vocab import CPU, CUDA, ROCM, XPU, python_version
from resolver.solve.reasons import (
    ArchMissing,
    CompanionMissing,
    CompanionOutside,
    ConstraintExcludes,
    CpuFallback,
    DriverBelowFloor,
    GlibcBelowFloor,
    MacosBelowFloor,
    MuslLibc,
    NoBuildData,
    NoDriver,
    NoIntelGpu,
    NotRequestedVariant,
    NoWheelsForPlatform,
    PtxOnly,
    PythonNoWheel,
    PythonRequires,
    Reason,
    RocmNotRequested,
    TransformersNone,
    UnknownDriverFloor,
    UnknownGfxTargets,
    UnverifiedBuild,
    UnverifiedPairing,
    UnverifiedRelease,
)
from resolver.solve.request import Request
from resolver.solve.transformers import TransformersFit


@dataclass(frozen=True)
class GpuFit:
    gpu: Gpu
    coverage: Coverage
    via: str  # the sm_XY, or compute_XY for PTX, the GPU runs
    ptx: bool = False


@dataclass
class Judge:
    """The rules for one host, matrix, request and Python, with per-build verdicts cached."""

    host: Host
    matrix: Matrix
    request: Request
    python: str | None
    # thorough: judge everything, even after a rule already failed the candidate (explanations)
    thorough: bool = False
    # build-level verdicts depend only on (series, variant), not on the release: computed once
    build_verdicts: dict[tuple[str, str], tuple[tuple[Reason, ...], tuple[GpuFit, ...]]] = field(
        default_factory=dict
    )

    @functools.cached_property
    def python_version(self) -> Version | None:
        return python_version(self.python) if self.python else None

    @functools.cached_property
    def libc_version(self) -> Version | None:
        return Version(self.host.libc_version) if self.host.libc_version else None

    @functools.cached_property
    def transformers(self) -> TransformersFit:
        return TransformersFit(self.matrix.transformers, self.request, self.python)

    def pick_transformers(self, release: TorchRelease) -> TransformersRelease | TransformersNone:
        return self.transformers.pick(release.version)

    def release_reasons(self, release: TorchRelease) -> list[Reason]:
        return release_reasons(self, release)

    def variant_reasons(self, release: TorchRelease, variant: str) -> tuple[list[Reason], list[GpuFit]]:
        request = self.request
        first: list[Reason] = []
        if request.variant is not None and variant != request.variant:
            first.append(NotRequestedVariant(request.variant))
        missing = request.unavailable.get((str(release.version), variant))
        if missing is not None:
            first.append(missing)
        if first and not self.thorough:
            return first[:1], []
        key = (release.series, variant)
        if key not in self.build_verdicts:
            reasons, fits = build_reasons(self, release, variant)
            self.build_verdicts[key] = (tuple(reasons), tuple(fits))
        reasons_seen, fits_seen = self.build_verdicts[key]
        return [*first, *reasons_seen], list(fits_seen)


def release_reasons(judge: Judge, release: TorchRelease) -> list[Reason]:
    """What fails a release before any variant is looked at."""
    host, request = judge.host, judge.request
    reasons: list[Reason] = []
    if "torch" in request.constraints and release.version not in request.spec("torch"):
        reasons.append(ConstraintExcludes("torch", str(request.spec("torch")), release.version))
    if release.unverified and not request.allow_unverified:
        reasons.append(UnverifiedRelease(release.version))
    platform = host.platform
    if platform not in release.python:
        reasons.append(NoWheelsForPlatform(platform))
        return reasons
    if host.os == "linux":
        floor = release.glibc_min.get(host.arch)
        if host.libc == "musl":
            reasons.append(MuslLibc())
        elif floor is not None and judge.libc_version is not None and judge.libc_version < floor:
            reasons.append(GlibcBelowFloor(floor, str(host.libc_version), platform))
    # per-wheel macOS floors differ by CPU arch and Python
    macos_min = release.macos_floor(host.arch, judge.python) if host.os == "macos" else None
    macos = Version(str(host.os_version)) if host.os == "macos" and host.os_version is not None else None
    if macos is not None and macos_min is not None and macos < macos_min:
        reasons.append(MacosBelowFloor(macos_min, str(host.os_version)))
    python = judge.python
    if python is not None:
        if python not in release.python[platform]:
            reasons.append(PythonNoWheel(python, platform, tuple(release.python[platform])))
        elif judge.python_version and not release.requires_python.contains(
            judge.python_version, prereleases=True
        ):
            reasons.append(PythonRequires("torch", str(release.requires_python), python))
    pair = judge.matrix.companions.get(release.version)
    for name in ("torchvision", "torchaudio"):
        companion = getattr(pair, name) if pair is not None else None
        wanted = name in request.packages or name in request.constraints
        if companion is None and wanted:
            reasons.append(CompanionMissing(name))
        elif companion is not None and companion not in request.spec(name):
            reasons.append(CompanionOutside(name, companion, str(request.spec(name))))
        elif pair is not None and pair.unverified and wanted and not request.allow_unverified:
            reasons.append(UnverifiedPairing(name, release.version))
    return reasons


def fit_gpus(
    judge: Judge, release: TorchRelease, build: Build, targets: tuple[ArchTarget, ...]
) -> tuple[list[Reason], list[GpuFit]]:
    """How each GPU runs the build: native kernels, PTX JIT, or not at all."""
    reasons: list[Reason] = []
    fits: list[GpuFit] = []
    rule = judge.matrix.tegra_rule_for(build.cuda)
    for gpu in judge.host.nvidia_gpus:
        cc = gpu.cc
        how = coverage(targets, cc, rule)
        name = gpu.name or ""
        if how is Coverage.NONE:
            reasons.append(
                ArchMissing(gpu.index, name, cc.sm, sm_list(targets), build.variant, release.series)
            )
        elif how is Coverage.PTX:
            ptx = max(t.cc for t in targets if t.ptx and t.cc <= cc)
            via = f"compute_{ptx.major}{ptx.minor}"
            if not judge.request.allow_ptx:
                reasons.append(PtxOnly(gpu.index, name, cc.sm, via, build.variant, release.series))
            fits.append(GpuFit(gpu, how, via, ptx=True))
        else:
            same_major = [t.cc for t in targets if t.cc.major == cc.major and t.cc <= cc]
            fits.append(GpuFit(gpu, how, (max(same_major) if same_major else cc).sm))
    return reasons, fits


def build_reasons(judge: Judge, release: TorchRelease, variant: str) -> tuple[list[Reason], list[GpuFit]]:
    """What the host makes of one build (a series' variant): platform, driver, GPU architecture."""
    host, request, matrix = judge.host, judge.request, judge.matrix
    platform = host.platform
    reasons: list[Reason] = []
    build = matrix.build(release, variant)
    if build is None:
        return [NoBuildData(variant, release.series)], []
    if platform not in build.platforms:
        return [NoWheelsForPlatform(platform, variant)], []
    if build.is_unverified_on(platform) and not request.allow_unverified:
        reasons.append(UnverifiedBuild(variant, release.series, platform))
    if build.kind == CPU:
        other = host.amd_gpus or host.intel_gpus
        asked = request.variant == CPU or request.allow_cpu_fallback
        if host.has_nvidia_gpu and not asked:
            reasons.append(CpuFallback())
        elif other and not asked:
            reasons.append(CpuFallback(other[0].vendor))
        return reasons, []
    if build.kind == ROCM:
        return rocm_reasons(judge, release, build, reasons)
    if build.kind == XPU:
        if not host.intel_gpus and request.variant != variant:
            reasons.append(NoIntelGpu(variant))
        return reasons, []
    if build.kind != CUDA or build.cuda is None:
        return reasons, []
    if host.nvidia_driver is None:
        reasons.append(NoDriver(variant))
        if not judge.thorough:
            return reasons, []
    floor = matrix.driver_floor(build.cuda, host.os)
    cuda_family = matrix.cuda_families.get(build.cuda.major)
    minor_compatible = cuda_family is not None and cuda_family.minor_version_compatibility
    needed_by = f"{build.cuda.major}.x" if minor_compatible else str(build.cuda)
    bound = matrix.driver_floor_bound(build.cuda, host.os) if floor is None else None
    if floor is None and bound is not None and host.driver is not None and host.driver < bound:
        # An unknown floor is never below the previous CUDA major's known floor on this OS.
        reasons.append(DriverBelowFloor(str(host.nvidia_driver), str(bound), needed_by, at_least=True))
    elif floor is None:
        if not request.allow_unverified:
            reasons.append(UnknownDriverFloor(host.os, needed_by, str(bound) if bound is not None else None))
    elif host.driver is not None and host.driver < floor:
        reasons.append(DriverBelowFloor(str(host.nvidia_driver), str(floor), needed_by))
    arch_reasons, fits = fit_gpus(judge, release, build, build.arch.get(platform, ()))
    reasons.extend(arch_reasons)
    return reasons, fits


def rocm_reasons(
    judge: Judge, release: TorchRelease, build: Build, reasons: list[Reason]
) -> tuple[list[Reason], list[GpuFit]]:
    """A ROCm build runs only where every AMD GPU has kernels among the build's gfx targets, and
    is never taken on a host without AMD GPUs unless --variant names it."""
    host, request, variant = judge.host, judge.request, build.variant
    amd = host.amd_gpus
    if not amd:
        if request.variant != variant:
            reasons.append(RocmNotRequested(variant))
        return reasons, []
    targets = build.gfx.get(host.platform)
    if not targets:
        if not request.allow_unverified:
            reasons.append(UnknownGfxTargets(variant, release.series))
        return reasons, []
    fits = []
    for gpu in amd:
        if gpu.gfx_target in targets:
            fits.append(GpuFit(gpu, Coverage.CUBIN, str(gpu.gfx_target)))
            continue
        reasons.append(
            ArchMissing(
                gpu.index, gpu.name or "", str(gpu.gfx_target), " ".join(targets), variant, release.series
            )
        )
    return reasons, fits
