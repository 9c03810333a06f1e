"""One target's files, staged: the single path `resolve` and the team `lock` both take.

`prepare` (reads the index: bound requirements, the previous record) decides what each format
needs: the rendered pyproject.toml and environment.yml, and whether the committed lock can be
reused. `lock` runs the lockers (Poetry in a staging folder, py-rattler in-process; safe to run
for several targets at once). `finish` checks the new Poetry lock (sources, hashes) and writes the
record. Nothing touches `envs/` until `resolver.lock.commit` commits every target's files at once.

A lock is reused only when everything its record holds still matches the disk: the inputs hash
(pyproject text, matrix, resolution, tool versions), the sha256 of the committed pyproject.toml
and of the lock itself. Anything else (a stale, emptied or edited lock) is locked again.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.host.model import Host
from resolver.index.client import IndexClient

# re-exported: the staging path's callers name them through this module
from resolver.lock.names import FORMATS as FORMATS
from resolver.lock.names import check_formats as check_formats
from resolver.lock.names import check_target_name as check_target_name
from resolver.lock.names import target_directory as target_directory
from resolver.lock.names import target_name_for as target_name_for
from resolver.lock.poetry.checks import check_lock_hashes, check_lock_sources, index_bound_requirements
from resolver.lock.poetry.pyproject import (
    EXTRA_SOURCE_PREFIX,
    GENERAL_SOURCE,
    PYTORCH_SOURCE_PREFIX,
    Dependency,
    EnvironmentSpec,
    SourceSpec,
    dependencies_for,
    render_pyproject,
    requires_python_for,
)
from resolver.lock.poetry.tool import LOCKFILE, PYPROJECT, PoetryTool
from resolver.lock.record import RESOLUTION, base_record, dumps, previous_record, read_bytes, sha256
from resolver.matrix.model import Matrix
from resolver.solve.search import Resolution
from resolver.sources import Indexes

if TYPE_CHECKING:
    from resolver.lock.conda import CondaInputs, CondaSettings

CONDA_ENVIRONMENT = "environment.yml"
CONDA_LOCKFILE = "conda-lock.yml"


@dataclass(frozen=True)
class LockPlan:
    """One target to write: its folder, its host, and what the solver chose for it."""

    name: str
    directory: Path
    host: Host
    resolution: Resolution
    index_url: str | None
    # the record's `fresh` key (resolver/lock/fresh.py): how a re-run knows nothing changed
    fresh: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Lockers:
    """How locks are made. `poetry(pyproject_text, previous_lock)` returns the new poetry.lock
    (by default `lock_in_staging`; the team lock shares identical locks between targets)."""

    poetry_version: str | None = None
    poetry: Callable[[str, bytes | None], bytes] | None = None
    conda: CondaSettings | None = None


@dataclass(frozen=True)
class PoetryPart:
    spec: EnvironmentSpec
    pyproject: bytes
    fields: Mapping[str, Any]  # the record's Poetry keys, without the lock's hash
    reused_lock: bytes | None  # the committed lock, when it can be reused
    seed: bytes | None  # the committed lock Poetry starts from (only one the record vouches for)


@dataclass(frozen=True)
class CondaPart:
    inputs: CondaInputs
    environment: bytes
    record: Mapping[str, Any]
    reused_lock: bytes | None


@dataclass(frozen=True)
class Prepared:
    plan: LockPlan
    formats: tuple[str, ...]
    previous: Mapping[str, Any]
    poetry: PoetryPart | None
    conda: CondaPart | None


@dataclass(frozen=True)
class Locked:
    prepared: Prepared
    poetry_lock: bytes | None
    conda_lock: bytes | None


@dataclass(frozen=True)
class Staged:
    """A target's new files (name -> bytes), ready to commit; `reused`: every lock was reused."""

    directory: Path
    files: Mapping[str, bytes]
    reused: bool


