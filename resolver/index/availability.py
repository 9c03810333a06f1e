"""Before the solve: which candidate builds exist on the configured indexes?

The survey lists the candidates a matrix-only exploration finds, reads the index listings they
need (in parallel, each once), and returns the ones whose wheels are missing (a mirror lagging
behind, a variant never published) as an `Availability`: the solver takes it as input, rejects
those with "not on <index URL>" and chooses once. A lagging mirror still gives a working lock, and
`resolve --dry-run --check-indexes` gives the same answer as a real run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from packaging.version import Version

from resolver.host.model import Host
from resolver.matrix.model import Matrix
from resolver.matrix.wheeltags import host_floor, wheel_fits
from resolver.solve.reasons import Reason, Unavailable
from resolver.solve.request import Request
from resolver.solve.search import Resolution, explore
from resolver.solve.transformers import release_reasons, torch_reasons
from resolver.sources import Indexes

if TYPE_CHECKING:  # the HTTP machinery loads only where an index is asked
    from resolver.index.client import IndexClient


# The most listings of one host's candidates asked for in the survey's first round.
FIRST_ROUND = 32


@dataclass(frozen=True)
class NeededBuild:
    """One build the lock needs: this exact version of `project` on `index_url`."""

    project: str
    version: str
    index_url: str


@dataclass(frozen=True)
class Availability:
    """What the survey found missing, each with why: (torch version, variant) builds and
    transformers versions. `checked`: whether any index or channel was asked at all."""

    builds: Mapping[tuple[str, str], Reason] = field(default_factory=dict)
    transformers: Mapping[str, Reason] = field(default_factory=dict)
    checked: bool = False

    def applied_to(self, request: Request) -> Request:
        """The request the solver takes: these builds and versions are unavailable."""
        return replace(
            request,
            unavailable={**self.builds, **request.unavailable},
            unavailable_transformers={**self.transformers, **request.unavailable_transformers},
        )

    def merged(self, other: Availability) -> Availability:
        return Availability(
            {**other.builds, **self.builds},
            {**other.transformers, **self.transformers},
            self.checked or other.checked,
        )


def required_builds(
    resolution: Resolution, indexes: Indexes, packages: Sequence[str]
) -> Iterator[NeededBuild]:
    if resolution.local_label:
        torch_index = indexes.variant_url(resolution.variant)
    elif indexes.general is not None:
        torch_index = indexes.general
    else:
        return  # the general index is Poetry's built-in one: nothing we may name to check
    yield NeededBuild("torch", resolution.torch, torch_index)
    for name, version in (("torchvision", resolution.torchvision), ("torchaudio", resolution.torchaudio)):
        pin = resolution.pin(version)
        if pin is not None and name in packages:
            yield NeededBuild(name, pin, torch_index)


def missing_builds(
    resolution: Resolution,
    indexes: Indexes,
    packages: Sequence[str],
    client: IndexClient,
    platform: str,
    floor: Version | None = None,
) -> list[tuple[NeededBuild, Unavailable]]:
    """Builds the lock needs that no index lists for this Python and platform (`floor`: the
    target's glibc or macOS version, which a wheel's manylinux/macosx tag must not exceed)."""
    missing = []
    for need in required_builds(resolution, indexes, packages):
        files = client.files(need.index_url, need.project)
        if not any(
            wheel_fits(f.filename, need.version, resolution.python, platform, floor) and not f.yanked
            for f in files
        ):
            version = "" if need.project == "torch" else need.version
            missing.append((need, Unavailable(need.index_url, need.project, version)))
    return missing


def check_candidates(
    candidates: Sequence[Resolution],
    indexes: Indexes,
    packages: Sequence[str],
    client: IndexClient,
    platform: str,
    floor: Version | None = None,
    *,
    until_complete: bool = False,
    batch: int = 8,
) -> dict[tuple[str, str], Reason]:
    """(torch version, variant) -> why, for each candidate whose builds an index lacks. The
    listings of `batch` candidates are fetched at once. `until_complete`: the candidates come in
    the solver's order of preference, and the survey stops at the first complete one (the solver
    will choose it; nothing after it matters)."""
    unavailable: dict[tuple[str, str], Reason] = {}
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]
        wanted = {(n.index_url, n.project) for r in chunk for n in required_builds(r, indexes, packages)}
        client.prefetch(sorted(wanted))
        for resolution in chunk:
            missing = missing_builds(resolution, indexes, packages, client, platform, floor)
            if not missing:
                if until_complete:
                    return unavailable
                continue
            _, why = missing[0]
            unavailable[(str(resolution.release.version), resolution.variant)] = why
    return unavailable


def transformers_missing(
    matrix: Matrix,
    indexes: Indexes,
    client: IndexClient,
    python: str | None,
    platform: str | None,
    floor: Version | None = None,
) -> dict[str, Reason]:
    """Transformers releases of the matrix that the general index lacks (one listing request),
    so the solver skips them in a single pass. Nothing is known without a configured index."""
    if indexes.general is None:
        return {}
    files = client.files(indexes.general, "transformers")

    def present(version: str) -> bool:
        if python and platform:
            return any(wheel_fits(f.filename, version, python, platform, floor) for f in files)
        return any(f.filename.startswith(f"transformers-{version}-") for f in files)

    reason = Unavailable(indexes.general, "transformers")
    return {str(row.version): reason for row in matrix.transformers if not present(str(row.version))}


def transformers_listing(indexes: Indexes) -> list[tuple[str, str]]:
    """The listing `transformers_missing` reads, as (index URL, project)."""
    return [(indexes.general, "transformers")] if indexes.general is not None else []


def survey_listings(host: Host, matrix: Matrix, request: Request, indexes: Indexes) -> list[tuple[str, str]]:
    """The listings the survey of `host` may read, as (index URL, project), most wanted first:
    those of the candidates explored without the transformers listing's verdict (a superset of
    those explored with it), so that they can all be asked for at once, with it, in one round
    trip instead of one per batch of candidates. At most FIRST_ROUND; the rest (rarely reached:
    the survey stops at the first complete candidate) are fetched batch by batch."""
    listings: list[tuple[str, str]] = []
    for candidate in explore(host, matrix, request, exhaustive=True).best_first():
        needed = required_builds(candidate, indexes, request.packages)
        listings.extend((n.index_url, n.project) for n in needed)
    return list(dict.fromkeys(listings))[:FIRST_ROUND]


def survey_indexes(
    host: Host,
    matrix: Matrix,
    request: Request,
    indexes: Indexes,
    client: IndexClient,
    *,
    until_complete: bool = True,
) -> Availability:
    """What the pip indexes lack among the candidates for one host: the transformers listing
    first (it changes which candidates are valid), then the torch-family listings of the
    candidates in the solver's order, until the first complete one (`until_complete=False`:
    all of them, when another source may still rule that one out)."""
    floor = host_floor(host)
    client.prefetch([*transformers_listing(indexes), *survey_listings(host, matrix, request, indexes)])
    transformers = transformers_missing(
        matrix, indexes, client, request.python or host.python, host.platform, floor
    )
    explored = explore(
        host, matrix, Availability(transformers=transformers).applied_to(request), exhaustive=True
    )
    builds = check_candidates(
        explored.best_first(),
        indexes,
        request.packages,
        client,
        host.platform,
        floor,
        until_complete=until_complete,
    )
    return Availability(builds, transformers, checked=True)


def note_skipped_transformers(
    resolution: Resolution, matrix: Matrix, request: Request, unavailable: Mapping[str, Reason]
) -> Resolution:
    """Say so when a newer transformers that fits was passed over because the index lacks it."""
    chosen = resolution.transformers.version
    torch_version = resolution.release.version
    skipped = [
        row
        for row in matrix.transformers
        if row.version > chosen
        and str(row.version) in unavailable
        and not release_reasons(row, request, resolution.python)
        and not torch_reasons(row, torch_version)
    ]
    if not skipped:
        return resolution
    newest = max(skipped, key=lambda row: row.version)
    why = unavailable[str(newest.version)]
    where = f"is not on {why.source}" if isinstance(why, Unavailable) else "is not available"
    note = f"transformers {newest.version} {where}: took {chosen}"
    return replace(resolution, warnings=(*resolution.warnings, note))
