"""Before locking: do the chosen builds exist on the configured indexes?

A candidate whose wheel is missing (a mirror lagging behind, a variant never published) is
rejected with "not on <index URL>" and the solver takes the next best, so a lagging mirror still
gives a working lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from packaging.version import Version

from resolver.config import Indexes
from resolver.errors import NoCompatibleCombination
from resolver.host.model import Host
from resolver.index.client import IndexClient
from resolver.matrix.model import Matrix
from resolver.matrix.wheeltags import host_floor, wheel_fits
from resolver.solve.search import Request, Resolution, explore, solve


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
) -> list[tuple[Requirement, str]]:
    """Builds the lock needs that no index lists for this Python and platform (`floor`: the
    target's glibc or macOS version, which a wheel's manylinux/macosx tag must not exceed)."""
    missing = []
    for need in required_builds(resolution, indexes, packages):
        files = client.files(need.index_url, need.project)
        if not any(
            wheel_fits(f.filename, need.version, resolution.python, platform, floor) and not f.yanked
            for f in files
        ):
            missing.append((need, f"is not on {need.index_url}"))
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
            return _note_skipped_transformers(resolution, matrix, unavailable_transformers)
        need, why = missing[0]
        what = "" if need.project == "torch" else f"(its {need.project} {need.version}) "
        unavailable[(str(resolution.release.version), resolution.variant)] = what + why


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
) -> dict[str, str]:
    """Transformers releases of the matrix that the general index lacks (one listing request),
    so the solver skips them in a single pass. Nothing is known without a configured index."""
    if indexes.general is None:
        return {}
    files = client.files(indexes.general, "transformers")

    def present(version: str) -> bool:
        if python and platform:
            return any(wheel_fits(f.filename, version, python, platform, floor) for f in files)
        return any(f.filename.startswith(f"transformers-{version}-") for f in files)

    reason = f"is not on {indexes.general}"
    return {str(row.version): reason for row in matrix.transformers if not present(str(row.version))}


def _note_skipped_transformers(
    resolution: Resolution, matrix: Matrix, unavailable: dict[str, str]
) -> Resolution:
    """Say so when a newer transformers that fits was passed over because the index lacks it."""
    chosen = resolution.transformers.version
    torch_version = resolution.release.version
    skipped = [
        row
        for row in matrix.transformers
        if row.version > chosen
        and str(row.version) in unavailable
        and not row.yanked
        and not row.version.is_prerelease
        and row.torch.contains(torch_version, prereleases=True)
    ]
    if not skipped:
        return resolution
    newest = max(skipped, key=lambda row: row.version)
    note = f"transformers {newest.version} {unavailable[str(newest.version)]}: took {chosen}"
    return replace(resolution, warnings=(*resolution.warnings, note))
