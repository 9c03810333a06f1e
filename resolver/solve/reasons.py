"""Why a candidate fails, as data: one frozen dataclass per kind of reason, no English.

`resolver/explain/` renders these into text and JSON. Every filter the solver applies records
one of these, so `--explain` can name it. `kind` is a stable short name (JSON, grouping); the
`flag` of a reason is the command-line switch that lifts it, when one exists.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from packaging.version import Version

# Reason classes share one __eq__, __hash__ and __repr__ (below; the same results as dataclass's
# own): each class's generated ones are compiled from source at import, and with some 45 classes
# that was a third of a dry run's start-up. Hence `eq=False, repr=False` on every subclass.


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True)
class Reason:
    """Base of every reason. `policy` reasons are the tool's own choices that a flag changes."""

    kind: ClassVar[str] = "reason"
    flag: ClassVar[str | None] = None

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _field_names(type(self)))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _field_names(type(self)))
        return f"{self.__class__.__qualname__}({shown})"


# --- the user's request ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class ConstraintExcludes(Reason):
    """The user's constraint `package{spec}` excludes `version` (of `package`)."""

    kind: ClassVar[str] = "constraint"
    package: str
    spec: str
    version: Version


@dataclass(frozen=True, eq=False, repr=False)
class CompanionOutside(Reason):
    """The torch release pairs with `name` `version`, outside the user's `name{spec}`."""

    kind: ClassVar[str] = "constraint"
    name: str
    version: Version
    spec: str


@dataclass(frozen=True, eq=False, repr=False)
class NotRequestedVariant(Reason):
    """The request names another variant (`--variant`)."""

    kind: ClassVar[str] = "variant"
    requested: str


@dataclass(frozen=True, eq=False, repr=False)
class PythonOutsideConstraint(Reason):
    """The Python in use is outside the user's python constraint."""

    kind: ClassVar[str] = "python-constraint"
    python: str
    spec: str


# --- policy: lifted by a flag ------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class UnverifiedRelease(Reason):
    kind: ClassVar[str] = "unverified"
    flag: ClassVar[str | None] = "--allow-unverified"
    version: Version


@dataclass(frozen=True, eq=False, repr=False)
class UnverifiedPairing(Reason):
    kind: ClassVar[str] = "unverified"
    flag: ClassVar[str | None] = "--allow-unverified"
    name: str
    torch: Version


@dataclass(frozen=True, eq=False, repr=False)
class UnverifiedBuild(Reason):
    kind: ClassVar[str] = "unverified"
    flag: ClassVar[str | None] = "--allow-unverified"
    variant: str
    series: str
    platform: str


@dataclass(frozen=True, eq=False, repr=False)
class UnknownDriverFloor(Reason):
    """The matrix does not know the minimum `os` driver for `cuda` (a family "12.x" or "11.8");
    `bound`: it is at least this (the previous CUDA major's floor), when known."""

    kind: ClassVar[str] = "unverified"
    flag: ClassVar[str | None] = "--allow-unverified"
    os: str
    cuda: str
    bound: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class CpuFallback(Reason):
    """A CPU build is not chosen on a host with a GPU (of `vendor`) unless asked for."""

    kind: ClassVar[str] = "cpu-fallback"
    flag: ClassVar[str | None] = "--variant cpu"
    vendor: str = "nvidia"


@dataclass(frozen=True, eq=False, repr=False)
class RocmNotRequested(Reason):
    """An AMD ROCm build on a host without AMD GPUs: used only when named with --variant."""

    kind: ClassVar[str] = "rocm"
    variant: str


@dataclass(frozen=True, eq=False, repr=False)
class NoIntelGpu(Reason):
    """An Intel XPU build on a host without Intel GPUs: used only when named with --variant."""

    kind: ClassVar[str] = "xpu"
    variant: str


@dataclass(frozen=True, eq=False, repr=False)
class UnknownGfxTargets(Reason):
    """The matrix does not know which AMD gfx targets the build carries kernels for."""

    kind: ClassVar[str] = "unverified"
    flag: ClassVar[str | None] = "--allow-unverified"
    variant: str
    series: str


