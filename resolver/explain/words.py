"""Reasons in words: one sentence per reason (with its candidate) and one short phrase (without,
so neighbouring releases that fail alike group into one line). Each reason's own words live here
only; the binding chain (chain.py, blockers.py) writes sentences about pools of candidates."""

from __future__ import annotations

from collections.abc import Sequence

from packaging.version import Version

from resolver.host.model import Gpu
from resolver.solve.reasons import (
    ArchMissing,
    ChosenIndirect,
    ChosenUnverified,
    CompanionMissing,
    CompanionOutside,
    CondaUnsolvable,
    ConstraintExcludes,
    CpuFallback,
    DriverBelowFloor,
    FloorIndirect,
    FloorUnknownNote,
    GfxUnchecked,
    GlibcBelowFloor,
    GlibcUnknown,
    GpusUnlisted,
    GpuUnused,
    MacosBelowFloor,
    MuslLibc,
    NoBuildData,
    NoCondaMapping,
    NoDriver,
    NoIntelGpu,
    NoPythonWithin,
    NotRequestedVariant,
    NoWheelsForPlatform,
    PreRelease,
    PtxJit,
    PtxOnly,
    PythonNoWheel,
    PythonOutsideConstraint,
    PythonRequires,
    Reason,
    Rejection,
    RocmNotRequested,
    RuntimeTorchFloor,
    TorchOutside,
    TransformersExcluded,
    TransformersNone,
    Unavailable,
    UnknownDriverFloor,
    UnknownGfxTargets,
    UnverifiedBuild,
    UnverifiedPairing,
    UnverifiedRelease,
    Yanked,
)


def candidate(rejection: Rejection) -> str:
    return f"torch {rejection.torch}" + (f"+{rejection.variant}" if rejection.variant else "")


def gfx_unknown(variant: str, series: str) -> str:
    return f"the gfx targets of the {variant} wheels of torch {series} are not known"


def gpu_kind(gpu: Gpu) -> str:
    """What decides which builds serve a GPU: its sm_XY, its gfx target, else its vendor."""
    if gpu.compute_capability is not None:
        return gpu.compute_capability.sm
    return gpu.gfx_target or gpu.vendor


def vendor_words(vendor: str) -> str:
    """ "an NVIDIA", "an AMD", "an Intel"."""
    return "an " + {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}.get(vendor, vendor.upper())


def _gpu(index: int, name: str, sm: str) -> str:
    return f"GPU {index} ({name or 'unnamed'}, {sm})"


def _within(spec: str) -> str:
    return f" within transformers{spec}" if spec else ""


def _on_python(python: str | None) -> str:
    return f" on Python {python}" if python else ""


def _span(pythons: tuple[str, ...]) -> str:
    return f"{pythons[0]}–{pythons[-1]}" if pythons else "none"


def sentence(reason: Reason, torch: Version | None = None, variant: str | None = None) -> str:
    """The full fact, naming the candidate (torch `torch`, variant `variant`) it applies to."""
    match reason:
        case ConstraintExcludes(package=package, spec=spec, version=version):
            return f"{package} {version} is outside the constraint {package}{spec}"
        case CompanionOutside(name=name, version=version, spec=spec):
            return f"torch {torch} pairs with {name} {version}, outside {name}{spec}"
        case NotRequestedVariant(requested=requested):
            return f"not the requested variant {requested}"
        case UnverifiedRelease(version=version):
            return f"torch {version} is marked unverified in the matrix"
        case UnverifiedPairing(name=name, torch=version):
            return f"the {name} pairing for torch {version} is unverified"
        case UnverifiedBuild(variant=v, series=series, platform=platform):
            return f"the {v} build of torch {series} on {platform} is unverified in the matrix"
        case UnknownDriverFloor(os=os_name, cuda=cuda, bound=bound):
            at_least = f"; it is at least {bound}" if bound else ""
            return f"the minimum {os_name} driver for CUDA {cuda} is not known{at_least}"
        case CpuFallback(vendor=vendor):
            return f"a CPU build is not chosen on a host with {vendor_words(vendor)} GPU"
        case RocmNotRequested(variant=v):
            return f"{v} is an AMD ROCm build and this host has no AMD GPU (name it with --variant)"
        case NoIntelGpu(variant=v):
            return f"{v} is an Intel GPU build and this host has no Intel GPU"
        case UnknownGfxTargets(variant=v, series=series):
            return f"the gfx targets of the {v} wheels of torch {series} are not known"
        case PtxOnly(gpu_index=index, gpu_name=name, sm=sm, ptx=ptx, variant=v, series=series):
            return (
                f"{v} wheels of torch {series} reach {_gpu(index, name, sm)} only by JIT-compiling {ptx} PTX"
            )
        case NoWheelsForPlatform(platform=platform, variant=None):
            return f"torch {torch} publishes no wheels for {platform}"
        case NoWheelsForPlatform(platform=platform, variant=v):
            return f"{v} wheels of torch {_series(torch)} are not built for {platform}"
        case MuslLibc():
            return "this host uses musl libc; torch wheels are manylinux (glibc) builds"
        case GlibcBelowFloor(floor=floor, host_value=value, platform=platform):
            return f"torch {torch} wheels for {platform} need glibc >= {floor}; this host has {value}"
        case MacosBelowFloor(floor=floor, host_value=value):
            return f"torch {torch} needs macOS >= {floor}; this host runs {value}"
        case PythonNoWheel(python=python, platform=platform, available=available):
            return f"torch {torch} has no Python {python} wheel for {platform} (wheels: {_span(available)})"
        case PythonRequires(package=package, spec=spec, python=python):
            return f"{package} requires Python {spec} (Python {python} is in use)"
        case NoPythonWithin(spec=spec, platform=platform):
            within = f" within python{spec}" if spec else ""
            return f"torch {torch} has no Python wheel{within} for {platform}"
        case CompanionMissing(name=name):
            return f"no {name} release pairs with torch {torch}, and the team installs {name}"
        case NoBuildData(variant=v, series=series):
            return f"the matrix has no build data for {v} of torch {series}"
        case NoCondaMapping(variant=v):
            return f"{v} has no conda build mapping"
    return f"{_subject(torch, variant)} {phrase(reason)}"