def environment_spec(
    name: str,
    resolution: Resolution,
    packages: Sequence[str],
    indexes: Indexes,
    bound_extra: Sequence[str],
    previously_owned: frozenset[str],
) -> EnvironmentSpec:
    source = f"{PYTORCH_SOURCE_PREFIX}{resolution.variant}" if resolution.local_label else None
    pins: list[tuple[str, str, str | None]] = [("torch", resolution.torch, source)]
    for companion, version in (
        ("torchvision", resolution.torchvision),
        ("torchaudio", resolution.torchaudio),
    ):
        pin = resolution.pin(version)
        if pin is not None and companion in packages:
            pins.append((companion, pin, source))
    pins.append(("transformers", str(resolution.transformers.version), None))
    deps = list(dependencies_for(pins, [p for p in packages if p not in ("torchvision", "torchaudio")]))
    if source is not None:
        deps.extend(Dependency(text, source) for text in bound_extra)
    sources = []
    if source is not None:
        sources.append(SourceSpec(source, indexes.variant_url(resolution.variant), "explicit"))
    if indexes.general is not None:
        sources.append(SourceSpec(GENERAL_SOURCE, indexes.general, "primary"))
    # The user's extra indexes (pip's extra-index-url, uv's extra [[index]]): searched too, after.
    # Poetry reads sources over HTTP only, so a local `file://` index of pip's stays pip's.
    remote = [url for url in indexes.extra if url.startswith(("http://", "https://"))]
    sources.extend(
        SourceSpec(f"{EXTRA_SOURCE_PREFIX}{n}", url, "supplemental") for n, url in enumerate(remote, 1)
    )
    return EnvironmentSpec(
        name=name,
        requires_python=requires_python_for(resolution.python, sys.version_info[:2]),
        dependencies=tuple(deps),
        sources=tuple(sources),
        previously_owned=previously_owned,
    )


def _poetry_part(
    plan: LockPlan,
    matrix: Matrix,
    packages: Sequence[str],
    indexes: Indexes,
    client: IndexClient,
    previous: Mapping[str, Any],
    poetry_version: str,
) -> PoetryPart:
    res = plan.resolution
    bound = (
        index_bound_requirements(res, matrix, client, plan.index_url, plan.host.platform)
        if plan.index_url is not None
        else []
    )
    owned = previous.get("owned_dependencies", [])
    spec = environment_spec(
        plan.name,
        res,
        packages,
        indexes,
        bound,
        frozenset(str(n) for n in owned) if isinstance(owned, list) else frozenset(),
    )
    existing = read_bytes(plan.directory / PYPROJECT)
    text = render_pyproject(
        existing.decode("utf-8") if existing is not None else None,
        spec,
        origin=str(plan.directory / PYPROJECT),
    )
    pyproject = text.encode("utf-8")
    stable = {
        key: value
        for key, value in base_record(plan.host, matrix, res, plan.index_url).items()
        if key != "host"
    }
    fields: dict[str, Any] = {
        "poetry": poetry_version,
        "owned_dependencies": sorted(dep.name for dep in spec.dependencies),
    }
    # The host's volatile readings (free disk, RAM) stay out of the hash: they do not change the lock.
    fields["inputs_hash"] = "sha256:" + sha256(dumps({"pyproject": text, "record": {**stable, **fields}}))
    fields["pyproject_sha256"] = sha256(pyproject)
    old_lock = read_bytes(plan.directory / LOCKFILE)
    vouched = old_lock is not None and previous.get("lock_sha256") == sha256(old_lock)
    reusable = (
        vouched
        and previous.get("inputs_hash") == fields["inputs_hash"]
        and existing == pyproject
        and previous.get("pyproject_sha256") == fields["pyproject_sha256"]
    )
    return PoetryPart(spec, pyproject, fields, old_lock if reusable else None, old_lock if vouched else None)


def _conda_part(
    plan: LockPlan,
    matrix: Matrix,
    packages: Sequence[str],
    settings: CondaSettings,
    previous: Mapping[str, Any],
) -> CondaPart:
    from resolver.lock.conda import conda_inputs

    inputs = conda_inputs(plan.name, plan.host, matrix, plan.resolution, packages, settings)
    record = inputs.record()
    record["inputs_hash"] = inputs.inputs_hash()
    environment = inputs.environment_text.encode("utf-8")
    old = previous.get("conda")
    old_lock = read_bytes(plan.directory / CONDA_LOCKFILE)
    reusable = (
        isinstance(old, Mapping)
        and old_lock is not None
        and old.get("inputs_hash") == record["inputs_hash"]
        and old.get("lock_sha256") == sha256(old_lock)
        and read_bytes(plan.directory / CONDA_ENVIRONMENT) == environment
    )
    if reusable:
        assert isinstance(old, Mapping)
        record = dict(old)
    return CondaPart(inputs, environment, record, old_lock if reusable else None)