@dataclass(frozen=True, eq=False, repr=False)
class PtxOnly(Reason):
    """The build reaches the GPU only by JIT-compiling PTX (`ptx` is "compute_90")."""

    kind: ClassVar[str] = "ptx"
    flag: ClassVar[str | None] = "--allow-ptx"
    gpu_index: int
    gpu_name: str
    sm: str
    ptx: str
    variant: str
    series: str


# --- release filters ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Yanked(Reason):
    kind: ClassVar[str] = "yanked"
    package: str
    version: Version


@dataclass(frozen=True, eq=False, repr=False)
class PreRelease(Reason):
    kind: ClassVar[str] = "prerelease"
    package: str
    version: Version


# --- the host's platform -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class NoWheelsForPlatform(Reason):
    """torch publishes no wheels for `platform` (a release), or `variant` is not built for it."""

    kind: ClassVar[str] = "platform"
    platform: str
    variant: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class MuslLibc(Reason):
    kind: ClassVar[str] = "libc"


@dataclass(frozen=True, eq=False, repr=False)
class GlibcBelowFloor(Reason):
    kind: ClassVar[str] = "glibc"
    floor: Version
    host_value: str
    platform: str


@dataclass(frozen=True, eq=False, repr=False)
class MacosBelowFloor(Reason):
    kind: ClassVar[str] = "macos"
    floor: Version
    host_value: str


@dataclass(frozen=True, eq=False, repr=False)
class PythonNoWheel(Reason):
    """No wheel for Python `python` on `platform`; `available` lists the Pythons that have one."""

    kind: ClassVar[str] = "python"
    python: str
    platform: str
    available: tuple[str, ...]


@dataclass(frozen=True, eq=False, repr=False)
class PythonRequires(Reason):
    """`package`'s Requires-Python `spec` excludes `python`."""

    kind: ClassVar[str] = "python"
    package: str
    spec: str
    python: str


@dataclass(frozen=True, eq=False, repr=False)
class NoPythonWithin(Reason):
    """The host's Python is unknown and no wheel's Python lies within the python constraint."""

    kind: ClassVar[str] = "python"
    spec: str
    platform: str


@dataclass(frozen=True, eq=False, repr=False)
class CompanionMissing(Reason):
    """No `name` release pairs with the torch release, and the team installs `name`."""

    kind: ClassVar[str] = "companion"
    name: str


# --- the build ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class NoBuildData(Reason):
    kind: ClassVar[str] = "data"
    variant: str
    series: str


@dataclass(frozen=True, eq=False, repr=False)
class Unavailable(Reason):
    """The build (or its companion `project` `version`) is not on `source` (an index or channel)."""

    kind: ClassVar[str] = "index"
    source: str
    project: str = "torch"
    version: str = ""


@dataclass(frozen=True, eq=False, repr=False)
class NoCondaMapping(Reason):
    kind: ClassVar[str] = "index"
    variant: str


@dataclass(frozen=True, eq=False, repr=False)
class NoDriver(Reason):
    kind: ClassVar[str] = "no-driver"
    variant: str


@dataclass(frozen=True, eq=False, repr=False)
class DriverBelowFloor(Reason):
    """Driver `driver` < `floor`, the minimum for CUDA `cuda` ("12.x" under minor-version
    compatibility, else the toolkit "11.8")."""

    kind: ClassVar[str] = "driver"
    driver: str
    floor: str
    cuda: str
    # the floor itself is unknown on this OS; `floor` is a lower bound of it
    at_least: bool = False


@dataclass(frozen=True, eq=False, repr=False)
class ArchMissing(Reason):
    """The build carries no kernels (nor usable PTX) for the GPU's `sm` (an NVIDIA sm_XY or an AMD
    gfx target); `built_for` lists the build's targets."""

    kind: ClassVar[str] = "arch"
    gpu_index: int
    gpu_name: str
    sm: str
    built_for: str
    variant: str
    series: str


# --- transformers ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class TorchOutside(Reason):
    """A transformers release's torch extra (`spec`) excludes torch `torch`."""

    kind: ClassVar[str] = "transformers-torch"
    spec: str
    torch: Version


@dataclass(frozen=True, eq=False, repr=False)
class RuntimeTorchFloor(Reason):
    """transformers disables torch support at import below torch `floor`."""

    kind: ClassVar[str] = "transformers-torch"
    floor: Version
    torch: Version


