"""Is a target's committed lock still what this run would make? Decided from the inputs alone,
asking no index, the way `uv lock --check` decides: an unchanged re-run of `resolve` stops here.

The record of each commit (`resolution.json`, key `fresh`) holds `request_hash`, a digest of
everything the run was given: the host (without its volatile readings: free disk, RAM, cores,
limits), the matrix files' content, the team settings and request, the formats, the effective
index URLs (never their credentials), the tool's version (which pins Poetry's); and
`unavailable`, what the index survey found missing then. A re-run with the same digest solves
again offline with that survey (a millisecond) and, when it names the same target and the same
choice and every committed file still has the hash the record gives it, has nothing to do.

What it cannot see: an index that changed since (a wheel published or withdrawn). Like uv, a
plain re-run trusts the lock; `lock --check` and a changed input still compare with the index.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from resolver import __version__
from resolver.config import TeamConfig
from resolver.host.model import Host
from resolver.index.availability import Availability
from resolver.lock.record import RESOLUTION, previous_record, read_bytes, resolution_record, sha256
from resolver.matrix.model import Matrix
from resolver.solve import reasons
from resolver.solve.request import Request
from resolver.solve.search import Resolution
from resolver.sources import Indexes

KEY = "fresh"
# Readings that change from run to run without changing what is locked.
VOLATILE_HOST_FIELDS = frozenset({"cpu_count", "memory_mib", "disk_free_mib", "sources", "limits"})
# The files a format's record vouches for, by the record key that holds their sha256.
_VOUCHED = {"poetry": (("pyproject.toml", "pyproject_sha256"), ("poetry.lock", "lock_sha256"))}
_CONDA_LOCK = "conda-lock.yml"


def canonical(value: object) -> Any:
    """`value` as plain JSON data, the same in every process (sets sorted, dataclass fields by
    name; fields declared `compare=False`, such as credentials, and a host's volatile readings
    left out)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skip = VOLATILE_HOST_FIELDS if isinstance(value, Host) else frozenset()
        fields = dataclasses.fields(value)
        return {f.name: canonical(getattr(value, f.name)) for f in fields if f.compare and f.name not in skip}
    if isinstance(value, Mapping):
        items = [(json.dumps(canonical(k), sort_keys=True), canonical(v)) for k, v in value.items()]
        return sorted(items)
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(canonical(v), sort_keys=True) for v in value)
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    return str(value)  # Version, SpecifierSet, Requirement: their normal form


def request_hash(
    *,
    subject: object,
    matrix: Matrix,
    request: Request,
    team: TeamConfig,
    indexes: Indexes,
    formats: Sequence[str],
    target: str | None,
    settings: Mapping[str, object],
) -> str:
    """The digest of one run's inputs: `subject` is the host (resolve) or the team's targets
    (lock); `settings`: what else shapes the files (engine, Poetry)."""
    team_data = {k: v for k, v in canonical(team).items() if k not in ("path", "raw", "indexes")}
    inputs = {
        "tool": __version__,
        "matrix": matrix.digest or matrix.version,
        "subject": canonical(subject),
        "request": canonical(request),
        "team": team_data,
        "indexes": {k: v for k, v in canonical(indexes).items() if k != "origins"},
        "formats": list(formats),
        "target": target,
        "settings": canonical(settings),
    }
    return "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def _reason_data(reason: reasons.Reason) -> dict[str, str] | None:
    fields = {f.name: getattr(reason, f.name) for f in dataclasses.fields(reason)}
    if not all(isinstance(v, str) for v in fields.values()):
        return None
    return {"type": type(reason).__name__, **fields}


def _reason(data: object) -> reasons.Reason | None:
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        return None
    kind = getattr(reasons, str(data.get("type")), None)
    if not (isinstance(kind, type) and issubclass(kind, reasons.Reason) and dataclasses.is_dataclass(kind)):
        return None
    try:
        reason = kind(**{k: v for k, v in data.items() if k != "type"})
    except TypeError:
        return None
    return reason if isinstance(reason, reasons.Reason) else None


def fresh_section(digest: str, found: Availability) -> dict[str, Any] | None:
    """The record's `fresh` key; None when the survey holds a reason that cannot be written as
    plain strings (then every re-run asks the index, as before)."""
    builds = [[torch, variant, _reason_data(r)] for (torch, variant), r in found.builds.items()]
    transformers = [[version, _reason_data(r)] for version, r in found.transformers.items()]
    if any(entry[-1] is None for entry in (*builds, *transformers)):
        return None
    return {"request_hash": digest, "unavailable": {"builds": builds, "transformers": transformers}}


def recorded_availability(section: Mapping[str, Any]) -> Availability | None:
    """The survey a `fresh` section (or one shaped like it) holds; None when it does not parse."""
    unavailable = section.get("unavailable")
    if not isinstance(unavailable, Mapping):
        return None
    builds: dict[tuple[str, str], reasons.Reason] = {}
    transformers: dict[str, reasons.Reason] = {}
    for entry in unavailable.get("builds", ()):
        reason = _reason(entry[2]) if isinstance(entry, list) and len(entry) == 3 else None
        if reason is None or not all(isinstance(x, str) for x in entry[:2]):
            return None
        builds[(entry[0], entry[1])] = reason
    for entry in unavailable.get("transformers", ()):
        reason = _reason(entry[1]) if isinstance(entry, list) and len(entry) == 2 else None
        if reason is None or not isinstance(entry[0], str):
            return None
        transformers[entry[0]] = reason
    return Availability(builds, transformers, checked=True)


@dataclasses.dataclass(frozen=True)
class Committed:
    """A target whose record claims these inputs: its folder, record and the survey it used."""

    name: str
    directory: Path
    record: Mapping[str, Any]
    availability: Availability


def find_committed(envs: Path, name: str | None, digest: str) -> Committed | None:
    """The target committed from inputs with this digest, whose files are all still as committed:
    `name`'s folder, or (no name given) the one folder whose record has the digest."""
    if not envs.is_dir():
        return None
    folders = [envs / name] if name is not None else sorted(p for p in envs.iterdir() if p.is_dir())
    for folder in folders:
        record = previous_record(folder) if (folder / RESOLUTION).is_file() else {}
        section = record.get(KEY)
        if not isinstance(section, Mapping) or section.get("request_hash") != digest:
            continue
        availability = recorded_availability(section)
        if availability is not None and files_intact(folder, record):
            return Committed(folder.name, folder, record, availability)
    return None


def files_intact(folder: Path, record: Mapping[str, Any]) -> bool:
    """Whether every file the record vouches for is on disk with the sha256 it records."""
    formats = record.get("formats", ["poetry"])
    if not isinstance(formats, list) or not formats:
        return False
    expected: list[tuple[str, object]] = []
    for fmt in formats:
        if fmt == "poetry":
            expected += [(name, record.get(key)) for name, key in _VOUCHED["poetry"]]
        elif fmt == "conda":
            conda = record.get("conda")
            expected.append((_CONDA_LOCK, conda.get("lock_sha256") if isinstance(conda, Mapping) else None))
        else:
            return False
    for name, want in expected:
        data = read_bytes(folder / name)
        if not isinstance(want, str) or data is None or sha256(data) != want:
            return False
    return True


def same_choice(committed: Committed, resolution: Resolution, index_url: str | None) -> bool:
    """Whether the offline solve chose what the record says was locked."""
    recorded = committed.record.get("resolution")
    return isinstance(recorded, Mapping) and dict(recorded) == resolution_record(resolution, index_url)
