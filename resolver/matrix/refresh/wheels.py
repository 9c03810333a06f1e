"""Wheel file names and METADATA read into matrix facts (pure: no index, no files)."""

from __future__ import annotations

import email.parser
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from resolver.index.listing import IndexFile
from resolver.matrix.model import PLATFORMS, variant_kind
from resolver.matrix.vocab import Variant, python_key
from resolver.matrix.wheeltags import tag_platforms, tag_python


@dataclass(frozen=True)
class Wheel:
    """One listed wheel, its tags read into matrix terms."""

    file: IndexFile
    version: Version
    # platform -> floor of this wheel there (lowest of its tags); None where the tag has none
    platforms: Mapping[str, Version | None]
    pythons: frozenset[str]

    @property
    def public(self) -> Version:
        return Version(self.version.public)

    @property
    def local(self) -> str | None:
        return self.version.local


def read_wheel(file: IndexFile) -> Wheel:
    """Raises InvalidWheelFilename for a name that is not a wheel's."""
    _name, version, _build, tags = parse_wheel_filename(file.filename)
    platforms: dict[str, Version | None] = {}
    pythons: set[str] = set()
    for tag in tags:
        python = tag_python(tag.interpreter, tag.abi)
        if python is not None:
            pythons.add(python)
        for platform, floor in tag_platforms(tag.platform):
            if platform not in platforms:
                platforms[platform] = floor
            else:
                known = platforms[platform]
                platforms[platform] = (
                    floor if known is None or (floor is not None and floor < known) else known
                )
    return Wheel(file, version, platforms, frozenset(pythons))


def python_sort_key(python: str) -> tuple[int, int, bool]:
    return python_key(python)


def variant_sort_key(variant: str) -> tuple[int, Version]:
    """cpu, then CUDA ascending, then ROCm ascending: the order torch.toml lists variants in."""
    parsed = Variant.of(variant)
    return parsed.listing_key if parsed else (0, Version("0"))


@dataclass(frozen=True)
class PlatformFacts:
    python: Mapping[str, tuple[str, ...]]  # platform -> Pythons, in PLATFORMS order
    glibc_min: Mapping[str, Version]  # CPU arch -> highest floor among the wheels
    macos_min: Mapping[str, Version]  # CPU arch -> the lowest floor among the wheels
    # Linux arches with wheels whose tags give no glibc floor (plain linux_* tags)
    unfloored: frozenset[str] = frozenset()
    # CPU arch -> Python -> floor of that Python's wheel where it is above the arch's macos_min
    macos_min_python: Mapping[str, Mapping[str, Version]] = field(default_factory=dict)


def platform_facts(wheels: Iterable[Wheel]) -> PlatformFacts:
    """Pythons per platform and floors per CPU arch. A glibc floor is the highest of the wheels'
    floors (the one every listed wheel satisfies); a macOS floor belongs to each wheel: the lowest
    is the arch's, and the Pythons whose wheels are tagged higher are listed apart."""
    python: dict[str, set[str]] = {}
    glibc: dict[str, Version] = {}
    macos: dict[str, Version] = {}
    mac_python: dict[str, dict[str, Version]] = {}
    linux_arches: set[str] = set()
    for wheel in wheels:
        for platform, floor in wheel.platforms.items():
            if platform not in PLATFORMS:
                continue
            python.setdefault(platform, set()).update(wheel.pythons)
            os_name, arch = platform.split("-", 1)
            if os_name == "linux":
                linux_arches.add(arch)
                if floor is not None and (arch not in glibc or floor > glibc[arch]):
                    glibc[arch] = floor
            if os_name == "macos" and floor is not None:
                for python_tag in wheel.pythons:
                    known = mac_python.setdefault(arch, {}).get(python_tag)
                    mac_python[arch][python_tag] = floor if known is None else min(known, floor)
    ordered = {p: tuple(sorted(python[p], key=python_sort_key)) for p in PLATFORMS if python.get(p)}
    for arch, floors in mac_python.items():
        macos[arch] = min(floors.values())
    above = {
        arch: {
            p: f for p, f in sorted(floors.items(), key=lambda kv: python_sort_key(kv[0])) if f > macos[arch]
        }
        for arch, floors in mac_python.items()
    }
    return PlatformFacts(
        ordered, glibc, macos, frozenset(linux_arches - set(glibc)), {a: f for a, f in above.items() if f}
    )


