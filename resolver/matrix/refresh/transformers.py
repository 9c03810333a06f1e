"""transformers.toml: new transformers releases as [[release]] rows (their torch extra, Python
floor and upload day from the index), and yank flags kept in step with the index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from packaging.version import Version

from resolver.matrix.model import Matrix, TransformersRelease
from resolver.matrix.refresh.edit import MatrixFiles, quote, release_key, toml_list
from resolver.matrix.refresh.reader import IndexReader, all_yanked, upload_day
from resolver.matrix.refresh.wheels import torch_extra


@dataclass(frozen=True)
class TransformersFacts:
    version: Version
    upload_date: str | None
    requires_python: str
    torch: str
    yanked: bool


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
