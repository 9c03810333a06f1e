"""New torch releases for torch.toml: the facts the general index and the PyTorch index give for
each, and its [[release]] row; new CUDA builds and companion pairs are proposed with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from packaging.version import Version

from resolver.matrix.model import PLATFORMS, Matrix, TorchRelease, variant_kind
from resolver.matrix.refresh.builds import build_snippet
from resolver.matrix.refresh.companions import companion_releases, refresh_pairs
from resolver.matrix.refresh.edit import (
    PYTORCH_INDEX_SOURCE,
    MatrixFiles,
    build_key,
    build_sort,
    inline_table,
    quote,
    release_key,
    toml_list,
)
from resolver.matrix.refresh.reader import IndexReader, all_yanked, candidate_variants, upload_day
from resolver.matrix.refresh.wheels import (
    PlatformFacts,
    Wheel,
    cuda_variant,
    platform_facts,
    python_sort_key,
    variant_sort_key,
    wheel_variant,
)


@dataclass(frozen=True)
class TorchFacts:
    version: Version
    date: str
    requires_python: str
    platforms: PlatformFacts
    glibc_min: Mapping[str, Version]
    variants: tuple[str, ...]
    default_variant: Mapping[str, str]
    # variant -> platforms with wheels of that variant
    variant_platforms: Mapping[str, frozenset[str]]
    notes: tuple[str, ...] = ()


def refresh_torch(
    matrix: Matrix, files: MatrixFiles, reader: IndexReader, today: date, extra_variants: tuple[str, ...]
) -> list[str]:
    summary: list[str] = []
    general = reader.wheels(reader.general, "torch")
    by_version: dict[Version, list[Wheel]] = {}
    for wheel in general:
        by_version.setdefault(wheel.public, []).append(wheel)
    known = {r.version for r in matrix.torch}
    oldest = min(known) if known else None
    new_versions = []
    for version, wheels in sorted(by_version.items(), reverse=True):
        yanked = all_yanked([w.file for w in wheels])
        if version in known:
            if yanked:
                reader.warnings.append(
                    f"torch {version} is yanked on the general index; torch.toml has no yanked flag: "
                    "review whether to drop the release or mark it unverified"
                )
            continue
        if version.is_prerelease or version.is_devrelease or (oldest is not None and version < oldest):
            continue
        if yanked:
            reader.warnings.append(f"torch {version} is yanked on the general index; not added")
            continue
        new_versions.append(version)

    variant_wheels: dict[str, list[Wheel]] = {}
    if new_versions:
        for variant in candidate_variants(matrix, extra_variants):
            variant_wheels[variant] = reader.wheels(reader.indexes.variant_url(variant), "torch")

    companions = companion_releases(matrix, reader)
    for version in new_versions:
        facts = _torch_facts(matrix, reader, version, by_version[version], variant_wheels, today)
        files.ensure_sources(["pypi_torch", PYTORCH_INDEX_SOURCE], reader, today)
        files.insert("torch.toml", "release", release_key, _release_snippet(facts, today), (facts.version,))
        pythons = sorted({p for ps in facts.platforms.python.values() for p in ps}, key=python_sort_key)
        summary.append(
            f"torch {version}: new release ({', '.join(facts.variants)}; Python {', '.join(pythons)})"
        )
        for variant in facts.variants:
            if variant_kind(variant) != "cuda":
                continue
            series = f"{version.major}.{version.minor}"
            existing = matrix.builds.get((series, variant))
            if existing is not None:
                for platform in sorted(
                    facts.variant_platforms.get(variant, frozenset()) - existing.platforms
                ):
                    reader.warnings.append(
                        f"torch {version} has {variant} wheels for {platform}, which the {series} "
                        f"{variant} build in builds.toml does not list: add its arch list"
                    )
                continue
            if files.has_build(series, variant):
                continue
            snippet, reference = build_snippet(
                matrix,
                series,
                variant,
                facts.variant_platforms.get(variant, frozenset()),
                variant in facts.default_variant.values(),
                today,
            )
            files.insert("builds.toml", "build", build_key, snippet, build_sort(series, variant))
            files.note_build(series, variant)
            summary.append(
                f"torch {series} {variant}: new build, unverified (arch list from {reference}; confirm it)"
            )

    summary += refresh_pairs(matrix, files, reader, companions, new_versions, today)
    return summary


def _torch_facts(
    matrix: Matrix,
    reader: IndexReader,
    version: Version,
    general: list[Wheel],
    variant_wheels: Mapping[str, list[Wheel]],
    today: date,
) -> TorchFacts:
    notes: list[str] = []
    unlabelled = matrix.unlabelled_platforms
    variant_platforms: dict[str, set[str]] = {}
    release_wheels = list(general)
    for variant, wheels in variant_wheels.items():
        for wheel in wheels:
            if wheel.public != version or wheel_variant(wheel, unlabelled) != variant:
                continue
            release_wheels.append(wheel)
            variant_platforms.setdefault(variant, set()).update(p for p in wheel.platforms if p in PLATFORMS)
    facts = platform_facts(release_wheels)
    general_facts = platform_facts(general)

    defaults: dict[str, str] = {}
    requires_python = next((w.file.requires_python for w in general if w.file.requires_python), None)
    for platform, pythons in general_facts.python.items():
        on_platform = [w.file for w in general if platform in w.platforms]
        metadata = reader.metadata(on_platform, prefer=platform)
        if metadata is None:
            defaults[platform] = "cpu"
            notes.append(f"no METADATA served for the {platform} wheels: default_variant cpu assumed")
            continue
        requires_python = requires_python or metadata.requires_python
        defaults[platform] = cuda_variant(metadata.requires_dist, platform, pythons[-1]) or "cpu"
    for platform in facts.python:
        if platform not in defaults:
            served = sorted(v for v, ps in variant_platforms.items() if platform in ps)
            defaults[platform] = "cpu" if "cpu" in served else served[0]
            notes.append(
                f"{platform}: wheels only on the PyTorch index, "
                f"default_variant {defaults[platform]} is a placeholder"
            )
    for platform, variant in defaults.items():
        variant_platforms.setdefault(variant, set()).add(platform)
    variants = tuple(sorted(variant_platforms, key=variant_sort_key))

    previous = _previous_release(matrix, version)
    glibc = dict(facts.glibc_min)
    for arch in sorted(facts.unfloored):
        if previous is not None and arch in previous.glibc_min:
            glibc[arch] = previous.glibc_min[arch]
            notes.append(
                f"the {arch} wheel tags give no glibc floor, {glibc[arch]} copied from {previous.version}"
            )
    if requires_python is None:
        requires_python = str(previous.requires_python) if previous is not None else ">=3"
        notes.append("requires-python not published; copied from the previous release")
    day = upload_day(w.file for w in general)
    if day is None:
        day = today.isoformat()
        notes.append("the listing gives no upload time; date is the day of the refresh")
    return TorchFacts(
        version=version,
        date=day,
        requires_python=requires_python,
        platforms=facts,
        glibc_min=glibc,
        variants=variants,
        default_variant=defaults,
        variant_platforms={v: frozenset(ps) for v, ps in variant_platforms.items()},
        notes=tuple(notes),
    )


def _previous_release(matrix: Matrix, version: Version) -> TorchRelease | None:
    older = [r for r in matrix.torch if r.version < version]
    return max(older, key=lambda r: r.version) if older else None


def _release_snippet(facts: TorchFacts, today: date) -> str:
    note = f"from the index listings by matrix refresh {today}"
    if facts.notes:
        note += "; " + "; ".join(facts.notes)
    lines = [
        "[[release]]",
        f"version = {quote(str(facts.version))}",
        f"date = {quote(facts.date)}",
        f"requires_python = {quote(facts.requires_python)}",
        f"variants = {toml_list(facts.variants)}",
    ]
    glibc = {
        a: str(v)
        for a, v in sorted(facts.glibc_min.items(), key=lambda kv: ("x86_64", "aarch64").index(kv[0]))
    }
    if glibc:
        lines.append(f"glibc_min = {inline_table(glibc)}")
    macos = {
        a: str(v)
        for a, v in sorted(facts.platforms.macos_min.items(), key=lambda kv: ("arm64", "x86_64").index(kv[0]))
    }
    if macos:
        lines.append(f"macos_min = {inline_table(macos)}")
    lines += [
        f"source = {toml_list(['pypi_torch', PYTORCH_INDEX_SOURCE])}",
        f"note = {quote(note)}",
        "",
        *_macos_wheel_floor_lines(facts.platforms.macos_min_python),
        "[release.python]",
        *(f"{p} = {toml_list(pythons)}" for p, pythons in facts.platforms.python.items()),
        "",
        "[release.default_variant]",
        *(f"{p} = {quote(facts.default_variant[p])}" for p in facts.platforms.python),
    ]
    return "\n".join(lines) + "\n\n"


def _macos_wheel_floor_lines(floors: Mapping[str, Mapping[str, Version]]) -> list[str]:
    """`[release.macos_min_python]` rows; Python tags are quoted keys ("3.13t" holds a dot)."""
    if not floors:
        return []
    rows = [
        f"{arch} = {{ " + ", ".join(f"{quote(p)} = {quote(str(f))}" for p, f in by_python.items()) + " }"
        for arch, by_python in floors.items()
    ]
    return ["[release.macos_min_python]", *rows, ""]