def wheel_variant(wheel: Wheel, unlabelled: frozenset[str]) -> str | None:
    """The variant a PyTorch-index wheel belongs to: its local label (`+cu128`), or cpu for the
    unlabelled wheels of the platforms that carry no label (macOS)."""
    local = wheel.local
    if local is not None:
        return local if variant_kind(local) is not None else None
    if wheel.platforms and set(wheel.platforms) <= unlabelled:
        return "cpu"
    return None


# --- METADATA (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    requires_python: str | None
    requires_dist: tuple[str, ...]


def parse_metadata(text: str) -> Metadata:
    message = email.parser.HeaderParser().parsestr(text)
    requires = tuple(str(v) for v in message.get_all("Requires-Dist") or ())
    python = message.get("Requires-Python")
    return Metadata(str(python).strip() if python else None, requires)


_MARKER_ENV = {
    "linux-x86_64": ("Linux", "x86_64", "linux", "posix"),
    "linux-aarch64": ("Linux", "aarch64", "linux", "posix"),
    "windows-x86_64": ("Windows", "AMD64", "win32", "nt"),
    "macos-arm64": ("Darwin", "arm64", "darwin", "posix"),
    "macos-x86_64": ("Darwin", "x86_64", "darwin", "posix"),
}


def _requirements(lines: Iterable[str]) -> list[Requirement]:
    out = []
    for line in lines:
        try:
            out.append(Requirement(line))
        except InvalidRequirement:
            continue  # one unreadable line does not hide the rest
    return out


def _marker_true(requirement: Requirement, environment: Mapping[str, str]) -> bool:
    if requirement.marker is None:
        return True
    try:
        return bool(requirement.marker.evaluate(dict(environment)))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


# The CUDA runtime a CUDA wheel of torch pins, by the names torch has used for it.
_CUDA_RUNTIME = re.compile(r"^(nvidia-cuda-runtime(-cu\d+)?|cuda-toolkit)$")


def cuda_variant(requires_dist: Sequence[str], platform: str, python: str) -> str | None:
    """The cuXY variant of a torch wheel from its pinned CUDA runtime (None: a CPU wheel)."""
    system, machine, sys_platform, os_name = _MARKER_ENV.get(platform, _MARKER_ENV["linux-x86_64"])
    bare = python.rstrip("t")
    environment = {
        "platform_system": system,
        "platform_machine": machine,
        "sys_platform": sys_platform,
        "os_name": os_name,
        "python_version": bare,
        "python_full_version": f"{bare}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    for requirement in _requirements(requires_dist):
        if not _CUDA_RUNTIME.match(canonicalize_name(requirement.name)):
            continue
        if not _marker_true(requirement, environment):
            continue
        for spec in requirement.specifier:
            if spec.operator in ("==", "==="):
                try:
                    version = Version(spec.version.removesuffix(".*"))
                except InvalidVersion:
                    continue
                return f"cu{version.major}{version.minor}"
    return None


def torch_extra(requires_dist: Sequence[str]) -> str:
    """The specifier transformers' `torch` extra puts on torch ("" = any torch)."""
    spec = SpecifierSet()
    for requirement in _requirements(requires_dist):
        if canonicalize_name(requirement.name) != "torch" or requirement.marker is None:
            continue
        if "extra" not in str(requirement.marker):
            continue
        if _marker_true(requirement, {"extra": "torch"}):
            spec &= requirement.specifier
    return str(spec)


def torch_pin(requires_dist: Sequence[str]) -> SpecifierSet | None:
    """A companion's own requirement on torch (not one behind an extra); None if it has none."""
    found: SpecifierSet | None = None
    for requirement in _requirements(requires_dist):
        if canonicalize_name(requirement.name) != "torch":
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        found = requirement.specifier if found is None else found & requirement.specifier
    return found


def exact_pin(spec: SpecifierSet | None) -> Version | None:
    """`==2.7.1` (or `==2.7.1+cu126`) -> 2.7.1; any other specifier -> None."""
    if spec is None:
        return None
    items = list(spec)
    if len(items) != 1 or items[0].operator not in ("==", "===") or "*" in items[0].version:
        return None
    try:
        return Version(Version(items[0].version).public)
    except InvalidVersion:
        return None
