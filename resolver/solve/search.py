"""Choose the best valid torch / variant / companions / transformers / Python for a host.

`solve()` is pure: a host, a matrix and a request in; a `Resolution` out, or
`NoCompatibleCombination` carrying every rejection as typed data (`reasons.py`). The prose is
`resolver/explain/`'s job.

Preference (overridable with `Request.prefer`): newest torch release first, then the newest CUDA
variant the host can run, then the newest transformers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.version import Version

from resolver.errors import NoCompatibleCombination
from resolver.host.model import Host
from resolver.matrix.model import Matrix, TorchRelease, TransformersRelease
from resolver.matrix.vocab import CPU, CUDA, ROCM, XPU, Variant, python_key, python_version
from resolver.solve.reasons import (
    ChosenIndirect,
    ChosenUnverified,
    FloorIndirect,
    FloorUnknownNote,
    GfxUnchecked,
    GlibcUnknown,
    GpusUnlisted,
    GpuUnused,
    NoPythonWithin,
    PtxJit,
    PythonOutsideConstraint,
    Reason,
    Rejection,
    TransformersExcluded,
    TransformersNone,
)
from resolver.solve.request import Request
from resolver.solve.rules import GpuFit, Judge


@dataclass(frozen=True)
class Resolution:
    python: str
    release: TorchRelease
    variant: str
    local_label: bool
    torchvision: Version | None
    torchaudio: Version | None
    transformers: TransformersRelease
    gpu_fit: tuple[GpuFit, ...]
    # what the user should know about the choice (typed; explain renders them)
    notes: tuple[Reason, ...]
    rejected: tuple[Rejection, ...]
    # notes added after the solve by higher layers (an index check), already in words
    warnings: tuple[str, ...] = ()
    # newer transformers releases not taken, each with why (yanked, pre-release, Python floor...)
    passed_over: tuple[TransformersExcluded, ...] = ()

    def pin(self, version: Version | None) -> str | None:
        if version is None:
            return None
        return f"{version}+{self.variant}" if self.local_label else str(version)

    @property
    def torch(self) -> str:
        return self.pin(self.release.version) or ""

    @property
    def cuda(self) -> str | None:
        cuda = Variant.parse(self.variant).cuda if Variant.of(self.variant) else None
        return str(cuda) if cuda is not None else None


@dataclass(frozen=True)
class Exploration:
    """Every candidate looked at: the valid ones and the rejected ones, each with its rank."""

    valid: tuple[tuple[tuple[object, ...], Resolution], ...]
    rejections: tuple[tuple[tuple[object, ...], Rejection], ...]

    def best_first(self) -> tuple[Resolution, ...]:
        return tuple(r for _, r in sorted(self.valid, key=lambda item: item[0], reverse=True))

    def rejected_best_first(self) -> tuple[Rejection, ...]:
        return tuple(r for _, r in sorted(self.rejections, key=lambda item: item[0], reverse=True))


def solve(host: Host, matrix: Matrix, request: Request) -> Resolution:
    """The best valid combination, with every better-looking candidate's rejection."""
    found = explore(host, matrix, request, exhaustive=False)
    if not found.valid:
        raise NoCompatibleCombination(found.rejected_best_first(), host=host, matrix=matrix, request=request)
    best_rank, best = max(found.valid, key=lambda item: item[0])
    better = tuple(
        r for rank, r in sorted(found.rejections, key=lambda item: item[0], reverse=True) if rank > best_rank
    )
    return dataclasses.replace(best, rejected=better)


def _variant_rank(matrix: Matrix, release: TorchRelease, variant: str) -> tuple[int, Version]:
    """Higher is preferred: CUDA by version, then ROCm, then CPU."""
    parsed = Variant.of(variant)
    build = matrix.build(release, variant)
    if parsed is None or (parsed.kind == "cuda" and (build is None or build.cuda is None)):
        return (0, Version("0"))
    return parsed.rank


def _kind(variant: str) -> str | None:
    parsed = Variant.of(variant)
    return parsed.kind if parsed else None


