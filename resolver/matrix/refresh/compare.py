"""Index facts compared with the matrix: the rows and edits a refresh proposes, per kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.matrix.arch import ArchTarget
from resolver.matrix.model import (
    PLATFORMS,
    Build,
    Matrix,
    TorchRelease,
    TransformersRelease,
    variant_cuda,
    variant_kind,
)
from resolver.matrix.refresh.edit import (
    PYTORCH_INDEX_SOURCE,
    MatrixFiles,
    build_key,
    build_sort,
    inline_table,
    pair_key,
    quote,
    release_key,
    toml_list,
)
from resolver.matrix.refresh.reader import IndexReader, all_yanked, candidate_variants, upload_day
from resolver.matrix.refresh.wheels import (
    PlatformFacts,
    Wheel,
    cuda_variant,
    exact_pin,
    platform_facts,
    python_sort_key,
    torch_extra,
    torch_pin,
    variant_sort_key,
    wheel_variant,
)

COMPANIONS = ("torchvision", "torchaudio")
# --- facts -------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class TransformersFacts:
    version: Version
    upload_date: str | None
    requires_python: str
    torch: str
    yanked: bool


@dataclass(frozen=True)
class CompanionRelease:
    name: str
    version: Version
    torch: SpecifierSet | None


# --- torch, torchvision, torchaudio ------------------------------------------------------------


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

    companions = _companion_releases(matrix, reader)
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
            snippet, reference = _build_snippet(matrix, series, variant, facts, today)
            files.insert("builds.toml", "build", build_key, snippet, build_sort(series, variant))
            files.note_build(series, variant)
            summary.append(
                f"torch {series} {variant}: new build, unverified (arch list from {reference}; confirm it)"
            )

    summary += _refresh_pairs(matrix, files, reader, companions, new_versions, today)
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


def _reference_build(matrix: Matrix, series: str, variant: str) -> Build | None:
    """The build whose arch list a new build starts from: the same variant in the newest series
    that has it, else the newest build of the same CUDA major, else the newest CUDA build."""
    cuda = variant_cuda(variant)
    cuda_builds = [b for b in matrix.builds.values() if b.kind == "cuda" and b.cuda is not None]

    def newest(builds: list[Build]) -> Build | None:
        return max(builds, key=lambda b: (Version(b.series), b.cuda or Version("0")), default=None)

    same = newest([b for b in cuda_builds if b.variant == variant and b.series != series])
    if same is not None or cuda is None:
        return same
    major = newest([b for b in cuda_builds if b.cuda is not None and b.cuda.major == cuda.major])
    return major or newest(cuda_builds)


def _copied_arch(
    matrix: Matrix, reference: Build | None, variant: str, platform: str
) -> tuple[list[str], list[str]]:
    """(targets, dropped) for one platform: the reference list (Windows lists carry no PTX),
    without the targets this CUDA version cannot compile for."""
    if reference is None:
        return [], []
    source = reference.arch.get(platform)
    if source is None:
        source = reference.arch.get("linux-x86_64", ())
    cuda = variant_cuda(variant)
    family = matrix.cuda_families.get(cuda.major) if cuda is not None else None
    kept: list[str] = []
    dropped: list[str] = []
    for target in source:
        gpu = matrix.gpu(target.cc)
        ok = family is None or family.can_target(target.cc)
        if ok and gpu is not None and cuda is not None and target.cc not in gpu.aliases:
            ok = gpu.targetable_by(cuda)
        text = str(ArchTarget(target.cc, False)) if platform.startswith("windows-") else str(target)
        (kept if ok else dropped).append(text)
    return kept, dropped


def _build_snippet(
    matrix: Matrix, series: str, variant: str, facts: TorchFacts, today: date
) -> tuple[str, str]:
    reference = _reference_build(matrix, series, variant)
    platforms = [p for p in PLATFORMS if p in facts.variant_platforms.get(variant, frozenset())]
    arch: dict[str, list[str]] = {}
    dropped: set[str] = set()
    for platform in platforms:
        kept, lost = _copied_arch(matrix, reference, variant, platform)
        arch[platform] = kept
        dropped.update(lost)
    where = (
        f"the {reference.series} {reference.variant} build"
        if reference
        else "nothing (no CUDA build in the matrix)"
    )
    note = (
        f"arch list not derivable from the index: copied from {where}"
        + (
            f", without {', '.join(sorted(dropped))} (CUDA {variant_cuda(variant)} cannot target it)"
            if dropped
            else ""
        )
        + "; confirm TORCH_CUDA_ARCH_LIST in pytorch/pytorch .ci/manywheel/build_cuda.sh on "
        f"release/{series} and RELEASE.md, then drop unverified "
        f"(wheels seen on the PyTorch index by matrix refresh {today})"
    )
    sources = [PYTORCH_INDEX_SOURCE]
    if variant in facts.default_variant.values():
        sources.insert(0, "pypi_torch")
    lines = [
        "[[build]]",
        f"series = {quote(series)}",
        f"variant = {quote(variant)}",
        "unverified = true",
        f"source = {toml_list(sources)}",
        f"note = {quote(note)}",
        "",
        "[build.arch]",
        *(f"{platform} = {toml_list(targets)}" for platform, targets in arch.items()),
    ]
    ref_text = f"{reference.series} {reference.variant}" if reference else "nothing"
    return "\n".join(lines) + "\n\n", ref_text


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


def _companion_releases(matrix: Matrix, reader: IndexReader) -> dict[str, list[CompanionRelease]]:
    """Companion releases the matrix pairs with nothing yet, newest first, with their torch pin."""
    out: dict[str, list[CompanionRelease]] = {}
    for name in COMPANIONS:
        known = {getattr(p, name) for p in matrix.companions.values()} - {None}
        oldest = min(known) if known else None
        found = []
        for version, files in sorted(reader.releases(name).items(), reverse=True):
            if version in known or version.is_prerelease or version.is_devrelease:
                continue
            if oldest is not None and version < oldest:
                continue
            if all_yanked(files):
                reader.warnings.append(f"{name} {version} is yanked on the general index; not paired")
                continue
            metadata = reader.metadata([f for f in files if f.filename.endswith(".whl")])
            if metadata is None:
                reader.warnings.append(f"{name} {version}: no METADATA served; its torch pin is unknown")
                continue
            found.append(CompanionRelease(name, version, torch_pin(metadata.requires_dist)))
        out[name] = found
    return out


def _refresh_pairs(
    matrix: Matrix,
    files: MatrixFiles,
    reader: IndexReader,
    companions: Mapping[str, list[CompanionRelease]],
    new_versions: Sequence[Version],
    today: date,
) -> list[str]:
    summary: list[str] = []
    # Existing pairs: a new companion release pinning exactly that torch replaces the value.
    for torch, pair in sorted(matrix.companions.items(), reverse=True):
        for name in COMPANIONS:
            exact = next((c for c in companions[name] if exact_pin(c.torch) == torch), None)
            if exact is not None and getattr(pair, name) != exact.version:
                files.set_value("companions.toml", "pair", "torch", torch, name, str(exact.version))
                summary.append(f"torch {torch}: {name} {exact.version} (pins torch=={torch})")
    for version in new_versions:
        values: dict[str, str] = {}
        notes: list[str] = []
        inferred = False
        for name in COMPANIONS:
            releases = companions[name]
            exact = next((c for c in releases if exact_pin(c.torch) == version), None)
            ranged = next(
                (
                    c
                    for c in releases
                    if c.torch and exact_pin(c.torch) is None and c.torch.contains(version, prereleases=True)
                ),
                None,
            )
            if exact is not None:
                values[name] = str(exact.version)
            elif ranged is not None:
                values[name] = str(ranged.version)
                inferred = True
                notes.append(
                    f"{name} {ranged.version} pins torch{ranged.torch}, not =={version}: pairing inferred"
                )
            else:
                values[name] = "none"
                inferred = True
                notes.append(f"no {name} release on the index pins torch {version} (yet): re-run the refresh")
        files.ensure_sources([f"pypi_{n}" for n in COMPANIONS], reader, today)
        note = f"from the companions' METADATA Requires-Dist by matrix refresh {today}"
        if notes:
            note += "; " + "; ".join(notes)
        lines = [
            "[[pair]]",
            f"torch = {quote(str(version))}",
            *(f"{name} = {quote(values[name])}" for name in COMPANIONS),
            *(["unverified = true"] if inferred else []),
            f"source = {toml_list([f'pypi_{n}' for n in COMPANIONS])}",
            f"note = {quote(note)}",
        ]
        files.insert("companions.toml", "pair", pair_key, "\n".join(lines) + "\n\n", (version,))
        status = ", unverified" if inferred else ""
        summary.append(
            f"torch {version}: pairs with torchvision {values['torchvision']}, "
            f"torchaudio {values['torchaudio']}{status}"
        )
    return summary


# --- transformers ------------------------------------------------------------------------------


def refresh_transformers(matrix: Matrix, files: MatrixFiles, reader: IndexReader, today: date) -> list[str]:
    summary: list[str] = []
    releases = reader.releases("transformers")
    known = {r.version: r for r in matrix.transformers}
    oldest = min(known) if known else None
    for version, row in sorted(known.items(), reverse=True):
        listed = releases.get(version)
        if not listed:
            continue
        yanked = all_yanked(listed)
        if row.yanked and not yanked:
            # Un-yanking is rare; a mirror that drops PEP 592 data looks the same. A person decides.
            reader.warnings.append(
                f"transformers {version} is yanked in the matrix but not on the index "
                "(un-yanked, or a mirror without yank data): review by hand"
            )
        elif yanked and not row.yanked:
            files.set_flag(
                "transformers.toml", "release", "version", version, "yanked", after="runtime_min_torch"
            )
            summary.append(f"transformers {version}: yanked on the index")
    for version, listed in sorted(releases.items(), reverse=True):
        if version in known or version.is_devrelease or (oldest is not None and version < oldest):
            continue
        metadata = reader.metadata([f for f in listed if f.filename.endswith(".whl")] or listed)
        if metadata is None:
            reader.warnings.append(f"transformers {version}: no METADATA served; not added")
            continue
        requires_python = next((f.requires_python for f in listed if f.requires_python), None)
        facts = TransformersFacts(
            version=version,
            upload_date=upload_day(listed),
            requires_python=requires_python or metadata.requires_python or "",
            torch=torch_extra(metadata.requires_dist),
            yanked=all_yanked(listed),
        )
        previous = max(
            (r for r in matrix.transformers if r.version < version), key=lambda r: r.version, default=None
        )
        files.ensure_sources(["pypi_transformers"], reader, today)
        files.insert(
            "transformers.toml",
            "release",
            release_key,
            _transformers_snippet(facts, previous, today),
            (version,),
        )
        floor = f"torch{facts.torch}" if facts.torch else "any torch"
        summary.append(
            f"transformers {version}: new release ({floor}, Python {facts.requires_python or 'any'})"
        )
    return summary


def _transformers_snippet(facts: TransformersFacts, previous: TransformersRelease | None, today: date) -> str:
    runtime = previous.runtime_min_torch if previous is not None else None
    where = f"carried over from {previous.version}" if previous is not None and runtime else "left unset"
    note = (
        f"from the index listing and METADATA by matrix refresh {today}; runtime_min_torch is not derivable "
        f"from the index ({where}): confirm the minimum torch in transformers/utils/import_utils.py of the "
        f"{facts.version} wheel, then drop unverified"
    )
    lines = [
        "[[release]]",
        f"version = {quote(str(facts.version))}",
        *([f"upload_date = {quote(facts.upload_date)}"] if facts.upload_date else []),
        f"requires_python = {quote(facts.requires_python)}",
        f"torch = {quote(facts.torch)}",
        *([f"runtime_min_torch = {quote(str(runtime))}"] if runtime is not None else []),
        *(["yanked = true"] if facts.yanked else []),
        "unverified = true",
        f"source = {toml_list(['pypi_transformers'])}",
        f"note = {quote(note)}",
    ]
    return "\n".join(lines) + "\n\n"
