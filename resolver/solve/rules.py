"""The rules: what the host, the request and the matrix make of one torch release and one build.

Each rule returns typed reasons (`reasons.py`), never prose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from packaging.version import Version

from resolver.host.model import Gpu, Host
from resolver.matrix.arch import ArchTarget, Coverage, TegraRule, coverage, sm_list
from resolver.matrix.load import Build, Matrix, TorchRelease, TransformersRelease
from resolver.matrix.vocab import CPU, CUDA, python_version
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
    NotRequestedVariant,
    NoWheelsForPlatform,
    PtxOnly,
    PythonNoWheel,
    PythonRequires,
    Reason,
    RocmNotRequested,
    TransformersNone,
    UnknownDriverFloor,
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
    rule: TegraRule
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
    macos_min = release.macos_min
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
    for gpu in judge.host.gpus:
        cc = gpu.compute_capability
        how = coverage(targets, cc, judge.rule)
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
        if host.has_nvidia_gpu and request.variant != CPU and not request.allow_cpu_fallback:
            reasons.append(CpuFallback())
        return reasons, []
    if build.kind != CUDA or build.cuda is None:
        # ROCm (and other non-NVIDIA GPU builds) are opt-in
        if request.variant != variant:
            reasons.append(RocmNotRequested(variant))
        return reasons, []
    if host.nvidia_driver is None:
        reasons.append(NoDriver(variant))
        if not judge.thorough:
            return reasons, []
    floor = matrix.driver_floor(build.cuda, host.os)
    cuda_family = matrix.cuda_families.get(build.cuda.major)
    minor_compatible = cuda_family is not None and cuda_family.minor_version_compatibility
    needed_by = f"{build.cuda.major}.x" if minor_compatible else str(build.cuda)
    if floor is None:
        if not request.allow_unverified:
            reasons.append(UnknownDriverFloor(host.os, needed_by))
    elif host.driver is not None and host.driver < floor:
        reasons.append(DriverBelowFloor(str(host.nvidia_driver), str(floor), needed_by))
    arch_reasons, fits = fit_gpus(judge, release, build, build.arch.get(platform, ()))
    reasons.extend(arch_reasons)
    return reasons, fits
