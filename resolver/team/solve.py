"""The team: declared targets, machine classes, one version set for every target.

A target is a named host (a host file, an inline host table, or a machine class grouped from an
inventory of exported host files). The team solve finds one (torch, torchvision, torchaudio,
transformers) set valid on every target, newest first, each target keeping its own best variant.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.config import TeamConfig, check_python, check_variant, labelled_constraints, reject_unknown_keys
from resolver.errors import (
    ConfigError,
    HostFileError,
    InputError,
    Location,
    NoCompatibleCombination,
)
from resolver.host.gpunames import GpuNames
from resolver.host.hostfile import HostValues, host_from_mapping, read_host_file, read_host_values
from resolver.host.model import ComputeCapability, DriverVersion, Host
from resolver.matrix.model import Matrix
from resolver.matrix.products import gpu_names
from resolver.solve.reasons import Reason, Rejection, SmallestSplit, TargetBound, TargetUnsolvable
from resolver.solve.request import Request, tighten
from resolver.solve.search import Resolution, explore, solve
from resolver.solve.transformers import TransformersFit

TARGET_KEYS = ("host", "constraints", "variant", "python")


@dataclass(frozen=True)
class Target:
    name: str
    host: Host
    constraints: Mapping[str, SpecifierSet] = dataclasses.field(default_factory=dict)
    variant: str | None = None
    python: str | None = None
    origin: str = ""
    members: int = 1  # hosts of the inventory this target stands for


# --- machine classes -------------------------------------------------------------------------


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
    return _machine_class(_class_key(host, bands))


_ClassKey = tuple[str, str, str, str, str, tuple[ComputeCapability, ...], tuple[str, ...], bool]


def _class_key(host: Host | HostValues, bands: Bands) -> _ClassKey:
    """A machine class's fields as a plain tuple (cheap to hash, for grouping a fleet)."""
    # ComputeCapability orders as (major, minor), as the versions "8.6" < "12.0" do.
    ccs = tuple(sorted({g.cc for g in host.gpus if g.vendor == "nvidia"}))
    gfx = tuple(sorted({str(g.gfx_target) for g in host.gpus if g.vendor == "amd" and g.gfx_target}))
    intel = any(g.vendor == "intel" for g in host.gpus)
    python = host.python or ""
    return (host.os, host.arch, bands.libc_band(host), python, bands.driver_band(host), ccs, gfx, intel)


def _machine_class(key: _ClassKey) -> MachineClass:
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


@dataclass
class _Group:
    weakest: HostValues
    weakness: tuple[Any, ...]
    members: int = 1


def group_inventory(
    paths: Iterable[str], bands: Bands, missing_hint: str, names: GpuNames | None = None
) -> dict[MachineClass, tuple[Host, int]]:
    """Read host files one at a time into their machine classes: each class's weakest member
    (the first of equally weak ones) and its number of members, what `group_hosts` and
    `representative` give over all the hosts, without holding them or making a Host of each.
    Every file is checked in full; a bad one stops the read with the HostFileError naming it."""
    groups: dict[_ClassKey, _Group] = {}
    for path in paths:
        host = read_host_values(path, missing_hint=missing_hint, gpu_names=names)
        key = _class_key(host, bands)
        weak = weakness(host)
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(host, weak)
            continue
        group.members += 1
        if weak < group.weakness:
            group.weakest, group.weakness = host, weak
    classes = {_machine_class(key): (group.weakest.host(), group.members) for key, group in groups.items()}
    return dict(sorted(classes.items()))


def inventory_paths(base: Path, patterns: Iterable[str]) -> list[str]:
    """The files the globs match, each once, in path order (`sorted` over `Path`s)."""
    found = {f for p in patterns for f in glob.glob(str(base / p))}
    if os.name != "posix":
        return [str(p) for p in sorted({Path(f) for f in found})]
    # glob answers a pattern Path has normalised with normalised paths, so on POSIX a string is
    # its Path, and comparing its parts orders it as Path does, without making 50,000 Paths.
    return sorted(found, key=_posix_order)


def _posix_order(path: str) -> str:
    """`path` with its separators as NUL, the lowest character (never in a path): strings so
    mapped compare as the lists of their parts do, and as Path compares them."""
    if path.startswith("/"):  # the root is a part of its own, "/"
        return "/\0" + path[1:].replace("/", "\0")
    return path.replace("/", "\0")


# --- reading targets from the team file ------------------------------------------------------