def prepare(
    plan: LockPlan,
    matrix: Matrix,
    formats: Sequence[str],
    packages: Sequence[str],
    indexes: Indexes,
    client: IndexClient,
    lockers: Lockers,
) -> Prepared:
    """What each format of `plan` needs; reads the index and the target's committed files."""
    formats = check_formats(formats)
    previous = previous_record(plan.directory)
    poetry = conda = None
    if "poetry" in formats:
        if lockers.poetry_version is None:
            raise ValueError("a Poetry target needs Lockers.poetry_version")
        poetry = _poetry_part(plan, matrix, packages, indexes, client, previous, lockers.poetry_version)
    if "conda" in formats:
        if lockers.conda is None:
            raise ValueError("a conda target needs Lockers.conda")
        conda = _conda_part(plan, matrix, packages, lockers.conda, previous)
    return Prepared(plan, formats, previous, poetry, conda)


def lock(prepared: Prepared, lockers: Lockers) -> Locked:
    """Make the locks that cannot be reused. Touches nothing of envs/; safe in a worker thread."""
    poetry_lock = conda_lock = None
    if prepared.conda is not None:
        conda_lock = prepared.conda.reused_lock
        if conda_lock is None:
            from resolver.lock.conda import lock_in_staging

            assert lockers.conda is not None
            conda_lock = lock_in_staging(prepared.conda.inputs, lockers.conda, Path(tempfile.gettempdir()))
    if prepared.poetry is not None:
        poetry_lock = prepared.poetry.reused_lock
        if poetry_lock is None:
            assert lockers.poetry is not None
            poetry_lock = lockers.poetry(prepared.poetry.pyproject.decode("utf-8"), prepared.poetry.seed)
    return Locked(prepared, poetry_lock, conda_lock)


def finish(locked: Locked, matrix: Matrix, client: IndexClient | None) -> Staged:
    """Check the new Poetry lock (sources; with a `client`, the index's hashes) and assemble the
    files to commit with their record."""
    prepared = locked.prepared
    plan = prepared.plan
    poetry, conda = prepared.poetry, prepared.conda
    reused = (poetry is None or poetry.reused_lock is not None) and (
        conda is None or conda.reused_lock is not None
    )
    if reused and prepared.previous.get("formats", ["poetry"]) == list(prepared.formats):
        if plan.fresh is None or prepared.previous.get("fresh") == plan.fresh:
            return Staged(plan.directory, {}, reused=True)
        # the locks stand; only the record learns the inputs' digest, for the next re-run
        return Staged(
            plan.directory, {RESOLUTION: dumps({**prepared.previous, "fresh": plan.fresh})}, reused=True
        )
    record = base_record(plan.host, matrix, plan.resolution, plan.index_url)
    if plan.fresh is not None:
        record["fresh"] = dict(plan.fresh)
    files: dict[str, bytes] = {}
    if poetry is not None:
        assert locked.poetry_lock is not None
        if poetry.reused_lock is None:
            check_lock_sources(locked.poetry_lock, poetry.spec, matrix)
            if client is not None:
                check_lock_hashes(locked.poetry_lock, poetry.spec, client)
        record.update(poetry.fields)
        record["lock_sha256"] = sha256(locked.poetry_lock)
        files[PYPROJECT] = poetry.pyproject
        files[LOCKFILE] = locked.poetry_lock
    if conda is not None:
        assert locked.conda_lock is not None
        section = dict(conda.record)
        section["lock_sha256"] = sha256(locked.conda_lock)
        record["conda"] = section
        files[CONDA_ENVIRONMENT] = conda.environment
        files[CONDA_LOCKFILE] = locked.conda_lock
    record["formats"] = list(prepared.formats)
    files[RESOLUTION] = dumps(record)
    return Staged(plan.directory, files, reused=reused)


def stage_target(
    plan: LockPlan,
    matrix: Matrix,
    formats: Sequence[str],
    packages: Sequence[str],
    indexes: Indexes,
    client: IndexClient,
    lockers: Lockers,
) -> Staged:
    """prepare, lock and finish one target (the team lock runs the three steps itself, with the
    locks of several targets in parallel)."""
    prepared = prepare(plan, matrix, formats, packages, indexes, client, lockers)
    return finish(lock(prepared, lockers), matrix, client)


def poetry_lockers(tool: PoetryTool, conda: CondaSettings | None = None) -> Lockers:
    from resolver.lock.poetry.tool import lock_in_staging

    return Lockers(
        poetry_version=tool.version(),
        poetry=lambda text, previous: lock_in_staging(text, previous, tool),
        conda=conda,
    )