@dataclass(frozen=True)
class TransformersExcluded:
    """Why one transformers release within the user's range cannot be taken."""

    version: Version
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, eq=False, repr=False)
class TransformersNone(Reason):
    """No transformers release within `spec` fits torch `torch` on Python `python`; `excluded`
    says why for each release within the user's range (newest first)."""

    kind: ClassVar[str] = "transformers"
    spec: str
    python: str | None
    torch: Version
    excluded: tuple[TransformersExcluded, ...] = ()


# --- notes on a valid choice -------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class GlibcUnknown(Reason):
    kind: ClassVar[str] = "glibc-unknown"


@dataclass(frozen=True, eq=False, repr=False)
class GpusUnlisted(Reason):
    kind: ClassVar[str] = "gpus-unlisted"


@dataclass(frozen=True, eq=False, repr=False)
class PtxJit(Reason):
    """A GPU of the chosen build runs through PTX JIT (allowed with --allow-ptx)."""

    kind: ClassVar[str] = "ptx-jit"
    gpu_index: int
    sm: str
    ptx: str


@dataclass(frozen=True, eq=False, repr=False)
class ChosenUnverified(Reason):
    kind: ClassVar[str] = "chosen-unverified"
    variant: str
    series: str


@dataclass(frozen=True, eq=False, repr=False)
class ChosenIndirect(Reason):
    """The chosen build is confirmed only indirectly in the matrix on `platform`."""

    kind: ClassVar[str] = "chosen-indirect"
    variant: str
    series: str
    platform: str


@dataclass(frozen=True, eq=False, repr=False)
class FloorIndirect(Reason):
    """The chosen CUDA build's driver floor on `os` is confirmed only indirectly in the matrix."""

    kind: ClassVar[str] = "floor-indirect"
    os: str
    cuda_major: int
    floor: str


@dataclass(frozen=True, eq=False, repr=False)
class GpuUnused(Reason):
    """GPU `gpu_index` is of another vendor than the chosen build (`build_kind`) drives."""

    kind: ClassVar[str] = "gpu-unused"
    gpu_index: int
    gpu_name: str
    vendor: str
    build_kind: str


@dataclass(frozen=True, eq=False, repr=False)
class GfxUnchecked(Reason):
    """The chosen ROCm build's gfx targets are unknown (allowed with --allow-unverified): whether it
    carries kernels for AMD GPU `gpu_index`'s `gfx_target` is unverified, not known to work."""

    kind: ClassVar[str] = "gfx-unchecked"
    variant: str
    series: str
    gpu_index: int
    gpu_name: str
    gfx_target: str


@dataclass(frozen=True, eq=False, repr=False)
class FloorUnknownNote(Reason):
    """The chosen CUDA build's driver floor on `os` is unknown (allowed); `bound`, if known, is met."""

    kind: ClassVar[str] = "floor-unknown"
    os: str
    cuda_major: int
    driver: str | None
    bound: str | None


# --- outside the torch search: conda, the team ---------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class CondaUnsolvable(Reason):
    """The conda channels have no solution; `message` is the conda solver's own output."""

    kind: ClassVar[str] = "conda"
    subdir: str
    virtual: tuple[str, ...]
    specs: tuple[str, ...]
    message: str


@dataclass(frozen=True, eq=False, repr=False)
class TargetUnsolvable(Reason):
    kind: ClassVar[str] = "target"
    target: str


@dataclass(frozen=True, eq=False, repr=False)
class TargetBound(Reason):
    """Target `target` can take torch only up to (`side` "ceiling") or from (`side` "floor")
    `torch`; `why` is what rejects the release just beyond that bound."""

    kind: ClassVar[str] = "bound"
    target: str
    side: str
    torch: Version
    why: tuple[Rejection, ...]


@dataclass(frozen=True, eq=False, repr=False)
class SmallestSplit(Reason):
    """The fewest locks that serve every target: (torch version, target names) per lock."""

    kind: ClassVar[str] = "split"
    groups: tuple[tuple[Version, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Rejection:
    """One candidate (torch release + variant) and every reason it fails.

    `stage` "release": it failed before any variant was looked at (Python, platform, glibc,
    constraints); "variant": the release fits the host, this variant does not (driver, arch...).
    """

    torch: Version
    variant: str | None
    reasons: tuple[Reason, ...]
    stage: str = "variant"
