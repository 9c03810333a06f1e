"""`stack-resolver lock`: lock every target of the team, in parallel, all or nothing.

One survey of the indexes and channels for every target, one team solve, then every target goes
through the same staging path as `resolve` (resolver/lock/target.py, every format of the team
file), its locks made in parallel. Only when all succeeded are the files committed, every
target's and `envs/team.lock.json` together (resolver/lock/commit.py). A failure anywhere leaves
every file of `envs/` as it was. Unchanged inputs rewrite nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit
from packaging.version import InvalidVersion, Version

from resolver import files
from resolver.errors import InputError, Location
from resolver.index.availability import (
    Availability,
    check_candidates,
    survey_listings,
    transformers_listing,
    transformers_missing,
)
from resolver.index.client import IndexClient
from resolver.lock import fresh
from resolver.lock import target as stage
from resolver.lock.commit import commit
from resolver.lock.poetry.checks import torch_metadata_file
from resolver.lock.poetry.tool import LOCKFILE, PoetryTool, lock_in_staging
from resolver.lock.record import previous_record, read_bytes, resolution_record
from resolver.lock.runner import CHILDREN
from resolver.lock.survey import survey_channels
from resolver.matrix.model import Matrix
from resolver.matrix.wheeltags import host_floor
from resolver.solve.reasons import Reason
from resolver.solve.request import Request
from resolver.solve.search import explore
from resolver.sources import Indexes
from resolver.team.solve import TeamResolution, solve_team, target_request
from resolver.team.targets import Target

if TYPE_CHECKING:
    from resolver.lock.conda import CondaSettings

TEAM_LOCK = "team.lock.json"
# Targets locked at once by default: a Poetry lock mostly waits on the index, so even a 2-CPU
# machine runs eight (measured: 8 targets at 30 ms per response, 2 CPUs: 2 jobs 16.3 s, 8 jobs
# 11.7 s, one target 7.0 s). More CPUs than that: one per CPU.
MIN_DEFAULT_JOBS = 8


def default_jobs() -> int:
    return max(MIN_DEFAULT_JOBS, os.cpu_count() or 1)


def team_json(resolution: TeamResolution, indexes: Indexes) -> dict[str, Any]:
    targets = {}
    for name, res in sorted(resolution.targets.items()):
        targets[name] = resolution_record(res, indexes.variant_url(res.variant) if res.local_label else None)
    return {"versions": dict(resolution.versions), "targets": targets}


@dataclass(frozen=True)
class TeamAvailability:
    """The survey for a team: transformers versions missing for all, builds missing per target."""

    shared: Availability
    per_target: Mapping[str, Mapping[tuple[str, str], Reason]]


def survey_team(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    formats: Sequence[str],
    indexes: Indexes,
    client: IndexClient,
    conda: CondaSettings | None,
) -> TeamAvailability:
    """Every candidate build of every target, checked once (listings fetched in parallel)."""
    shared = Availability(checked=True)
    per_target: dict[str, dict[tuple[str, str], Reason]] = {t.name: {} for t in targets}
    if "poetry" in formats:
        # every target's listings in one round trip, not one target (and one batch) at a time
        wanted = transformers_listing(indexes)
        for target in targets:
            wanted.extend(survey_listings(target.host, matrix, target_request(base, target), indexes))
        client.prefetch(wanted)
        shared = Availability(
            transformers=transformers_missing(matrix, indexes, client, None, None), checked=True
        )
    if "conda" in formats and conda is not None:
        for target in targets:
            found = survey_channels(target.host, matrix, base.packages, conda)
            per_target[target.name].update(found.builds)
            shared = shared.merged(Availability(transformers=found.transformers))
    if "poetry" in formats:
        for target in targets:
            request = shared.applied_to(target_request(base, target))
            candidates = explore(target.host, matrix, request, exhaustive=True).best_first()
            missing = check_candidates(
                candidates, indexes, base.packages, client, target.host.platform, host_floor(target.host)
            )
            per_target[target.name] = {**missing, **per_target[target.name]}
    return TeamAvailability(shared, per_target)


def solve_team_available(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    formats: Sequence[str],
    indexes: Indexes,
    client: IndexClient,
    conda: CondaSettings | None = None,
) -> TeamResolution:
    """The newest version set whose every build exists on the configured indexes and channels."""
    found = survey_team(targets, matrix, base, formats, indexes, client, conda)
    return solve_team(targets, matrix, found.shared.applied_to(base), found.per_target)


class SharedLocker:
    """Lock identical inputs once: targets whose pyproject differs only in the project name
    (same variant, Python and packages) get the same Poetry lock, which does not record the name."""

    def __init__(self, tool: PoetryTool) -> None:
        self._tool = tool
        self._guard = threading.Lock()
        self._results: dict[str, Future[bytes]] = {}

    @staticmethod
    def key(pyproject_text: str, previous_lock: bytes | None) -> str:
        document = tomlkit.parse(pyproject_text)
        project = document.get("project")
        if isinstance(project, dict):
            project["name"] = "stack-resolver-env"
        digest = hashlib.sha256(tomlkit.dumps(document).encode())
        digest.update(previous_lock or b"")
        return digest.hexdigest()

    def __call__(self, pyproject_text: str, previous_lock: bytes | None) -> bytes:
        key = self.key(pyproject_text, previous_lock)
        with self._guard:
            future = self._results.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._results[key] = future
        if owner:
            try:
                future.set_result(lock_in_staging(pyproject_text, previous_lock, self._tool))
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


@dataclass(frozen=True)
class TargetWritten:
    directory: Path
    reused: bool
    changed: tuple[str, ...]


@dataclass(frozen=True)
class TeamLockOutcome:
    resolution: TeamResolution
    written: tuple[TargetWritten, ...]
    team_file_changed: bool


def lock_team(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    packages: Sequence[str],
    formats: Sequence[str],
    envs: Path,
    indexes: Indexes,
    client: IndexClient,
    *,
    tool: PoetryTool | None = None,
    conda: CondaSettings | None = None,
    jobs: int | None = None,
    request_hash: str | None = None,
) -> TeamLockOutcome:
    """`request_hash`: the digest of the run's inputs (resolver/lock/fresh.py), kept in the team
    lock so that an unchanged re-run asks no index."""
    formats = stage.check_formats(formats)
    for target in targets:
        stage.check_target_name(target.name, "team target")
    found = survey_team(targets, matrix, base, formats, indexes, client, conda)
    resolution = solve_team(targets, matrix, found.shared.applied_to(base), found.per_target)
    lockers = stage.Lockers(conda=conda)
    if "poetry" in formats:
        tool = tool or PoetryTool(environ=dict(os.environ))
        lockers = dataclasses.replace(lockers, poetry_version=tool.version(), poetry=SharedLocker(tool))

    # Index look-ups (listings, PEP 658 metadata) run here, one thread; only the lockers run in
    # parallel. The torch metadata every target's pyproject needs is asked for at once first.
    plans = []
    for target in targets:
        res = resolution.targets[target.name]
        plans.append(
            stage.LockPlan(
                target.name,
                stage.target_directory(envs, target.name),
                target.host,
                res,
                indexes.variant_url(res.variant) if res.local_label else None,
            )
        )
    if "poetry" in formats:
        client.prefetch_metadata(
            file
            for plan in plans
            if plan.index_url is not None
            and (file := torch_metadata_file(plan.resolution, client, plan.index_url, plan.host.platform))
        )
    prepared = [stage.prepare(plan, matrix, formats, packages, indexes, client, lockers) for plan in plans]

    workers = max(1, min(jobs or default_jobs(), len(targets)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            locked = list(pool.map(lambda item: stage.lock(item, lockers), prepared))
        except BaseException:
            # Interrupted or failed: end every Poetry still running, so the pool's shutdown
            # does not wait for them (their staging folders go with them).
            pool.shutdown(wait=False, cancel_futures=True)
            CHILDREN.terminate_all()
            raise
    # The index client is not shared across threads: the hash checks run here, before the commit.
    staged = [stage.finish(item, matrix, client) for item in locked]

    summary = team_json(resolution, indexes)
    files: dict[Path, bytes] = {}
    for target, item in zip(targets, staged, strict=True):
        for name, data in item.files.items():
            files[item.directory / name] = data
        on_disk = (
            {p.name for p in item.directory.iterdir() if p.is_file() and not p.name.startswith(".")}
            if item.directory.is_dir()
            else set()
        )
        entry = summary["targets"][target.name]
        entry["files"] = sorted(on_disk | set(item.files))
        for key, name in (("lock_sha256", LOCKFILE), ("conda_lock_sha256", stage.CONDA_LOCKFILE)):
            content = item.files[name] if name in item.files else read_bytes(item.directory / name)
            if content is not None and name in entry["files"]:
                entry[key] = hashlib.sha256(content).hexdigest()
        entry["members"] = target.members
    section = fresh_team_section(request_hash, found) if request_hash is not None else None
    if section is not None:
        summary["fresh"] = section
    team_file = envs / TEAM_LOCK
    files[team_file] = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()
    changed = set(commit(envs, files))
    written = tuple(
        TargetWritten(
            item.directory,
            item.reused,
            tuple(name for name in item.files if item.directory / name in changed),
        )
        for item in staged
    )
    return TeamLockOutcome(resolution, written, team_file in changed)


def fresh_team_section(request_hash: str, found: TeamAvailability) -> dict[str, Any] | None:
    """The team lock's `fresh` key: the inputs digest and the survey, shared and per target."""
    shared = fresh.fresh_section(request_hash, found.shared)
    per_target = {
        name: fresh.fresh_section(request_hash, Availability(builds))
        for name, builds in found.per_target.items()
    }
    if shared is None or any(section is None for section in per_target.values()):
        return None
    shared["per_target"] = {name: section["unavailable"] for name, section in per_target.items() if section}
    return shared


