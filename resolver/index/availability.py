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

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from resolver.config import Indexes
from resolver.host.model import Host
from resolver.index.client import IndexClient
from resolver.matrix.load import Matrix
from resolver.solve.search import Request, Resolution, explore

# platform key -> (tag prefixes, tag suffixes): manylinux_2_28_x86_64, macosx_14_0_arm64, win_amd64
_PLATFORM_TAGS = {
    "linux-x86_64": (("manylinux", "linux"), ("_x86_64",)),
    "linux-aarch64": (("manylinux", "linux"), ("_aarch64",)),
    "windows-x86_64": (("win",), ("_amd64",)),
    "macos-arm64": (("macosx",), ("_arm64", "_universal2")),
    "macos-x86_64": (("macosx",), ("_x86_64", "_universal2", "_intel")),
}


def platform_fits(tag_platform: str, platform: str) -> bool:
    if tag_platform == "any":
        return True
    prefixes, suffixes = _PLATFORM_TAGS.get(platform, ((), ()))
    return tag_platform.startswith(prefixes) and tag_platform.endswith(suffixes)


def python_fits(tag: Tag, python: str) -> bool:
    free_threaded = python.endswith("t")
    major, minor = python.rstrip("t").split(".")
    if tag.interpreter.startswith("py"):
        return tag.interpreter in ("py3", f"py{major}", f"py{major}{minor}") and tag.abi in ("none", "abi3")
    if tag.interpreter != f"cp{major}{minor}":
        return False
    if tag.abi == "abi3":
        return not free_threaded
    if tag.abi == "none":  # e.g. torch's macOS wheels: cp311-none-macosx_11_0_arm64
        return True
    return tag.abi == f"cp{major}{minor}{'t' if free_threaded else ''}"


def wheel_fits(filename: str, version: str, python: str, platform: str) -> bool:
    try:
        _, wheel_version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    if wheel_version != Version(version):
        return False
    return any(python_fits(tag, python) and platform_fits(tag.platform, platform) for tag in tags)


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

    builds: Mapping[tuple[str, str], str] = field(default_factory=dict)
    transformers: Mapping[str, str] = field(default_factory=dict)
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
    resolution: Resolution, indexes: Indexes, packages: Sequence[str], client: IndexClient, platform: str
) -> list[tuple[NeededBuild, str]]:
    missing = []
    for need in required_builds(resolution, indexes, packages):
        files = client.files(need.index_url, need.project)
        if not any(
            wheel_fits(f.filename, need.version, resolution.python, platform) and not f.yanked for f in files
        ):
            missing.append((need, f"is not on {need.index_url}"))
    return missing


def check_candidates(
    candidates: Sequence[Resolution],
    indexes: Indexes,
    packages: Sequence[str],
    client: IndexClient,
    platform: str,
    *,
    until_complete: bool = False,
    batch: int = 8,
) -> dict[tuple[str, str], str]:
    """(torch version, variant) -> why, for each candidate whose builds an index lacks. The
    listings of `batch` candidates are fetched at once. `until_complete`: the candidates come in
    the solver's order of preference, and the survey stops at the first complete one (the solver
    will choose it; nothing after it matters)."""
    unavailable: dict[tuple[str, str], str] = {}
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]
        wanted = {(n.index_url, n.project) for r in chunk for n in required_builds(r, indexes, packages)}
        client.prefetch(sorted(wanted))
        for resolution in chunk:
            missing = missing_builds(resolution, indexes, packages, client, platform)
            if not missing:
                if until_complete:
                    return unavailable
                continue
            need, why = missing[0]
            what = "" if need.project == "torch" else f"(its {need.project} {need.version}) "
            unavailable[(str(resolution.release.version), resolution.variant)] = what + why
    return unavailable


def transformers_missing(
    matrix: Matrix, indexes: Indexes, client: IndexClient, python: str | None, platform: str | None
) -> dict[str, str]:
    """Transformers releases of the matrix that the general index lacks (one listing request),
    so the solver skips them in a single pass. Nothing is known without a configured index."""
    if indexes.general is None:
        return {}
    files = client.files(indexes.general, "transformers")

    def present(version: str) -> bool:
        if python and platform:
            return any(wheel_fits(f.filename, version, python, platform) for f in files)
        return any(f.filename.startswith(f"transformers-{version}-") for f in files)

    reason = f"is not on {indexes.general}"
    return {str(row.version): reason for row in matrix.transformers if not present(str(row.version))}


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
    transformers = transformers_missing(matrix, indexes, client, request.python or host.python, host.platform)
    explored = explore(
        host, matrix, Availability(transformers=transformers).applied_to(request), exhaustive=True
    )
    builds = check_candidates(
        explored.best_first(), indexes, request.packages, client, host.platform, until_complete=until_complete
    )
    return Availability(builds, transformers, checked=True)


def note_skipped_transformers(
    resolution: Resolution, matrix: Matrix, unavailable: Mapping[str, str]
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
