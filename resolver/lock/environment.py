"""Write one target's environment: `envs/<target>/pyproject.toml`, `poetry.lock`, `resolution.json`.

The order is: render the new pyproject text, decide whether the previous lock can be reused
(same inputs hash), otherwise lock in a staging folder, and only then commit every file with
atomic renames. A failure before the commit leaves the old files exactly as they were.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from resolver import __version__
from resolver.config import Indexes
from resolver.errors import ExternalToolError
from resolver.explain.render import resolution_json
from resolver.fsutil import atomic_write_bytes
from resolver.host.model import Host
from resolver.index.client import IndexClient
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
from resolver.lock.poetry.tool import LOCKFILE, PYPROJECT, PoetryTool, lock_in_staging
from resolver.matrix.model import Matrix
from resolver.matrix.wheeltags import wheel_fits
from resolver.solve.search import Resolution

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RESOLUTION = "resolution.json"
# conda files (resolver/lock/conda.py); named here for the commit order
CONDA_ENVIRONMENT = "environment.yml"
CONDA_LOCKFILE = "conda-lock.yml"


def target_name_for(host: Host, variant: str, python: str) -> str:
    """e.g. linux-x86_64-sm90-cu126-py311, linux-x86_64-sm61+sm86-cu126-py311, macos-arm64-cpu-py312."""
    sms = sorted(
        {f"sm{g.cc.major}{g.cc.minor}" for g in host.nvidia_gpus}
        | {g.gfx_target or "" for g in host.amd_gpus}
    )
    parts = [host.platform]
    if sms and variant != "cpu":
        parts.append("+".join(sms))
    parts.append(variant)
    parts.append("py" + python.replace(".", ""))
    return "-".join(parts)


def index_bound_requirements(
    resolution: Resolution, matrix: Matrix, client: IndexClient, index_url: str, platform: str
) -> list[str]:
    """Requirements of the chosen torch wheel that must also come from the PyTorch index
    (triton builds and the like): read from the wheel's PEP 658 metadata."""
    bound = {canonicalize_name(n) for n in matrix.index_bound_packages}
    files = [
        f
        for f in client.files(index_url, "torch")
        if wheel_fits(f.filename, resolution.torch, resolution.python, platform) and f.has_metadata
    ]
    if not files:
        return []
    metadata = email.parser.Parser().parsestr(client.metadata(files[0]))
    found = []
    for text in metadata.get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        if (
            name in bound
            and name not in {"torch", "torchvision", "torchaudio"}
            and "extra" not in str(requirement.marker)
        ):
            found.append(str(requirement))
    return found


TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