def explore(host: Host, matrix: Matrix, request: Request, *, exhaustive: bool = True) -> Exploration:
    """Judge candidates newest first. With `exhaustive=False` stop at the first release that has a
    valid candidate when torch is the leading preference (nothing older can outrank it)."""
    return _explore(host, matrix, request, exhaustive=exhaustive, thorough=False)


def verdicts(host: Host, matrix: Matrix, request: Request) -> tuple[Rejection, ...]:
    """Every candidate with every reason against it (none for a valid one), newest first: no rule
    is skipped because an earlier one already failed the candidate. For explanations."""
    found = _explore(host, matrix, request, exhaustive=True, thorough=True)
    valid = [(rank, Rejection(r.release.version, r.variant, (), stage="variant")) for rank, r in found.valid]
    ordered = sorted([*valid, *found.rejections], key=lambda item: item[0], reverse=True)
    return tuple(r for _, r in ordered)


def _explore(
    host: Host, matrix: Matrix, request: Request, *, exhaustive: bool, thorough: bool
) -> Exploration:
    python = request.python or host.python
    if python is not None and python_version(python) not in request.spec("python"):
        raise NoCompatibleCombination(
            (),
            reasons=(PythonOutsideConstraint(python, str(request.spec("python"))),),
            host=host,
            matrix=matrix,
            request=request,
        )
    notes: list[Reason] = []
    if host.os == "linux" and host.libc_version is None and host.libc != "musl":
        notes.append(GlibcUnknown())
    if host.nvidia_driver is not None and not host.gpus:
        notes.append(GpusUnlisted())
    judge = Judge(host, matrix, request, python, thorough=thorough)
    judges = {python: judge}
    ranks: dict[tuple[str, str], tuple[int, Version]] = {}

    def variant_rank(release: TorchRelease, variant: str) -> tuple[int, Version]:
        key = (release.series, variant)
        if key not in ranks:
            ranks[key] = _variant_rank(matrix, release, variant)
        return ranks[key]

    valid: list[tuple[tuple[object, ...], Resolution]] = []
    rejections: list[tuple[tuple[object, ...], Rejection]] = []

    for release in matrix.torch:
        release_reasons = judge.release_reasons(release)
        variants = sorted(release.variants, key=lambda v: variant_rank(release, v), reverse=True)
        release_python = python
        if python is None and host.platform in release.python and release.python[host.platform]:
            # Unknown host Python: take the newest non-free-threaded Python with wheels, within the
            # python constraint (a known Python was checked against it above).
            spec = request.spec("python")
            plain = [
                p
                for p in release.python[host.platform]
                if not p.endswith("t") and Version(p) in spec and _macos_fits(host, release, p)
            ]
            release_python = max(plain, key=python_key) if plain else None
            if release_python is None:
                release_reasons.append(NoPythonWithin(str(spec), host.platform))
        if release_python not in judges:
            judges[release_python] = Judge(host, matrix, request, release_python, thorough=thorough)
        release_judge = judges[release_python]
        transformers: TransformersRelease | TransformersNone | None = None
        if not release_reasons or thorough:
            transformers = release_judge.pick_transformers(release)
        chosen = transformers if isinstance(transformers, TransformersRelease) else None
        for variant in variants:
            rank = _rank_key(request.prefer, release, variant_rank(release, variant), chosen)
            kind = _kind(variant)
            if request.variant != variant and (
                (kind == ROCM and not host.amd_gpus) or (kind == XPU and not host.intel_gpus)
            ):
                continue  # no GPU of that vendor: listing each such build as rejected is noise
            if release_reasons and not thorough:
                rejections.append(
                    (rank, Rejection(release.version, variant, tuple(release_reasons), stage="release"))
                )
                continue
            reasons, fits = release_judge.variant_reasons(release, variant)
            if isinstance(transformers, TransformersNone) and (thorough or not reasons):
                reasons.append(transformers)
            if release_reasons:
                stage = "release"
                reasons = [*release_reasons, *reasons]
            else:
                stage = "variant"
            if reasons:
                rejections.append((rank, Rejection(release.version, variant, tuple(reasons), stage)))
                continue
            assert chosen is not None
            resolution = _resolution(host, matrix, release, variant, release_python, chosen, fits, notes)
            if not thorough:
                skipped = release_judge.transformers.passed_over(chosen, release.version)
                resolution = dataclasses.replace(resolution, passed_over=skipped)
            valid.append((rank, resolution))
        if valid and request.prefer[0] == "torch" and not exhaustive:
            # Releases come newest first, so no older release can outrank this one.
            break
    return Exploration(tuple(valid), tuple(rejections))


