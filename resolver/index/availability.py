"""Before locking: do the chosen builds exist on the configured indexes?

A candidate whose wheel is missing (a mirror lagging behind, a variant never published) is
rejected with "not on <index URL>" and the solver takes the next best, so a lagging mirror still
gives a working lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from packaging.version import Version

from resolver.config import Indexes
from resolver.errors import NoCompatibleCombination
from resolver.host.model import Host
from resolver.index.client import IndexClient
from resolver.matrix.model import Matrix
from resolver.matrix.wheeltags import host_floor, wheel_fits
from resolver.solve.reasons import Reason, Unavailable
from resolver.solve.request import Request
from resolver.solve.search import Resolution, explore, solve
from resolver.solve.transformers import release_reasons, torch_reasons


@dataclass(frozen=True)
class Requirement:
    """One build the lock needs: this exact version of `project` on `index_url`."""

    project: str
    version: str
    index_url: str


def required_builds(
    resolution: Resolution, indexes: Indexes, packages: tuple[str, ...]
) -> Iterator[Requirement]:
    if resolution.local_label:
        torch_index = indexes.variant_url(resolution.variant)
    elif indexes.general is not None:
        torch_index = indexes.general
    else:
        return  # the general index is Poetry's built-in one: nothing we may name to check
    yield Requirement("torch", resolution.torch, torch_index)
    for name, version in (("torchvision", resolution.torchvision), ("torchaudio", resolution.torchaudio)):
        pin = resolution.pin(version)
        if pin is not None and name in packages:
            yield Requirement(name, pin, torch_index)


def missing_builds(
    resolution: Resolution,
    indexes: Indexes,
    packages: tuple[str, ...],
    client: IndexClient,
    platform: str,
    floor: Version | None = None,
) -> list[tuple[Requirement, Unavailable]]:
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


def solve_available(
    host: Host,
    matrix: Matrix,
    request: Request,
    indexes: Indexes,
    client: IndexClient,
) -> Resolution:
    """Solve, then drop candidates whose wheels the indexes lack, until one is complete.

    Raises NoCompatibleCombination (with the "not on <URL>" causes) when none is left.
    """
    prefetch_listings(host, matrix, request, indexes, client)
    unavailable = dict(request.unavailable)
    unavailable_transformers = {
        **transformers_missing(
            matrix, indexes, client, request.python or host.python, host.platform, host_floor(host)
        ),
        **request.unavailable_transformers,
    }
    while True:
        resolution = solve(
            host,
            matrix,
            replace(request, unavailable=unavailable, unavailable_transformers=unavailable_transformers),
        )
        missing = missing_builds(
            resolution, indexes, request.packages, client, host.platform, host_floor(host)
        )
        if not missing:
            return _note_skipped_transformers(resolution, matrix, request, unavailable_transformers)
        _, why = missing[0]
        unavailable[(str(resolution.release.version), resolution.variant)] = why


def prefetch_listings(
    host: Host, matrix: Matrix, request: Request, indexes: Indexes, client: IndexClient, depth: int = 6
) -> None:
    """Fetch, in parallel, the listings the check below will most likely read: the transformers
    listing and the torch-family listings of the best few candidates' indexes."""
    wanted: list[tuple[str, str]] = []
    if indexes.general is not None:
        wanted.append((indexes.general, "transformers"))
    try:
        candidates = explore(host, matrix, request, exhaustive=True).best_first()[:depth]
    except NoCompatibleCombination:
        candidates = ()
    for resolution in candidates:
        for need in required_builds(resolution, indexes, request.packages):
            wanted.append((need.index_url, need.project))
    client.prefetch(wanted)


def transformers_missing(
    matrix: Matrix,
    indexes: Indexes,
    client: IndexClient,
    python: str | None,
    platform: str | None,
    floor: Version | None = None,
) -> dict[str, Unavailable]:
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


def _note_skipped_transformers(
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