def _locked_packages(lock: bytes) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(lock.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExternalToolError(f"Poetry wrote a poetry.lock that does not parse: {exc}") from None
    return [p for p in data.get("package", []) if isinstance(p, dict)]


def _pytorch_source(spec: EnvironmentSpec) -> str | None:
    urls = [s.url for s in spec.sources if s.name.startswith(PYTORCH_SOURCE_PREFIX)]
    return urls[0].rstrip("/") if urls else None


def check_lock_sources(lock: bytes, spec: EnvironmentSpec, matrix: Matrix) -> None:
    """Dependency confusion guard: on a target whose torch comes from the PyTorch index, every
    locked package of the torch family or named in `[index] bound_packages` must come from that
    index. A name also served (at a higher version) by the general index is never taken from there."""
    pytorch = _pytorch_source(spec)
    if pytorch is None:
        return  # torch itself comes from the general index (macOS): nothing is bound
    bound = {str(canonicalize_name(n)) for n in (*TORCH_FAMILY, *matrix.index_bound_packages)}
    bound |= {dep.name for dep in spec.dependencies if dep.source}
    for package in _locked_packages(lock):
        name = canonicalize_name(str(package.get("name", "")))
        if name not in bound:
            continue
        source = package.get("source")
        url = source.get("url") if isinstance(source, dict) else None
        if not isinstance(url, str) or url.rstrip("/") != pytorch:
            raise ExternalToolError(
                f"poetry.lock takes {name} {package.get('version')} from {url or 'the default index'}, "
                f"not from the PyTorch index {pytorch}",
                hint=f"{name} must come only from the PyTorch index (a look-alike on another index is "
                f"how dependency-confusion attacks work); add it to `packages` in the team file so it "
                "is pinned there, and check the index URLs",
            )


def check_lock_hashes(lock: bytes, spec: EnvironmentSpec, client: IndexClient) -> None:
    """Each file Poetry locked from the PyTorch index carries the sha256 that index advertises
    now (listings the run fetched already; one more for a bound package such as triton)."""
    pytorch = _pytorch_source(spec)
    if pytorch is None:
        return
    for package in _locked_packages(lock):
        source = package.get("source")
        url = source.get("url") if isinstance(source, dict) else None
        if not isinstance(url, str) or url.rstrip("/") != pytorch:
            continue
        name = str(package.get("name"))
        listed = {f.filename: f for f in client.files(pytorch, name)}
        for entry in package.get("files", []):
            item = listed.get(str(entry.get("file")))
            locked = str(entry.get("hash", ""))
            if item is None or item.sha256 is None or locked == f"sha256:{item.sha256}":
                continue
            raise ExternalToolError(
                f"hash mismatch for {name} {package.get('version')}, file {item.filename} at {item.url}: "
                f"the index advertises sha256:{item.sha256} (expected), poetry.lock records {locked}",
                hint="the index changed the file while locking, or a cache served a stale listing; "
                "lock again, and if it persists do not use this index",
            )


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


@dataclass(frozen=True)
class Written:
    directory: Path
    reused: bool
    changed: tuple[str, ...]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def previous_record(directory: Path) -> dict[str, Any]:
    raw = _read(directory / RESOLUTION)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Staged:
    """A target's new files, ready to commit."""

    directory: Path
    files: dict[str, bytes]
    reused: bool


def stage_environment(
    directory: Path,
    host: Host,
    matrix: Matrix,
    resolution: Resolution,
    spec: EnvironmentSpec,
    index_url: str | None,
    tool: PoetryTool,
    poetry_version: str,
    locker: Callable[[str, bytes | None], bytes] | None = None,
    client: IndexClient | None = None,
) -> Staged:
    """`locker(pyproject_text, previous_lock)` makes the lock; by default Poetry in a staging
    folder. The team lock passes one that locks identical inputs only once. The new lock is
    checked before anything is written: bound packages from the PyTorch index only, and (given
    a `client`) their file hashes as the index advertises them."""
    existing_pyproject = _read(directory / PYPROJECT)
    pyproject_text = render_pyproject(
        existing_pyproject.decode("utf-8") if existing_pyproject is not None else None,
        spec,
        origin=str(directory / PYPROJECT),
    )
    record: dict[str, Any] = {
        "tool": {"name": "stack-resolver", "version": __version__},
        "matrix_version": matrix.version,
        "poetry": poetry_version,
        "host": host.to_json(),
        "resolution": resolution_json(resolution, index_url),
        "owned_dependencies": sorted(dep.name for dep in spec.dependencies),
    }
    # The host's volatile readings (free disk, RAM) stay out of the hash: they do not change the lock.
    stable = {key: value for key, value in record.items() if key != "host"}
    inputs = json.dumps({"pyproject": pyproject_text, "record": stable}, sort_keys=True)
    record["inputs_hash"] = "sha256:" + hashlib.sha256(inputs.encode()).hexdigest()
    previous = previous_record(directory)
    old_lock = _read(directory / LOCKFILE)
    if (
        previous.get("inputs_hash") == record["inputs_hash"]
        and old_lock is not None
        and existing_pyproject == pyproject_text.encode()
    ):
        return Staged(directory, {}, reused=True)
    if locker is None:
        new_lock = lock_in_staging(pyproject_text, old_lock, tool)
    else:
        new_lock = locker(pyproject_text, old_lock)
    check_lock_sources(new_lock, spec, matrix)
    if client is not None:
        check_lock_hashes(new_lock, spec, client)
    record["lock_sha256"] = hashlib.sha256(new_lock).hexdigest()
    files = {
        PYPROJECT: pyproject_text.encode("utf-8"),
        LOCKFILE: new_lock,
        RESOLUTION: (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    }
    return Staged(directory, files, reused=False)


def base_record(host: Host, matrix: Matrix, resolution: Resolution, index_url: str | None) -> dict[str, Any]:
    return {
        "tool": {"name": "stack-resolver", "version": __version__},
        "matrix_version": matrix.version,
        "host": host.to_json(),
        "resolution": resolution_json(resolution, index_url),
    }


def with_formats(
    directory: Path,
    base: dict[str, Any],
    formats: Sequence[str],
    poetry: Staged | None,
    sections: dict[str, Any],
    files: dict[str, bytes],
    reused: bool,
) -> Staged:
    """One Staged for a target written in several formats: the Poetry stage's files (if any), the
    other formats' `files`, and a resolution.json that records `formats` and each format's section
    (e.g. `conda`). When every format reused its lock and the formats are the same, nothing is
    rewritten (not even resolution.json, whose host readings change from run to run)."""
    previous = previous_record(directory)
    all_reused = reused and (poetry is None or poetry.reused)
    if all_reused and previous.get("formats", ["poetry"]) == list(formats):
        return Staged(directory, {}, reused=True)
    if poetry is not None and not poetry.reused:
        record: dict[str, Any] = json.loads(poetry.files[RESOLUTION])
    else:
        record = {**previous, **base}
    record.update(sections)
    record["formats"] = list(formats)
    merged = dict(poetry.files) if poetry is not None else {}
    merged.update(files)
    merged[RESOLUTION] = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return Staged(directory, merged, reused=all_reused)


def commit(staged: Sequence[Staged]) -> list[Written]:
    """Write every staged file with an atomic rename. The locks go last, so a reader never
    sees a new lock beside an old pyproject (or environment.yml) that does not match it."""
    order = (PYPROJECT, CONDA_ENVIRONMENT, RESOLUTION, LOCKFILE, CONDA_LOCKFILE)
    written = []
    for stage in staged:
        changed = []
        for name in sorted(stage.files, key=lambda n: order.index(n) if n in order else len(order)):
            if atomic_write_bytes(stage.directory / name, stage.files[name]):
                changed.append(name)
        written.append(Written(stage.directory, stage.reused, tuple(changed)))
    return written
