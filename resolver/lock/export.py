"""Hand a target's lock to other tools: a hashed `requirements.txt` (pip, uv) and a PEP 751
`pylock.toml`, both made from the target's `poetry.lock` and the sources in its `pyproject.toml`.

Nothing is solved again: every package, version, marker and hash comes from the lock. The
requirements file names its indexes (`--index-url`, `--extra-index-url`) and pins every file by
its sha256, for `pip install --require-hashes`. A pylock.toml names each file's URL, which
poetry.lock does not record: they are read from each package's index listing and checked
against the lock's hashes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name

from resolver.errors import ConfigError, ExternalToolError, InputError, Location
from resolver.index.client import IndexClient

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FORMATS = {"requirements": "requirements.txt", "pylock": "pylock.toml"}


@dataclass(frozen=True)
class LockedFile:
    filename: str
    sha256: str


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    marker: str | None
    index: str | None  # the source URL it was locked from; None: Poetry's implicit default
    files: tuple[LockedFile, ...]


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    priority: str


@dataclass(frozen=True)
class LockedTarget:
    directory: Path
    requires_python: str | None
    packages: tuple[LockedPackage, ...]
    sources: tuple[Source, ...]

    @property
    def primary(self) -> str | None:
        return next((s.url for s in self.sources if s.priority in ("primary", "default")), None)


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(
            "no such file",
            location=Location(str(path)),
            hint="lock the target first: `stack-resolver resolve` or `stack-resolver lock`",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", location=Location(str(path))) from None
    return data


def _marker(package: Mapping[str, Any]) -> str | None:
    markers = package.get("markers")
    if isinstance(markers, str):
        return markers or None
    if isinstance(markers, dict):  # lock 2.1 with groups: {main = "..."}
        main = markers.get("main")
        return main if isinstance(main, str) and main else None
    return None


def read_locked_target(directory: Path) -> LockedTarget:
    """The lock of one target folder (`envs/<name>/`), as plain values."""
    lock = _load(directory / "poetry.lock")
    pyproject = _load(directory / "pyproject.toml")
    packages = []
    for entry in lock.get("package", []):
        source = entry.get("source") or {}
        if source.get("type") not in (None, "legacy"):
            raise InputError(
                f"{entry.get('name')} is locked from a {source.get('type')} source, which cannot be exported",
                location=Location(str(directory / "poetry.lock")),
                hint="exports cover packages from package indexes only",
            )
        files = tuple(
            LockedFile(f["file"], f["hash"].removeprefix("sha256:"))
            for f in entry.get("files", [])
            if str(f.get("hash", "")).startswith("sha256:")
        )
        packages.append(
            LockedPackage(
                name=canonicalize_name(entry["name"]),
                version=str(entry["version"]),
                marker=_marker(entry),
                index=source.get("url"),
                files=files,
            )
        )
    sources = tuple(
        Source(str(s.get("name", "")), str(s["url"]), str(s.get("priority", "primary")))
        for s in pyproject.get("tool", {}).get("poetry", {}).get("source", [])
        if isinstance(s, dict) and isinstance(s.get("url"), str)
    )
    requires = pyproject.get("project", {}).get("requires-python") or lock.get("metadata", {}).get(
        "python-versions"
    )
    return LockedTarget(directory, requires, tuple(sorted(packages, key=lambda p: p.name)), sources)


def render_requirements(target: LockedTarget) -> str:
    """A requirements file for `pip install --require-hashes -r` (and `uv pip sync`)."""
    lines = [
        f"# Exported by stack-resolver from {target.directory.name}/poetry.lock; install with",
        "#   pip install --require-hashes --no-deps -r requirements.txt",
    ]
    if target.primary is not None:
        lines.append(f"--index-url {target.primary}")
    for source in target.sources:
        if source.url != target.primary:
            lines.append(f"--extra-index-url {source.url}")
    for package in target.packages:
        requirement = f"{package.name}=={package.version}"
        if package.marker:
            requirement += f" ; {package.marker}"
        hashes = [f"    --hash=sha256:{f.sha256}" for f in package.files]
        lines.append(" \\\n".join([requirement, *hashes]))
    return "\n".join(lines) + "\n"


def render_pylock(target: LockedTarget, client: IndexClient, default_index: str | None) -> str:
    """A PEP 751 lock: each file with its URL (from the index listing) and sha256 (from the lock)."""
    document = tomlkit.document()
    document["lock-version"] = "1.0"
    if target.requires_python:
        document["requires-python"] = target.requires_python
    document["created-by"] = "stack-resolver"
    packages = tomlkit.aot()
    for package in target.packages:
        index = package.index or target.primary or default_index
        if index is None:
            raise InputError(
                f"{package.name} came from Poetry's default index, whose URL is not configured",
                hint="configure a general index (PIP_INDEX_URL, [indexes] general, STACK_RESOLVER_INDEX_URL) "
                "and lock again",
            )
        listed = {f.filename: f for f in client.files(index, package.name)}
        table = tomlkit.table()
        table["name"] = package.name
        table["version"] = package.version
        if package.marker:
            table["marker"] = package.marker
        table["index"] = index
        wheels = tomlkit.aot()
        for locked in package.files:
            found = listed.get(locked.filename)
            if found is None:
                raise ExternalToolError(
                    f"{locked.filename} (locked for {package.name}) is not on {index}",
                    hint="the index changed since the lock was made: lock again",
                )
            if found.sha256 is not None and found.sha256 != locked.sha256:
                raise ExternalToolError(
                    f"{locked.filename} on {index} has sha256 {found.sha256}, the lock says {locked.sha256}",
                    hint="the index serves another file than was locked: check the mirror, lock again",
                )
            entry = tomlkit.table()
            entry["name"] = locked.filename
            entry["url"] = found.url.split("#", 1)[0]
            entry["hashes"] = {"sha256": locked.sha256}
            if locked.filename.endswith(".whl"):
                wheels.append(entry)
            else:
                table["sdist"] = entry
        if wheels:
            table["wheels"] = wheels
        packages.append(table)
    document["packages"] = packages
    return tomlkit.dumps(document)


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise InputError("unknown export format", location=Location("--format"), value=name,
                         hint="pylock or requirements")  # fmt: skip
    return name
