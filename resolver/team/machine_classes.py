"""Machine classes: what decides a resolution (platform, libc and driver bands, Python, GPUs), the
band edges taken from the matrix, and hosts grouped by class with each class's weakest member."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from resolver.host.hostfile import HostValues
from resolver.host.model import ComputeCapability, DriverVersion, Host
from resolver.matrix.model import Matrix


@dataclass(frozen=True, order=True)
class MachineClass:
    """What decides a resolution: same class, same answer. The GPUs count by what decides which
    builds serve them: an NVIDIA GPU by its compute capability, an AMD GPU by its gfx target (a
    ROCm build must carry it), Intel GPUs by being there (an XPU build)."""

    os: str
    arch: str
    libc_band: str
    python: str
    driver_band: str
    compute_capabilities: tuple[str, ...]
    gfx_targets: tuple[str, ...] = ()
    intel_gpus: bool = False

    def name(self) -> str:
        gpus = [f"sm{cc.replace('.', '')}" for cc in self.compute_capabilities]
        gpus += [*self.gfx_targets, *(["xpu"] if self.intel_gpus else [])]
        py = "py" + self.python.replace(".", "") if self.python else "pyany"
        parts = [f"{self.os}-{self.arch}", "+".join(gpus) or "nogpu", py, self.driver_band]
        if self.libc_band:
            parts.append(self.libc_band)
        return "-".join(p for p in parts if p)

    def differences(self, other: MachineClass) -> list[str]:
        fields = (
            "os",
            "arch",
            "libc_band",
            "python",
            "driver_band",
            "compute_capabilities",
            "gfx_targets",
            "intel_gpus",
        )
        return [
            f"{name}: {getattr(self, name)!s} vs {getattr(other, name)!s}"
            for name in fields
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True)
class Bands:
    """Band edges from the matrix: the driver floors of the CUDA families, the glibc floors."""

    driver_floors: Mapping[str, tuple[tuple[int, ...], ...]]  # os -> sorted floors
    glibc_floors: Mapping[str, tuple[Version, ...]]  # arch -> sorted floors
    # A fleet holds few distinct drivers and glibc versions: each is parsed and banded once.
    _bands: dict[tuple[str, str, str], str] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def from_matrix(cls, matrix: Matrix) -> Bands:
        drivers: dict[str, set[tuple[int, ...]]] = {}
        for family in matrix.cuda_families.values():
            for os_name, floor in family.min_driver.items():
                drivers.setdefault(os_name, set()).add(floor.parts)
        glibc: dict[str, set[Version]] = {}
        for release in matrix.torch:
            for arch, glibc_floor in release.glibc_min.items():
                glibc.setdefault(arch, set()).add(glibc_floor)
        return cls(
            {k: tuple(sorted(v)) for k, v in drivers.items()},
            {k: tuple(sorted(v)) for k, v in glibc.items()},
        )

    def driver_band(self, host: Host | HostValues) -> str:
        """The NVIDIA driver's band; none at all for a host whose GPUs are only AMD or Intel."""
        if not host.nvidia_driver:
            only_others = bool(host.gpus) and all(g.vendor != "nvidia" for g in host.gpus)
            return "" if only_others else "nodriver"
        return self._driver_band(host.os, host.nvidia_driver)

    def libc_band(self, host: Host | HostValues) -> str:
        if host.os != "linux":
            return ""
        if host.libc == "musl":
            return "musl"
        if host.libc_version is None:
            return "glibc?"
        return self._glibc_band(host.arch, host.libc_version)

    def _driver_band(self, os_name: str, driver_text: str) -> str:
        key = ("driver", os_name, driver_text)
        if key not in self._bands:
            driver = DriverVersion.parse(driver_text)
            floors = [f for f in self.driver_floors.get(os_name, ()) if driver.parts >= f]
            self._bands[key] = "drv" + ".".join(str(p) for p in max(floors)) if floors else "drv-old"
        return self._bands[key]

    def _glibc_band(self, arch: str, libc_version: str) -> str:
        key = ("glibc", arch, libc_version)
        if key not in self._bands:
            version = Version(libc_version)
            floors = [f for f in self.glibc_floors.get(arch, ()) if version >= f]
            self._bands[key] = f"glibc{max(floors)}" if floors else "glibc-old"
        return self._bands[key]


def machine_class(host: Host, bands: Bands) -> MachineClass:
    return class_from_key(class_key(host, bands))


ClassKey = tuple[str, str, str, str, str, tuple[ComputeCapability, ...], tuple[str, ...], bool]


def class_key(host: Host | HostValues, bands: Bands) -> ClassKey:
    """A machine class's fields as a plain tuple (cheap to hash, for grouping a fleet)."""
    # ComputeCapability orders as (major, minor), as the versions "8.6" < "12.0" do.
    ccs = tuple(sorted({g.cc for g in host.gpus if g.vendor == "nvidia"}))
    gfx = tuple(sorted({str(g.gfx_target) for g in host.gpus if g.vendor == "amd" and g.gfx_target}))
    intel = any(g.vendor == "intel" for g in host.gpus)
    python = host.python or ""
    return (host.os, host.arch, bands.libc_band(host), python, bands.driver_band(host), ccs, gfx, intel)


def class_from_key(key: ClassKey) -> MachineClass:
    """The machine class `class_key` gave the fields of."""
    os_name, arch, libc_band, python, driver_band, ccs, gfx, intel = key
    return MachineClass(
        os_name, arch, libc_band, python, driver_band, tuple(str(cc) for cc in ccs), gfx, intel
    )


def group_hosts(hosts: Iterable[Host], bands: Bands) -> dict[MachineClass, list[Host]]:
    groups: dict[MachineClass, list[Host]] = {}
    for host in hosts:
        groups.setdefault(machine_class(host, bands), []).append(host)
    return dict(sorted(groups.items()))


def representative(hosts: Sequence[Host]) -> Host:
    """The weakest member stands for the class: lowest driver, lowest glibc, lowest macOS."""
    return min(hosts, key=weakness)


def weakness(host: Host | HostValues) -> tuple[Any, ...]:
    """How weak a member is (lower: weaker): its driver, glibc, macOS version."""
    driver = _driver_parts(host.nvidia_driver) if host.nvidia_driver else ()
    libc = _version(host.libc_version) if host.libc_version else _ZERO
    osv = _version(host.os_version) if host.os == "macos" and host.os_version else _ZERO
    return (driver, libc, osv)


_ZERO = Version("0")
_version = functools.lru_cache(maxsize=1024)(Version)


@functools.lru_cache(maxsize=1024)
def _driver_parts(text: str) -> tuple[int, ...]:
    return DriverVersion.parse(text).parts
