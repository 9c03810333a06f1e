"""Fetch ahead, in parallel, the listings and PEP 658 metadata a `poetry lock` is about to read.

Poetry reads an index one request at a time: a listing, then the metadata of the version it
picks, then the next dependency's listing. Over a real network each of those waits a round
trip. While Poetry starts (about half a second), `prefetch_for_poetry` walks the same dependency
graph with several requests in flight, into the run's memory that the mirror
(resolver/lock/poetry/mirror.py) serves Poetry from, so most of Poetry's requests are answered at once.

The walk guesses what Poetry will read: for each package, the newest version the requirements
met so far allow (Poetry's first choice), and the files whose metadata Poetry reads for that
version (`metadata_files`, after Poetry's `HttpRepository._get_info_from_links`). A wrong guess
costs one request Poetry did not need; whatever Poetry asks for it still gets from the index.
Nothing here can change a lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from resolver.errors import ExternalToolError
from resolver.index.client import IN_FLIGHT, IndexClient
from resolver.index.listing import IndexFile

_EXTRA = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")
_SDIST_SUFFIXES = (".tar.gz", ".zip", ".bz2", ".xz", ".Z", ".tar")


@dataclass(frozen=True)
class Wanted:
    """A package to look at, with the first requirement on it the walk met."""

    name: str
    specifier: SpecifierSet
    extras: frozenset[str]


@dataclass(frozen=True)
class PoetrySources:
    """Where Poetry looks a package up, as a pyproject.toml declares it."""

    roots: tuple[Wanted, ...]
    # a package bound to a `[[tool.poetry.source]]` (`torch = {source = "pytorch-cu126"}`) -> URL
    bound: Mapping[str, str]
    # the first primary source: where every other package is looked up (None: Poetry's own
    # default index, which Poetry reads directly, not through the mirror)
    primary: str | None
    # the lowest Python the project supports, for the packages' requires-python
    python_floor: Version | None

    def index_for(self, name: str) -> str | None:
        return self.bound.get(name, self.primary)


def sources_from_pyproject(document: Mapping[str, Any]) -> PoetrySources:
    project = document.get("project", {})
    poetry = document.get("tool", {}).get("poetry", {})
    declared = [
        s for s in poetry.get("source", []) if isinstance(s, Mapping) and isinstance(s.get("url"), str)
    ]
    urls = {s.get("name"): s["url"] for s in declared}
    primary = next((s["url"] for s in declared if s.get("priority", "primary") == "primary"), None)
    bound: dict[str, str] = {}
    for name, spec in poetry.get("dependencies", {}).items():
        url = urls.get(spec.get("source")) if isinstance(spec, Mapping) else None
        if url is not None:
            bound[canonicalize_name(name)] = url
    roots = [_wanted(text) for text in project.get("dependencies", []) if isinstance(text, str)]
    return PoetrySources(
        roots=tuple(w for w in roots if w is not None),
        bound=bound,
        primary=primary,
        python_floor=_floor(project.get("requires-python")),
    )


def _wanted(text: str) -> Wanted | None:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    return Wanted(canonicalize_name(requirement.name), requirement.specifier, frozenset(requirement.extras))


def _floor(requires_python: object) -> Version | None:
    if not isinstance(requires_python, str):
        return None
    try:
        bounds = [s.version for s in SpecifierSet(requires_python) if s.operator in (">=", "==", "~=")]
    except InvalidSpecifier:
        return None
    versions = []
    for bound in bounds:
        try:
            versions.append(Version(bound.rstrip(".*")))
        except ValueError:
            continue
    return min(versions) if versions else None


def file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None


def newest_allowed(
    files: Iterable[IndexFile], specifier: SpecifierSet, python_floor: Version | None
) -> list[IndexFile]:
    """The files of the newest version `specifier` allows (finals before pre-releases, as Poetry
    and pip choose), skipping versions that are wholly yanked or whose files all exclude
    `python_floor`; [] when none is left."""
    by_version: dict[Version, list[IndexFile]] = {}
    for file in files:
        version = file_version(file.filename)
        if version is not None:
            by_version.setdefault(version, []).append(file)
    pinned = any(s.operator in ("==", "===") for s in specifier)
    usable = []
    for version, group in by_version.items():
        if all(f.yanked for f in group) and not pinned:
            continue
        if python_floor is not None and not any(_supports(f, python_floor) for f in group):
            continue
        usable.append(version)
    allowed = list(specifier.filter(usable))
    return by_version[max(allowed)] if allowed else []


def _supports(file: IndexFile, python: Version) -> bool:
    if not file.requires_python:
        return True
    try:
        return SpecifierSet(file.requires_python).contains(python, prereleases=True)
    except InvalidSpecifier:
        return True


def metadata_files(files: Sequence[IndexFile]) -> list[IndexFile]:
    """The files of one version whose metadata Poetry reads: a py2.py3 universal wheel; else both
    py2 and py3 universal wheels; else one universal wheel; else the first platform wheel; else
    the first sdist (Poetry 2.x, `HttpRepository._get_info_from_links`). Yanked files count only
    where every file is yanked."""
    live = [f for f in files if not f.yanked] or list(files)
    wheels, sdists = [], []
    for file in live:
        if file.filename.endswith(".whl"):
            wheels.append(file)
        elif file.filename.endswith(_SDIST_SUFFIXES):
            sdists.append(file)
    universal: dict[str, IndexFile] = {}
    platform = []
    for wheel in wheels:
        parts = wheel.filename[: -len(".whl")].split("-")
        if len(parts) < 5:
            continue
        python_tag, abi, plat = parts[-3:]
        if abi == "none" and plat == "any":
            kind = python_tag if python_tag in ("py2.py3", "py2") else "py3"
            universal[kind] = wheel
        else:
            platform.append(wheel)
    if "py2.py3" in universal:
        return [universal["py2.py3"]]
    if "py2" in universal and "py3" in universal:
        return [universal["py2"], universal["py3"]]
    for kind in ("py3", "py2"):
        if kind in universal:
            return [universal[kind]]
    if platform:
        return platform[:1]
    return sdists[:1]


def requirements_of(metadata: str, extras: frozenset[str]) -> list[Wanted]:
    """The `Requires-Dist` entries of core metadata that apply with `extras` (on any platform:
    Poetry locks for all of them)."""
    headers = HeaderParser().parsestr(metadata)
    chosen = {canonicalize_name(extra) for extra in extras}
    result = []
    for text in headers.get_all("Requires-Dist") or []:
        wanted = _wanted(text)
        if wanted is None:
            continue
        needs = {canonicalize_name(name) for name in _EXTRA.findall(text.partition(";")[2])}
        if needs and not needs & chosen:
            continue
        result.append(wanted)
    return result


def prefetch_for_poetry(
    client: IndexClient, document: Mapping[str, Any], stop: threading.Event, *, workers: int = IN_FLIGHT
) -> None:
    """Walk the dependency graph of `document` (a pyproject.toml) with up to `workers` requests in
    flight, fetching what Poetry will read into `client`'s run memory. A package's dependencies
    are asked for as soon as its metadata arrives (no waiting for the rest of its level), so the
    walk takes as many round trips as the graph is deep. Best effort: a failure ends that branch,
    and `stop` ends the walk."""
    sources = sources_from_pyproject(document)
    seen: set[str] = set()

    def visit(wanted: Wanted) -> list[Wanted]:
        index = sources.index_for(wanted.name)
        if index is None or stop.is_set():
            return []
        found: list[Wanted] = []
        try:
            chosen = newest_allowed(client.files(index, wanted.name), wanted.specifier, sources.python_floor)
            for file in metadata_files(chosen):
                if file.has_metadata and not stop.is_set():
                    found.extend(requirements_of(client.metadata(file), wanted.extras))
        except (ExternalToolError, ValueError):
            pass  # Poetry will ask for it itself, and report what is wrong
        return found

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch") as pool:
        pending: set[Future[list[Wanted]]] = set()

        def ask(wanted: Wanted) -> None:
            if wanted.name not in seen and not stop.is_set():
                seen.add(wanted.name)
                pending.add(pool.submit(visit, wanted))

        for root in sources.roots:
            ask(root)
        while pending and not stop.is_set():
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for wanted in future.result():
                    ask(wanted)
