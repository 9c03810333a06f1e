"""Checks on a Poetry lock before it is committed, and the requirements that bind packages to the
PyTorch index: every package of the torch family (or named in `[index] bound_packages`) comes
from that index, with the sha256 the index advertises."""

from __future__ import annotations

import email.parser
import sys
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from resolver.errors import ExternalToolError
from resolver.index.client import IndexClient
from resolver.index.listing import IndexFile
from resolver.lock.poetry.pyproject import PYTORCH_SOURCE_PREFIX, EnvironmentSpec
from resolver.matrix.model import Matrix
from resolver.matrix.wheeltags import wheel_fits
from resolver.solve.search import Resolution

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


def torch_metadata_file(
    resolution: Resolution, client: IndexClient, index_url: str, platform: str
) -> IndexFile | None:
    """The chosen torch wheel whose metadata `index_bound_requirements` reads."""
    for file in client.files(index_url, "torch"):
        if wheel_fits(file.filename, resolution.torch, resolution.python, platform) and file.has_metadata:
            return file
    return None


def index_bound_requirements(
    resolution: Resolution, matrix: Matrix, client: IndexClient, index_url: str, platform: str
) -> list[str]:
    """Requirements of the chosen torch wheel that must also come from the PyTorch index
    (triton builds and the like): read from the wheel's PEP 658 metadata."""
    bound = {canonicalize_name(n) for n in matrix.index_bound_packages}
    file = torch_metadata_file(resolution, client, index_url, platform)
    if file is None:
        return []
    metadata = email.parser.Parser().parsestr(client.metadata(file))
    found = []
    for text in metadata.get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        if name in bound and name not in TORCH_FAMILY and "extra" not in str(requirement.marker):
            found.append(str(requirement))
    return found


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