def _series(torch: Version | None) -> str:
    return f"{torch.major}.{torch.minor}" if torch is not None else "?"


def _subject(torch: Version | None, variant: str | None) -> str:
    if torch is None:
        return "it"
    return f"torch {torch}" + (f"+{variant}" if variant else "")


def phrase(reason: Reason) -> str:
    """What fails, without the candidate: "needs driver >= 580 (13.x)"."""
    match reason:
        case ConstraintExcludes(package="torch", spec=spec):
            return f"is outside torch{spec}"
        case ConstraintExcludes(package=package, spec=spec):
            return f"needs {package} outside {package}{spec}"
        case CompanionOutside(name=name, spec=spec):
            return f"pairs with {name} outside {name}{spec}"
        case NotRequestedVariant(requested=requested):
            return f"is not the requested {requested}"
        case UnverifiedRelease():
            return "is an unverified release"
        case UnverifiedPairing(name=name):
            return f"has an unverified {name} pairing"
        case UnverifiedBuild(platform=platform):
            return f"is unverified on {platform}"
        case UnknownDriverFloor(os=os_name, cuda=cuda):
            return f"needs an unknown {os_name} driver floor (CUDA {cuda})"
        case CpuFallback():
            return "is a CPU build on a GPU host"
        case RocmNotRequested():
            return "is a ROCm build (no AMD GPU)"
        case NoIntelGpu():
            return "needs an Intel GPU"
        case UnknownGfxTargets():
            return "has unknown gfx targets"
        case PtxOnly(sm=sm):
            return f"reaches {sm} only via PTX"
        case Yanked(package=package, version=version):
            return f"{package} {version} is yanked"
        case PreRelease(package=package, version=version):
            return f"{package} {version} is a pre-release"
        case NoWheelsForPlatform(platform=platform, variant=None):
            return f"has no wheels for {platform}"
        case NoWheelsForPlatform(platform=platform):
            return f"is not built for {platform}"
        case MuslLibc():
            return "needs glibc (this host has musl)"
        case GlibcBelowFloor(floor=floor):
            return f"needs glibc >= {floor}"
        case MacosBelowFloor(floor=floor):
            return f"needs macOS >= {floor}"
        case PythonNoWheel(python=python):
            return f"has no Python {python} wheel"
        case PythonRequires(package="torch", spec=spec):
            return f"requires Python {spec}"
        case PythonRequires(package=package, spec=spec):
            return f"{package} requires Python {spec}"
        case NoPythonWithin(spec=spec):
            within = f" within python{spec}" if spec else ""
            return f"has no Python wheel{within}"
        case CompanionMissing(name=name):
            return f"has no {name} release"
        case NoBuildData():
            return "has no build data"
        case Unavailable(source=source, project="torch"):
            return f"is not on {source}"
        case Unavailable(source=source, project=project, version=version):
            return f"(its {project} {version}) is not on {source}"
        case NoCondaMapping():
            return "has no conda build mapping"
        case NoDriver():
            return "needs an NVIDIA driver (none found)"
        case DriverBelowFloor(floor=floor, cuda=cuda, at_least=True):
            return f"needs driver >= {floor} ({cuda}, at least)"
        case DriverBelowFloor(floor=floor, cuda=cuda):
            return f"needs driver >= {floor} ({cuda})"
        case ArchMissing(sm=sm):
            return f"lacks {sm}"
        case TorchOutside(spec=spec):
            return f"needs torch{spec}"
        case RuntimeTorchFloor(floor=floor):
            return f"needs torch >= {floor} at import"
        case TransformersNone(spec=spec, python=python):
            return f"has no transformers{_within(spec)} for it{_on_python(python)}"
        case PythonOutsideConstraint(python=python, spec=spec):
            return f"Python {python} is outside the constraint python{spec}"
        case CondaUnsolvable(subdir=subdir, virtual=virtual):
            return f"the conda channels have no solution for {subdir} on this host ({', '.join(virtual)})"
    return reason.kind


