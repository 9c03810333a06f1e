"""Companion pairs for companions.toml: the torchvision and torchaudio releases the matrix pairs with
nothing yet, each with its torch pin, as new [[pair]] rows or changed values of existing ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.matrix.model import Matrix
from resolver.matrix.refresh.edit import MatrixFiles, pair_key, quote, toml_list
from resolver.matrix.refresh.reader import IndexReader, all_yanked
from resolver.matrix.refresh.wheels import exact_pin, torch_pin

COMPANIONS = ("torchvision", "torchaudio")


@dataclass(frozen=True)
class CompanionRelease:
    name: str
    version: Version
    torch: SpecifierSet | None


def companion_releases(matrix: Matrix, reader: IndexReader) -> dict[str, list[CompanionRelease]]:
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


def refresh_pairs(
    matrix: Matrix,
    files: MatrixFiles,
    reader: IndexReader,
    companions: Mapping[str, list[CompanionRelease]],
    new_versions: Sequence[Version],
    today: date,
) -> list[str]:
    """Existing pairs a new companion release pins exactly, and a [[pair]] for each new torch."""
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
