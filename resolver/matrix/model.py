"""The compatibility matrix: typed, frozen values loaded from `matrices/*.toml`.

These are the value types the solver reads. Facts live in the TOML files; `load.py` reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.host.model import ComputeCapability, DriverVersion
from resolver.matrix.arch import ArchTarget, TegraRule
from resolver.matrix.vocab import variant_cuda as variant_cuda  # the one variant parser
from resolver.matrix.vocab import variant_kind as variant_kind

# Platform keys, `{os}-{arch}` exactly as `Host.platform` builds them.
PLATFORMS = ("linux-x86_64", "linux-aarch64", "windows-x86_64", "macos-arm64", "macos-x86_64")


@dataclass(frozen=True)
class Source:
    """Where a fact comes from: a URL, or a git repository + path + commit."""

    key: str
    title: str
    url: str | None = None
    repo: str | None = None
    path: str | None = None
    commit: str | None = None
    # a locator in prose for what has neither URL nor repository (a registry project, a wheel file)
    where: str | None = None
    retrieved: str | None = None
    note: str | None = None

    def cite(self) -> str:
        if self.url:
            return self.url
        if self.repo is None and self.where:
            return f"{self.where} (read {self.retrieved})" if self.retrieved else self.where
        text = f"{self.repo}:{self.path}"
        return f"{text}@{self.commit}" if self.commit else text


@dataclass(frozen=True)
class Build:
    """The wheels of one variant (cu128, rocm6.3, xpu, cpu) for one torch release series (2.7).

    `arch` maps each platform with wheels to its TORCH_CUDA_ARCH_LIST (empty for the others);
    `gfx` maps a ROCm build's platforms to the AMD gfx targets its kernels are built for.
    """

    series: str
    variant: str
    kind: str  # "cuda" | "rocm" | "xpu" | "cpu"
    cuda: Version | None
    arch: Mapping[str, tuple[ArchTarget, ...]]
    unverified: bool = False
    unverified_platforms: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    note: str | None = None
    gfx: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # confirmed only indirectly (see matrices/builds.toml): used, and said so in a warning
    indirect: bool = False
    indirect_platforms: frozenset[str] = frozenset()

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(self.arch)

    def is_unverified_on(self, platform: str) -> bool:
        return self.unverified or platform in self.unverified_platforms

    def is_indirect_on(self, platform: str) -> bool:
        return self.indirect or platform in self.indirect_platforms


@dataclass(frozen=True)
class TorchRelease:
    version: Version
    date: str
    requires_python: SpecifierSet
    # platform -> Python versions ("3.11", "3.13t") with a wheel on that platform
    python: Mapping[str, tuple[str, ...]]
    # CPU arch ("x86_64", "aarch64") -> glibc floor of the Linux wheels
    glibc_min: Mapping[str, Version]
    # minimum macOS version of the arm64 / x86_64 wheels; None: no macOS wheels
    macos_min: Version | None
    variants: tuple[str, ...]
    # platform -> the variant of the wheel the general index (PyPI) serves there
    default_variant: Mapping[str, str]
    sources: tuple[str, ...] = ()
    unverified: bool = False
    note: str | None = None
    # CPU arch ("arm64", "x86_64") -> minimum macOS of that arch's wheels; `macos_min` is the lowest
    macos_min_arch: Mapping[str, Version] = field(default_factory=dict)
    # CPU arch -> Python tag -> macOS floor of the wheels tagged higher than the arch's floor
    macos_min_python: Mapping[str, Mapping[str, Version]] = field(default_factory=dict)

    @functools.cached_property
    def series(self) -> str:
        return f"{self.version.major}.{self.version.minor}"

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(self.python)

    def macos_floor(self, arch: str, python: str | None) -> Version | None:
        """The minimum macOS of the wheel for this arch and Python (the arch's floor when the
        Python is not known, or its wheel carries no higher tag); None: no macOS wheels."""
        floor = self.macos_min_arch.get(arch)
        if python is not None:
            return self.macos_min_python.get(arch, {}).get(python, floor)
        return floor


@dataclass(frozen=True)
class CudaFamily:
    """One CUDA major: the driver floor under minor-version compatibility, targetable CCs."""

    major: int
    minor_version_compatibility: bool
    # os ("linux", "windows") -> minimum driver; an OS missing here is unknown
    min_driver: Mapping[str, DriverVersion]
    cc_min: ComputeCapability
    cc_max: ComputeCapability
    unverified_os: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    note: str | None = None
    # OSes whose floor is confirmed only indirectly (see matrices/builds.toml): used, and said so
    indirect_os: frozenset[str] = frozenset()

    def can_target(self, cc: ComputeCapability) -> bool:
        return self.cc_min <= cc <= self.cc_max


@dataclass(frozen=True)
class CudaToolkit:
    """One toolkit release and the driver it ships with (its full-feature floor)."""

    version: Version
    driver: Mapping[str, DriverVersion]
    unverified: bool = False
    sources: tuple[str, ...] = ()
    # OSes whose toolkit driver is not known (absent from `driver`)
    unverified_os: frozenset[str] = frozenset()
    note: str | None = None


@dataclass(frozen=True)
class GpuArch:
    cc: ComputeCapability
    architecture: str
    products: tuple[str, ...]
    tegra: bool = False
    aliases: tuple[ComputeCapability, ...] = ()
    first_cuda: Version | None = None
    removed_in_cuda: Version | None = None
    unverified: bool = False
    sources: tuple[str, ...] = ()
    note: str | None = None
    # the row (its product list) is confirmed only indirectly
    indirect: bool = False
    # an integrated part that, in builds of this CUDA or later, runs same-major cubins like any
    # other GPU (Jetson/SBSA unification: sm_80/sm_86 cubins run on Orin 8.7 from CUDA 13.2)
    unified_from_cuda: Version | None = None

    def targetable_by(self, cuda: Version) -> bool:
        """Whether a toolkit of version `cuda` can compile for this architecture."""
        if self.first_cuda is not None and cuda < self.first_cuda:
            return False
        return self.removed_in_cuda is None or cuda < self.removed_in_cuda


@dataclass(frozen=True)
class CompanionPair:
    """torch -> torchvision / torchaudio. None means no release exists for that torch."""

    torch: Version
    torchvision: Version | None
    torchaudio: Version | None
    unverified: bool = False
    sources: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class TransformersRelease:
    version: Version
    requires_python: SpecifierSet
    # the `torch` extra's specifier ("" = any torch)
    torch: SpecifierSet
    # below this torch, transformers' import-time gate disables torch support
    runtime_min_torch: Version | None = None
    yanked: bool = False
    upload_date: str | None = None
    unverified: bool = False
    sources: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class CondaPlatform:
    platform: str
    subdir: str
    archspec: str
    virtual: tuple[str, ...]
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class CondaPackage:
    name: str
    conda: str
    build_cuda: str | None = None
    build_cpu: str | None = None
    unverified: bool = False
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class CondaFacts:
    platforms: Mapping[str, CondaPlatform]
    packages: Mapping[str, CondaPackage]
    cuda_package: str
    cuda_pin: str
    defaults: Mapping[str, str]
    # sources of the [cuda] and [defaults] tables
    sources: tuple[str, ...] = ()

    def conda_name(self, name: str) -> str:
        row = self.packages.get(name)
        return row.conda if row is not None else name


@dataclass(frozen=True)
class Matrix:
    version: str
    directories: tuple[Path, ...]
    sources: Mapping[str, Source]
    torch: tuple[TorchRelease, ...]  # newest first
    builds: Mapping[tuple[str, str], Build]  # (series, variant) -> build
    cuda_families: Mapping[int, CudaFamily]
    toolkits: tuple[CudaToolkit, ...]
    gpus: Mapping[ComputeCapability, GpuArch]
    companions: Mapping[Version, CompanionPair]
    transformers: tuple[TransformersRelease, ...]  # newest first
    rocm_platforms: frozenset[str]
    # platforms whose wheels carry no local version label (+cpu, +cu128) on the download index
    unlabelled_platforms: frozenset[str]
    # packages torch wheels of the PyTorch download index require that only that index serves
    index_bound_packages: tuple[str, ...]
    # what the choices are called on conda channels; None: the matrix has no conda.toml
    conda: CondaFacts | None = None
    # sha256 of the matrix files (resolver.matrix.cache.matrix_digest); "" for a hand-made matrix
    digest: str = ""

    def transformers_release(self, version: Version) -> TransformersRelease | None:
        return next((t for t in self.transformers if t.version == version), None)

    def gpu(self, cc: ComputeCapability) -> GpuArch | None:
        """The architecture row for a compute capability, also found by an alias (10.1 -> 11.0)."""
        found = self.gpus.get(cc)
        if found is not None:
            return found
        return next((g for g in self.gpus.values() if cc in g.aliases), None)

    @property
    def tegra_rule(self) -> TegraRule:
        """The integrated parts for a build of unknown CUDA (none counted as unified)."""
        return self.tegra_rule_for(None)

    def tegra_rule_for(self, cuda: Version | None) -> TegraRule:
        """The integrated parts as a build of CUDA `cuda` sees them: a part unified from that CUDA
        on runs same-major cubins like any other GPU."""
        tegra = frozenset(
            cc
            for cc, gpu in self.gpus.items()
            if gpu.tegra and (gpu.unified_from_cuda is None or cuda is None or cuda < gpu.unified_from_cuda)
        )
        aliases = frozenset(frozenset({cc, *gpu.aliases}) for cc, gpu in self.gpus.items() if gpu.aliases)
        return TegraRule(tegra=tegra | frozenset(a for g in aliases for a in g), aliases=aliases)

    def build(self, release: TorchRelease, variant: str) -> Build | None:
        return self.builds.get((release.series, variant))

    def release(self, version: Version) -> TorchRelease | None:
        return next((r for r in self.torch if r.version == version), None)

    def toolkit(self, version: Version) -> CudaToolkit | None:
        """The toolkit row for a variant's CUDA version (12.8 matches 12.8.0)."""
        rows = [t for t in self.toolkits if t.version.release[:2] == version.release[:2]]
        return min(rows, key=lambda t: t.version) if rows else None

    def driver_floor(self, cuda: Version, os_name: str) -> DriverVersion | None:
        """Minimum driver a build of CUDA `cuda` needs on `os_name`; None if unknown."""
        family = self.cuda_families.get(cuda.major)
        if family is not None and family.minor_version_compatibility:
            return family.min_driver.get(os_name)
        toolkit = self.toolkit(cuda)
        if toolkit is not None:
            return toolkit.driver.get(os_name)
        return family.min_driver.get(os_name) if family else None

    def driver_floor_bound(self, cuda: Version, os_name: str) -> DriverVersion | None:
        """What bounds an unknown floor from below: the highest known floor of an older CUDA major
        on that OS (a newer CUDA major never runs on an older driver). None if nothing is known."""
        known = [
            family.min_driver[os_name]
            for major, family in self.cuda_families.items()
            if major < cuda.major and os_name in family.min_driver
        ]
        return max(known) if known else None