def rejection_sentence(reason: Reason, rejection: Rejection) -> str:
    match reason:
        case DriverBelowFloor(driver=driver, floor=floor, cuda=cuda, at_least=True):
            return (
                f"driver {driver} is below {floor}; the floor for CUDA {cuda} is not known but is at "
                "least that (the floor of the previous CUDA major)"
            )
        case DriverBelowFloor(driver=driver, floor=floor, cuda=cuda):
            return f"driver {driver} is below {floor}, needed by CUDA {cuda}"
        case ArchMissing(gpu_index=index, gpu_name=name, sm=sm, built_for=built, variant=v, series=series):
            return (
                f"{v} wheels of torch {series} carry no {sm} kernels for {_gpu(index, name, sm)}; "
                f"they are built for {built}"
            )
        case NoDriver(variant=v):
            return f"{v} needs an NVIDIA driver and none was detected"
        case TransformersNone(spec=spec, python=python, torch=torch, excluded=excluded):
            text = f"no transformers release{_within(spec)} supports torch {torch}{_on_python(python)}"
            shown = passed_over_lines(excluded)
            if shown:
                text += " (" + "; ".join(shown[:3]) + ("; ..." if len(shown) > 3 else "") + ")"
            return text
        case Unavailable():
            return f"{candidate(rejection)} {phrase(reason)}"
    text = sentence(reason, rejection.torch, rejection.variant)
    if isinstance(reason, CpuFallback):
        text += " (pass --variant cpu or --allow-cpu-fallback)"
    elif reason.flag is not None:
        text += f" (pass {reason.flag})"
    return text


def passed_over_lines(rows: Sequence[TransformersExcluded]) -> list[str]:
    """ "transformers 5.21.0 – 5.24.0: requires Python >=3.11.0": neighbouring releases that
    were passed over for the same reasons, one line each (newest first)."""
    groups: list[tuple[Version, Version, tuple[str, ...]]] = []
    for row in sorted(rows, key=lambda r: r.version, reverse=True):
        why = tuple(dict.fromkeys(_row_phrase(r) for r in row.reasons))
        if groups and groups[-1][2] == why:
            groups[-1] = (groups[-1][0], row.version, why)
        else:
            groups.append((row.version, row.version, why))
    lines = []
    for newest, oldest, why in groups:
        span = f"transformers {newest}" if newest == oldest else f"transformers {oldest} – {newest}"
        lines.append(f"{span}: {', '.join(why)}")
    return lines


def _row_phrase(reason: Reason) -> str:
    match reason:
        case ConstraintExcludes(spec=spec):
            return f"outside transformers{spec}"
        case Yanked():
            return "yanked"
        case PreRelease():
            return "a pre-release"
        case PythonRequires(spec=spec, python=python):
            return f"requires Python {spec} (not {python})"
    return phrase(reason)


def note(reason: Reason) -> str:
    """A note on a valid choice."""
    match reason:
        case GlibcUnknown():
            return "glibc version unknown: wheel glibc floors were not checked"
        case GpusUnlisted():
            return "an NVIDIA driver was found but no GPU list: GPU architecture coverage was not checked"
        case PtxJit(gpu_index=index, sm=sm, ptx=ptx):
            return (
                f"GPU {index} ({sm}) runs through PTX JIT ({ptx}): first use compiles kernels, "
                "and some may be slow"
            )
        case ChosenUnverified(variant=v, series=series):
            return f"the {v} build of torch {series} is unverified in the matrix"
        case ChosenIndirect(variant=v, series=series, platform=platform):
            return (
                f"the {v} build of torch {series} on {platform} is confirmed only indirectly in the "
                "matrix (see `stack-resolver matrix show torch`)"
            )
        case GpuUnused(gpu_index=index, gpu_name=name, vendor=vendor, build_kind=kind):
            return f"GPU {index} ({name or vendor}) is {vendor.upper()}: a {kind} build does not use it"
        case FloorIndirect(os=os_name, cuda_major=major, floor=floor):
            return (
                f"the {os_name} driver floor {floor} for CUDA {major}.x is confirmed only indirectly "
                "in the matrix"
            )
        case GfxUnchecked(variant=v, series=series, gpu_index=index, gpu_name=name, gfx_target=gfx):
            return (
                f"unverified for {gfx} (GPU {index}, {name or 'AMD GPU'}): {gfx_unknown(v, series)}, so "
                f"whether they carry {gfx} kernels was not checked"
            )
        case FloorUnknownNote(os=os_name, cuda_major=major, driver=driver, bound=bound):
            meets = f"; driver {driver} meets its known bound {bound}" if bound else ""
            return f"the minimum {os_name} driver for CUDA {major}.x is not known{meets}"
    return phrase(reason)
