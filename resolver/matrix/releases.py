"""Row readers for torch.toml and builds.toml, and the builds the matrix implies (cpu, ROCm)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from packaging.version import Version

from resolver.host.hostfile import parse_gfx_target
from resolver.matrix.arch import ArchTarget
from resolver.matrix.located import (
    ARCH_HINT,
    PLATFORM_HINT,
    PYTHON_HINT,
    VARIANT_HINT,
    File,
    KeyPath,
    Origin,
    Row,
    cite,
    parse_python,
    parse_version,
    short,
)
from resolver.matrix.model import (
    PLATFORMS,
    Build,
    TorchRelease,
    variant_cuda,
    variant_kind,
)
from resolver.matrix.rows import State

_T = TypeVar("_T")
_SERIES = re.compile(r"^\d+\.\d+$")
GLIBC_ARCHES = ("x86_64", "aarch64")
MACOS_ARCHES = ("arm64", "x86_64")

_RELEASE_KEYS = (
    "version",
    "date",
    "requires_python",
    "variants",
    "glibc_min",
    "macos_min",
    "macos_min_python",
    "python",
    "default_variant",
    "source",
    "note",
    "unverified",
    "replace",
)
_BUILD_KEYS = (
    "series",
    "variant",
    "arch",
    "gfx",
    "unverified",
    "unverified_platforms",
    "indirect",
    "indirect_platforms",
    "source",
    "note",
    "replace",
)


def parse_series(text: str) -> str:
    if not _SERIES.match(text):
        raise ValueError(text)
    return text


def platform_table(row: Row, key: str, sub_parser: Callable[[str, str], _T | None]) -> dict[str, _T]:
    """A table keyed by platform; values parsed by `sub_parser(platform, value)`."""
    table = row.table(key)
    out: dict[str, _T] = {}
    for platform in table or {}:
        if platform not in PLATFORMS:
            row.fail((key, platform), "unknown platform", platform, PLATFORM_HINT)
            continue
        value = sub_parser(platform, key)
        if value is not None:
            out[platform] = value
    return out


def read_release(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("release", index)
    row = Row(
        file,
        path,
        data,
        "[[release]]",
        _RELEASE_KEYS,
        ("version", "date", "requires_python", "variants", "python", "default_variant"),
    )
    version = row.version("version")
    day = row.date("date")
    requires = row.spec("requires_python")
    variants = row.strings("variants") or []
    seen: set[str] = set()
    for variant in variants:
        if variant_kind(variant) is None:
            row.fail(("variants",), "not a variant name", variant, VARIANT_HINT)
        elif variant in seen:
            row.fail(("variants",), "variant listed twice", variant, "list each variant once")
        seen.add(variant)

    def pythons(platform: str, key: str) -> tuple[str, ...] | None:
        items = row.strings(key, (platform,))
        if items is None:
            return None
        out = []
        for item in items:
            parsed = row.parse(key, item, parse_python, "a Python version", PYTHON_HINT, (platform,))
            if parsed is not None:
                out.append(parsed)
        if len(set(out)) != len(out):
            row.fail((key, platform), "Python version listed twice", items, "list each version once")
        return tuple(out)

    def default(platform: str, key: str) -> str | None:
        value: str | None = row.typed(key, str, "a variant name", (platform,))
        if value is not None and variant_kind(value) is None:
            row.fail((key, platform), "not a variant name", value, VARIANT_HINT)
            return None
        return value

    python = platform_table(row, "python", pythons)
    defaults = platform_table(row, "default_variant", default)
    for platform, variant in defaults.items():
        if platform not in python and row.table("python") is not None:
            row.fail(
                ("default_variant", platform),
                "default_variant names a platform without wheels",
                platform,
                "add its Python list to [release.python], or drop this line",
            )
        elif variant not in variants and variants:
            row.fail(
                ("default_variant", platform),
                "default variant is not one of the release's variants",
                variant,
                "add it to variants, or correct default_variant",
            )
    for platform in python:
        if platform not in defaults and row.table("default_variant") is not None:
            row.fail(
                ("default_variant",),
                f"no default_variant for {platform}, which has wheels",
                None,
                f'add {platform} = "cpu" (or the variant PyPI serves there)',
            )
    glibc = arch_versions(row, "glibc_min", GLIBC_ARCHES, "glibc")
    linux_arches = {p.split("-", 1)[1] for p in python if p.startswith("linux-")}
    given = keys_of(row.raw("glibc_min"))
    for arch in sorted(linux_arches - given):
        if isinstance(row.raw("glibc_min"), dict) or "glibc_min" not in row.data:
            row.fail(
                (),
                f"Linux {arch} wheels but no glibc floor for {arch}",
                None,
                f'add glibc_min = {{ {arch} = "2.28" }} (the floor of the wheel tag)',
                key="glibc_min",
            )
    for arch in sorted(set(glibc) - linux_arches):
        row.fail(
            ("glibc_min", arch),
            f"glibc floor for {arch}, which has no Linux wheels",
            arch,
            "drop it, or add the platform to [release.python]",
        )
    macos = arch_versions(row, "macos_min", MACOS_ARCHES, "macOS")
    mac_arches = {p.split("-", 1)[1] for p in python if p.startswith("macos-")}
    given_mac = keys_of(row.raw("macos_min"))
    for arch in sorted(mac_arches - given_mac):
        row.fail(
            (),
            f"macOS {arch} wheels but no macos_min for {arch}",
            None,
            f'add macos_min = {{ {arch} = "11.0" }}',
            key="macos_min",
        )
    for arch in sorted(set(macos) - mac_arches):
        row.fail(
            ("macos_min", arch),
            f"macos_min for {arch}, which has no macOS wheels",
            arch,
            "drop it, or add the platform to [release.python]",
        )
    wheel_floors = _macos_wheel_floors(row, python, macos)
    if requires is not None:
        for platform, items in python.items():
            for item in items:
                if not requires.contains(_python_version(item), prereleases=True):
                    row.fail(
                        ("python", platform),
                        f"Python {item} is outside requires_python {requires}",
                        item,
                        "drop the version, or correct requires_python",
                    )
    sources = cite(row, state.citations)
    note = row.text("note")
    unverified = row.flag("unverified")
    replace = row.flag("replace")
    if row.ok and version is not None and day is not None and requires is not None:
        release = TorchRelease(
            version=version,
            date=day,
            requires_python=requires,
            python=python,
            glibc_min=glibc,
            macos_min=min(macos.values()) if macos else None,
            variants=tuple(variants),
            default_variant=defaults,
            sources=sources,
            unverified=unverified,
            note=note,
            macos_min_arch=macos,
            macos_min_python=wheel_floors,
        )
        state.releases.add(version, release, Origin(file, path), replace, f"torch {version}")


def _macos_wheel_floors(
    row: Row, python: Mapping[str, tuple[str, ...]], macos: Mapping[str, Version]
) -> dict[str, dict[str, Version]]:
    """`[release.macos_min_python.<arch>]`: Python tag -> macOS floor of the wheels whose tag is
    higher than the arch's `macos_min` (e.g. 2.10.0's cp314 wheels are macosx_14_0)."""
    key = "macos_min_python"
    table = row.table(key)
    out: dict[str, dict[str, Version]] = {}
    for arch, floors in (table or {}).items():
        platform = f"macos-{arch}"
        if arch not in MACOS_ARCHES or platform not in python:
            row.fail((key, arch), "macos_min_python for an arch without macOS wheels", arch, "drop it")
            continue
        if not isinstance(floors, dict):
            row.fail((key, arch), "expected a table of Python version -> macOS version", short(floors))
            continue
        for tag in floors:
            where = (arch, tag)
            if tag not in python[platform]:
                row.fail(
                    (key, *where), f"no {platform} wheel for Python {tag}", tag, "list it in [release.python]"
                )
                continue
            text: str | None = row.typed(key, str, "a version string", where)
            floor = row.parse(
                key, text, parse_version, "a version", "write the macOS version, e.g. 14.0", where
            )
            if floor is None:
                continue
            if arch in macos and floor <= macos[arch]:
                row.fail(
                    (key, *where),
                    f"not above macos_min {macos[arch]} for {arch}",
                    text,
                    "list only the wheels whose floor is higher than the release's",
                )
                continue
            out.setdefault(arch, {})[tag] = floor
    return out


def keys_of(value: object) -> set[str]:
    return {str(key) for key in value} if isinstance(value, dict) else set()


def arch_versions(row: Row, key: str, arches: Sequence[str], what: str) -> dict[str, Version]:
    table = row.table(key)
    out: dict[str, Version] = {}
    for arch, value in (table or {}).items():
        if arch not in arches:
            row.fail((key, arch), f"unknown CPU arch for a {what} floor", arch, "one of " + ", ".join(arches))
            continue
        text: str | None = row.typed(key, str, "a version string", (arch,))
        parsed = row.parse(
            key, text, parse_version, "a version", f"write the {what} version, e.g. 2.28", (arch,)
        )
        if parsed is not None:
            out[arch] = parsed
        del value
    return out


def read_build(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("build", index)
    row = Row(file, path, data, "[[build]]", _BUILD_KEYS, ("series", "variant", "arch"))
    series = row.parse(
        "series", row.text("series"), parse_series, "a release series", 'write MAJOR.MINOR, e.g. "2.7"'
    )
    variant = row.text("variant")
    kind = variant_kind(variant) if variant is not None else None
    if variant is not None and kind is None:
        row.fail(("variant",), "not a variant name", variant, VARIANT_HINT)
    elif kind == "cpu":
        row.fail(
            ("variant",),
            "cpu builds are implied by torch.toml and need no [[build]] row",
            variant,
            "drop this row",
        )

    def targets(platform: str, key: str) -> tuple[ArchTarget, ...] | None:
        items = row.strings(key, (platform,))
        if items is None:
            return None
        out = []
        for item in items:
            target = row.parse(key, item, ArchTarget.parse, "an arch target", ARCH_HINT, (platform,))
            if target is None:
                continue
            if target.ptx and platform.startswith("windows-"):
                row.fail(
                    (key, platform),
                    "Windows wheels carry no PTX",
                    item,
                    f'write "{target.cc}" (PTX is embedded only in Linux builds)',
                )
            out.append(target)
        if len({t.cc for t in out}) != len(out):
            row.fail((key, platform), "arch listed twice", items, "list each compute capability once")
        if kind in ("rocm", "xpu") and out:
            row.fail((key, platform), f"a {kind} build has no CUDA arch list", items, "write []")
        return tuple(out)

    def gfx_targets(platform: str, key: str) -> tuple[str, ...] | None:
        items = row.strings(key, (platform,))
        if items is None:
            return None
        out = [
            t
            for item in items
            if (t := row.parse(key, item, parse_gfx_target, "a gfx target", 'e.g. "gfx942"', (platform,)))
        ]
        if len(set(out)) != len(out):
            row.fail((key, platform), "gfx target listed twice", items, "list each target once")
        return tuple(out)

    arch = platform_table(row, "arch", targets)
    gfx = platform_table(row, "gfx", gfx_targets)
    if gfx and kind != "rocm":
        row.fail(("gfx",), "only a ROCm build lists gfx targets", variant, "drop [build.gfx]")
    for platform in sorted(set(gfx) - set(arch)):
        row.fail(
            ("gfx", platform), "gfx targets for a platform without wheels", platform, "add it to [build.arch]"
        )
    if kind == "cuda" and row.table("arch") is not None and not arch and row.ok:
        row.fail(
            ("arch",),
            "a CUDA build needs at least one platform with an arch list",
            None,
            'add e.g. linux-x86_64 = ["8.0", "9.0"]',
        )
    unverified_platforms = row.strings("unverified_platforms") or []
    indirect_platforms = row.strings("indirect_platforms") or []
    for key, listed in (
        ("unverified_platforms", unverified_platforms),
        ("indirect_platforms", indirect_platforms),
    ):
        for platform in listed:
            if platform not in arch:
                row.fail(
                    (key,),
                    f"{key.split('_')[0]} platform has no arch list in this build",
                    platform,
                    "list only platforms under [build.arch]",
                )
    sources = cite(row, state.citations)
    note = row.text("note")
    unverified = row.flag("unverified")
    replace = row.flag("replace")
    if row.ok and series is not None and variant is not None and kind is not None:
        build = Build(
            series=series,
            variant=variant,
            kind=kind,
            cuda=variant_cuda(variant),
            arch=arch,
            unverified=unverified,
            unverified_platforms=frozenset(unverified_platforms),
            sources=sources,
            note=note,
            gfx=gfx,
            indirect=row.flag("indirect"),
            indirect_platforms=frozenset(indirect_platforms),
        )
        state.builds.add((series, variant), build, Origin(file, path), replace, f"{series} {variant}")


def synthesize_builds(state: State) -> None:
    """cpu builds for every release listing cpu, ROCm builds on the ROCm platforms."""
    for release, _ in state.releases.rows.values():
        for variant in release.variants:
            kind = variant_kind(variant)
            if kind not in ("cpu", "rocm"):
                continue
            key = (release.series, variant)
            platforms = set(release.python) if kind == "cpu" else set(release.python) & state.rocm_platforms
            existing = state.builds.rows.get(key)
            if existing is not None:
                build, origin = existing
                if kind == "rocm" and not build.arch:
                    continue
                if kind == "rocm":  # an explicit ROCm row: keep its flags, fill in the platforms
                    platforms |= set(build.arch)
                    arch = {p: () for p in sorted(platforms)}
                    state.builds.rows[key] = (dataclasses.replace(build, arch=arch), origin)
                    continue
                platforms |= set(build.arch)
            build = Build(
                release.series,
                variant,
                kind,
                None,
                {p: () for p in sorted(platforms)},
                sources=release.sources,
            )
            state.builds.rows[key] = (build, existing[1] if existing else Origin(NO_FILE, ()))


NO_FILE = File(Path("<implied>"), 0, "", {}, [])


def _python_version(python: str) -> str:
    return python.rstrip("t") + ".0"