def unchanged_team(
    envs: Path, request_hash: str, targets: Sequence[Target], matrix: Matrix, base: Request, indexes: Indexes
) -> TeamLockOutcome | None:
    """The committed team lock, when it was made from inputs with this digest, every target's files
    are as committed, and an offline solve with the recorded survey chooses what it records."""
    try:
        data = json.loads((envs / TEAM_LOCK).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    section = data.get("fresh") if isinstance(data, dict) else None
    if not isinstance(section, dict) or section.get("request_hash") != request_hash:
        return None
    shared = fresh.recorded_availability(section)
    per_target: dict[str, Mapping[tuple[str, str], Reason]] = {}
    recorded = section.get("per_target")
    for target in targets:
        entry = recorded.get(target.name) if isinstance(recorded, dict) else None
        found = fresh.recorded_availability({"unavailable": entry}) if isinstance(entry, dict) else None
        directory = stage.target_directory(envs, target.name)
        if found is None or not fresh.files_intact(directory, previous_record(directory)):
            return None
        per_target[target.name] = found.builds
    if shared is None:
        return None
    resolution = solve_team(targets, matrix, shared.applied_to(base), per_target)
    expected = team_json(resolution, indexes)
    committed = data.get("targets")
    if data.get("versions") != expected["versions"] or not isinstance(committed, dict):
        return None
    if set(committed) != set(expected["targets"]):
        return None
    for name, entry in expected["targets"].items():
        if not isinstance(committed[name], dict) or any(
            committed[name].get(k) != v for k, v in entry.items()
        ):
            return None
    written = tuple(TargetWritten(stage.target_directory(envs, t.name), True, ()) for t in targets)
    return TeamLockOutcome(resolution, written, False)


def render_team(resolution: TeamResolution, targets: Sequence[Target]) -> str:
    lines = ["Team version set:"]
    for name, version in resolution.versions.items():
        lines.append(f"  {name:12s} {version or 'none released for this torch'}")
    lines.append("")
    lines.append("Targets:")
    width = max(len(t.name) for t in targets)
    for target in targets:
        res = resolution.targets[target.name]
        members = f"  ({target.members} hosts)" if target.members > 1 else ""
        lines.append(
            f"  {target.name:{width}s}  {res.torch:18s} {res.variant:8s} python {res.python}{members}"
        )
    return "\n".join(lines) + "\n"


def read_team_lock(envs: Path) -> Mapping[str, Any] | None:
    path = envs / TEAM_LOCK
    if not path.exists():
        return None
    hint = "run `stack-resolver lock` to write it again (or restore it from version control)"
    data = files.load_json(path, "team lock", hint=hint)
    if not isinstance(data, dict):
        raise InputError("a team lock must hold one JSON object", location=Location(str(path)), hint=hint)
    _check_team_lock(data, str(path), hint)
    return data


def _check_team_lock(data: Mapping[str, Any], origin: str, hint: str) -> None:
    """What the audit reads from a team lock has the shape `team_json` writes."""
    targets = data.get("targets", {})
    if not isinstance(targets, dict):
        raise InputError("'targets' must be an object", location=Location(origin, key="targets"), hint=hint)
    for name, entry in targets.items():
        key = f"targets.{name}"
        if not isinstance(entry, dict):
            raise InputError("each target must be an object", location=Location(origin, key=key), hint=hint)
        for field_name in ("torch", "variant", "python"):
            value = entry.get(field_name)
            if value is not None and not isinstance(value, str):
                raise InputError(
                    "must be a string",
                    location=Location(origin, key=f"{key}.{field_name}"),
                    value=value,
                    hint=hint,
                )
        torch = entry.get("torch")
        try:
            if torch:
                Version(torch.split("+", 1)[0])
        except InvalidVersion:
            raise InputError(
                "not a torch version", location=Location(origin, key=f"{key}.torch"), value=torch, hint=hint
            ) from None