def _target_from_table(name: str, table: Any, team: TeamConfig, base: Path, names: GpuNames) -> Target:
    origin = str(team.path) if team.path else "envs/team.toml"
    key = f"targets.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(
            "a target must be a table",
            location=Location(origin, key=key),
            value=table,
            hint=f'write [{key}] with host = "hosts/NAME.json" (a host file) or an inline host table',
        )
    reject_unknown_keys(table, TARGET_KEYS, origin, f"{key}.", f"a target takes {', '.join(TARGET_KEYS)}")
    raw_host = table.get("host")
    if isinstance(raw_host, str):
        host = read_host_file(
            base / raw_host,
            missing_hint=f"check `host` of [{key}] in {origin} (a path relative to the team file's folder)",
            gpu_names=names,
        )
    elif isinstance(raw_host, Mapping):
        try:
            host = host_from_mapping(raw_host, origin, names)
        except HostFileError as exc:
            # One dotted key: "team.toml [targets.a100.host.arch]".
            inner = exc.location.key if exc.location is not None and exc.location.key else None
            raise HostFileError(
                exc.message,
                location=Location(origin, key=f"{key}.host" + (f".{inner}" if inner else "")),
                value=exc.value,
                hint=exc.hint,
            ) from None
    else:
        raise ConfigError(
            "a target needs `host`: a host file path or an inline host table",
            location=Location(origin, key=f"{key}.host"),
            value=raw_host,
            hint='e.g. host = "hosts/a100.json" (made with `stack-resolver detect --json`)',
        )
    texts = table.get("constraints", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ConfigError(
            "constraints must be a list of strings",
            location=Location(origin, key=f"{key}.constraints"),
            value=texts,
            hint='e.g. constraints = ["torch<2.8"]',
        )
    constraints, pinned_variant = labelled_constraints(texts, origin, f"{key}.constraints")
    variant = table.get("variant", pinned_variant)
    python = table.get("python")
    for field_name, value, check, example in (
        ("variant", variant, check_variant, "cu126"),
        ("python", python, check_python, "3.11"),
    ):
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise InputError(f"'{field_name}' must be a string")
            check(value)
        except InputError as exc:
            raise ConfigError(
                exc.message.removeprefix("--python: "),
                location=Location(origin, key=f"{key}.{field_name}"),
                value=value,
                hint=f'e.g. {field_name} = "{example}"',
            ) from None
    return Target(
        name=name,
        host=host,
        constraints=constraints,
        variant=check_variant(variant) if variant else None,
        python=check_python(python) if python else None,
        origin=f"{origin} [{key}]",
    )


def load_targets(team: TeamConfig, matrix: Matrix) -> tuple[Target, ...]:
    """Declared targets, then one target per machine class of the inventory. A GPU of their hosts
    may be given by a product name this matrix lists."""
    origin = str(team.path) if team.path else "envs/team.toml"
    base = team.path.parent if team.path else Path("envs")
    raw = team.raw.get("targets", {})
    if not isinstance(raw, Mapping):
        raise ConfigError("`targets` must be a table of tables", location=Location(origin, key="targets"))
    names = gpu_names(matrix)
    targets = [_target_from_table(str(name), table, team, base, names) for name, table in raw.items()]
    inventory = team.raw.get("inventory")
    if inventory is not None:
        patterns = [inventory] if isinstance(inventory, str) else inventory
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(
                "`inventory` must be a glob or a list of globs",
                location=Location(origin, key="inventory"),
                value=inventory,
                hint='e.g. inventory = "hosts/*.json"',
            )
        paths = inventory_paths(base, patterns)
        groups = group_inventory(paths, Bands.from_matrix(matrix), f"check `inventory` in {origin}", names)
        declared = {t.name for t in targets}
        for klass, (weakest, members) in groups.items():
            name = klass.name()
            if name in declared:
                continue
            targets.append(Target(name=name, host=weakest, origin=f"{origin} [inventory]", members=members))
    return tuple(targets)


# --- host -> target ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    target: Target | None
    why: str
    nearest: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (target name, differences)


def match_target(host: Host, targets: Sequence[Target], matrix: Matrix) -> Match:
    bands = Bands.from_matrix(matrix)
    mine = machine_class(host, bands)
    scored = []
    for target in targets:
        theirs = machine_class(target.host, bands)
        scored.append((target, mine.differences(theirs)))
    exact = [t for t, diff in scored if not diff]
    if len(exact) == 1:
        return Match(exact[0], f"same machine class ({mine.name()})")
    ranked = sorted(scored, key=lambda item: len(item[1]))
    nearest = tuple((t.name, tuple(diff)) for t, diff in ranked[:3])
    if len(exact) > 1:
        names = ", ".join(t.name for t in exact)
        return Match(None, f"several targets match this machine ({names}); pick one with --target", nearest)
    return Match(None, f"no declared target matches this machine class ({mine.name()})", nearest)


# --- the team solve ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamResolution:
    versions: Mapping[str, str | None]
    targets: Mapping[str, Resolution]


def target_request(base: Request, target: Target) -> Request:
    return dataclasses.replace(
        tighten(base, target.constraints),
        variant=target.variant or base.variant,
        python=target.python or base.python,
    )


def _pin(request: Request, name: str, version: Version) -> Request:
    return tighten(request, {name: SpecifierSet(f"=={version}")})


def _feasible(target: Target, matrix: Matrix, request: Request) -> tuple[list[Resolution], list[Rejection]]:
    found = explore(target.host, matrix, request, exhaustive=True)
    return list(found.best_first()), list(found.rejected_best_first())


def solve_team(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    unavailable: Mapping[str, Mapping[tuple[str, str], Reason]] | None = None,
) -> TeamResolution:
    """`unavailable`: per target name, the (torch version, variant) builds its index lacks."""
    if not targets:
        raise InputError(
            "the team declares no targets",
            hint='add [targets.NAME] tables with host = "hosts/NAME.json", or inventory = "hosts/*.json"',
        )
    requests = {t.name: target_request(base, t) for t in targets}
    for name, missing in (unavailable or {}).items():
        if name in requests:
            merged = {**requests[name].unavailable, **missing}
            requests[name] = dataclasses.replace(requests[name], unavailable=merged)
    feasible: dict[str, list[Resolution]] = {}
    rejected: dict[str, list[Rejection]] = {}
    for target in targets:
        feasible[target.name], rejected[target.name] = _feasible(target, matrix, requests[target.name])
    versions_by_target = {name: {r.release.version for r in res} for name, res in feasible.items()}
    common = set.intersection(*versions_by_target.values()) if versions_by_target else set()
    for torch_version in sorted(common, reverse=True):
        # The transformers every target can take with this torch; the newest of them for all.
        shared: set[Version] | None = None
        for target in targets:
            rows = {
                row.version for row in _transformers_for(target, matrix, requests[target.name], torch_version)
            }
            shared = rows if shared is None else shared & rows
        if not shared:
            continue
        transformers = max(shared)
        chosen: dict[str, Resolution] = {}
        for target in targets:
            pinned = _pin(_pin(requests[target.name], "torch", torch_version), "transformers", transformers)
            chosen[target.name] = solve(target.host, matrix, pinned)
        first = next(iter(chosen.values()))
        versions: dict[str, str | None] = {
            "torch": str(torch_version),
            "torchvision": str(first.torchvision) if first.torchvision else None,
            "torchaudio": str(first.torchaudio) if first.torchaudio else None,
            "transformers": str(transformers),
        }
        if base.python:
            versions["python"] = base.python
        return TeamResolution(versions, chosen)
    raise NoCompatibleCombination(
        reasons=_pull_apart(targets, feasible, rejected), matrix=matrix, request=base
    )


def _transformers_for(target: Target, matrix: Matrix, request: Request, torch_version: Version) -> list[Any]:
    """Transformers rows valid for this target's Python with this torch (the solver's own rule)."""
    try:
        best = solve(target.host, matrix, _pin(request, "torch", torch_version))
    except NoCompatibleCombination:
        return []
    return TransformersFit(matrix.transformers, request, best.python).fitting(torch_version)


def _pull_apart(
    targets: Sequence[Target],
    feasible: Mapping[str, list[Resolution]],
    rejected: Mapping[str, list[Rejection]],
) -> tuple[Reason, ...]:
    """Which targets pull apart and why (as data), and the smallest split."""
    causes: list[Reason] = [TargetUnsolvable(t.name) for t in targets if not feasible[t.name]]
    ranges: dict[str, tuple[Version, Version]] = {}
    for target in targets:
        versions = sorted({r.release.version for r in feasible[target.name]})
        if versions:
            ranges[target.name] = (versions[0], versions[-1])
    # Only the binding bounds pull the team apart: ceilings below the highest floor, floors above
    # the lowest ceiling.
    highest_floor = max((low for low, _ in ranges.values()), default=None)
    lowest_ceiling = min((high for _, high in ranges.values()), default=None)
    for target in targets:
        if target.name not in ranges or highest_floor is None or lowest_ceiling is None:
            continue
        low, high = ranges[target.name]
        above = [r for r in rejected[target.name] if r.torch > high]
        below = [r for r in rejected[target.name] if r.torch < low]
        if above and high < highest_floor:
            beyond = min(r.torch for r in above)
            why = tuple(r for r in rejected[target.name] if r.torch == beyond)
            causes.append(TargetBound(target.name, "ceiling", high, why))
        if below and low > lowest_ceiling:
            beyond = max(r.torch for r in below)
            why = tuple(r for r in rejected[target.name] if r.torch == beyond)
            causes.append(TargetBound(target.name, "floor", low, why))
    # Smallest split: greedy stabbing of the feasible sets, lowest ceiling first (optimal for
    # intervals, which these nearly always are).
    remaining = {name: {r.release.version for r in feasible[name]} for name in ranges}
    groups: list[tuple[Version, tuple[str, ...]]] = []
    while remaining:
        name = min(remaining, key=lambda n: max(remaining[n]))
        pick = max(remaining[name])
        members = tuple(sorted(n for n, vs in remaining.items() if pick in vs))
        groups.append((pick, members))
        for member in members:
            del remaining[member]
    if len(groups) > 1:
        causes.append(SmallestSplit(tuple(groups)))
    return tuple(causes)