def _resolution(
    host: Host,
    matrix: Matrix,
    release: TorchRelease,
    variant: str,
    python: str | None,
    transformers: TransformersRelease,
    fits: Sequence[GpuFit],
    notes: Sequence[Reason],
) -> Resolution:
    pair = matrix.companions.get(release.version)
    found = list(notes)
    found.extend(PtxJit(fit.gpu.index, fit.gpu.cc.sm, fit.via) for fit in fits if fit.ptx)
    build = matrix.build(release, variant)
    if build is not None and build.is_unverified_on(host.platform):
        found.append(ChosenUnverified(variant, release.series))
    indirect = build is not None and build.is_indirect_on(host.platform)
    if build is not None and indirect and not build.is_unverified_on(host.platform):
        found.append(ChosenIndirect(variant, release.series, host.platform))
    found.extend(_unused_gpus(host, build.kind if build is not None else CPU))
    family = (
        matrix.cuda_families.get(build.cuda.major) if build is not None and build.cuda is not None else None
    )
    if family is not None and host.os in family.indirect_os and family.minor_version_compatibility:
        found.append(FloorIndirect(host.os, family.major, str(family.min_driver[host.os])))
    if build is not None and build.kind == ROCM and not build.gfx.get(host.platform):
        found.extend(
            GfxUnchecked(variant, release.series, g.index, g.name or "", str(g.gfx_target))
            for g in host.amd_gpus
        )
    if build is not None and build.cuda is not None and matrix.driver_floor(build.cuda, host.os) is None:
        bound = matrix.driver_floor_bound(build.cuda, host.os)
        found.append(
            FloorUnknownNote(host.os, build.cuda.major, host.nvidia_driver, str(bound) if bound else None)
        )
    return Resolution(
        python=python or "",
        release=release,
        variant=variant,
        local_label=host.platform not in matrix.unlabelled_platforms,
        torchvision=pair.torchvision if pair else None,
        torchaudio=pair.torchaudio if pair else None,
        transformers=transformers,
        gpu_fit=tuple(fits),
        notes=tuple(dict.fromkeys(found)),
        rejected=(),
    )


def _macos_fits(host: Host, release: TorchRelease, python: str) -> bool:
    """Whether this Python's macOS wheel installs on the host's macOS (per-wheel floors differ)."""
    floor = release.macos_floor(host.arch, python) if host.os == "macos" else None
    return floor is None or host.os_version is None or Version(host.os_version) >= floor


def _unused_gpus(host: Host, kind: str) -> list[Reason]:
    """GPUs the chosen build cannot drive (a CUDA build on a host that also has AMD GPUs, ...)."""
    vendor = {CUDA: "nvidia", ROCM: "amd", XPU: "intel"}.get(kind)
    if vendor is None:
        return []
    return [GpuUnused(g.index, g.name or "", g.vendor, kind) for g in host.gpus if g.vendor != vendor]


def _rank_key(
    prefer: Sequence[str],
    release: TorchRelease,
    variant_rank: tuple[int, Version],
    transformers: TransformersRelease | None,
) -> tuple[object, ...]:
    parts: dict[str, object] = {
        "torch": release.version,
        "variant": variant_rank,
        "transformers": transformers.version if transformers else Version("0"),
    }
    return tuple(parts[key] for key in prefer)
