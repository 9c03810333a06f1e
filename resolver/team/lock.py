"""`stack-resolver lock`: lock every target of the team, in parallel, all or nothing.

Every target is staged first (Poetry runs in scratch folders, several at once); only when all
succeeded are the files committed, each with an atomic rename, and `envs/team.lock.json` last.
A failure anywhere leaves every file of `envs/` as it was. Unchanged inputs rewrite nothing.
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
from typing import Any

import tomlkit

from resolver.config import Indexes, TeamConfig
from resolver.explain.render import resolution_json
from resolver.fsutil import atomic_write_bytes, sweep_stale_temps
from resolver.index.availability import missing_builds, transformers_missing
from resolver.index.client import IndexClient
from resolver.lock.environment import (
    Staged,
    Written,
    check_lock_hashes,
    commit,
    environment_spec,
    index_bound_requirements,
    previous_record,
    stage_environment,
)
from resolver.lock.poetry.tool import LOCKFILE, PoetryTool, lock_in_staging
from resolver.matrix.model import Matrix
from resolver.solve.reasons import Reason
from resolver.solve.request import Request
from resolver.team.solve import Target, TeamResolution, solve_team
from resolver.workflows import envs_dir_for

TEAM_LOCK = "team.lock.json"


def team_json(resolution: TeamResolution, indexes: Indexes) -> dict[str, Any]:
    targets = {}
    for name, res in sorted(resolution.targets.items()):
        entry = resolution_json(res, indexes.variant_url(res.variant) if res.local_label else None)
        entry.pop("rejected")
        targets[name] = entry
    return {"versions": dict(resolution.versions), "targets": targets}


def solve_team_available(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    indexes: Indexes,
    client: IndexClient,
    packages: tuple[str, ...],
) -> TeamResolution:
    """The newest version set whose every build exists on the configured indexes: a build a
    target's index lacks is dropped for that target and the team is solved again."""
    missing_tf = transformers_missing(matrix, indexes, client, None, None)
    base = dataclasses.replace(base, unavailable_transformers={**missing_tf, **base.unavailable_transformers})
    unavailable: dict[str, dict[tuple[str, str], Reason]] = {}
    while True:
        resolution = solve_team(targets, matrix, base, unavailable)
        found = False
        for target in targets:
            res = resolution.targets[target.name]
            for _, why in missing_builds(res, indexes, packages, client, target.host.platform):
                unavailable.setdefault(target.name, {})[(str(res.release.version), res.variant)] = why
                found = True
        if not found:
            return resolution


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
class TeamLockOutcome:
    resolution: TeamResolution
    written: tuple[Written, ...]
    team_file_changed: bool


def lock_team(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    team: TeamConfig,
    indexes: Indexes,
    client: IndexClient,
    *,
    tool: PoetryTool | None = None,
    jobs: int | None = None,
) -> TeamLockOutcome:
    tool = tool or PoetryTool(environ=dict(os.environ))
    sweep_stale_temps(envs_dir_for(team))
    resolution = solve_team_available(targets, matrix, base, indexes, client, team.packages)
    envs = envs_dir_for(team)
    poetry_version = tool.version()

    # Index look-ups (listings, PEP 658 metadata) run here, one thread; only Poetry runs in parallel.
    specs = {}
    for target in targets:
        res = resolution.targets[target.name]
        index_url = indexes.variant_url(res.variant) if res.local_label else None
        bound = (
            index_bound_requirements(res, matrix, client, index_url, target.host.platform)
            if index_url is not None
            else []
        )
        owned = previous_record(envs / target.name).get("owned_dependencies", [])
        specs[target.name] = environment_spec(
            target.name,
            res,
            team.packages,
            indexes,
            bound,
            frozenset(str(n) for n in owned) if isinstance(owned, list) else frozenset(),
        )

    def stage(target: Target) -> Staged:
        res = resolution.targets[target.name]
        index_url = indexes.variant_url(res.variant) if res.local_label else None
        return stage_environment(
            envs / target.name,
            target.host,
            matrix,
            res,
            specs[target.name],
            index_url,
            tool,
            poetry_version,
            locker=locker,
        )

    locker = SharedLocker(tool)

    workers = max(1, min(jobs or os.cpu_count() or 1, len(targets)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        staged = list(pool.map(stage, targets))
    # The index client is not shared across threads: the hash check runs here, before the commit.
    for target, stage_result in zip(targets, staged, strict=True):
        if LOCKFILE in stage_result.files:
            check_lock_hashes(stage_result.files[LOCKFILE], specs[target.name], client)
    written = commit(staged)
    summary = team_json(resolution, indexes)
    for target, item in zip(targets, written, strict=True):
        lock_path = item.directory / LOCKFILE
        summary["targets"][target.name]["files"] = sorted(
            p.name for p in item.directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        summary["targets"][target.name]["lock_sha256"] = hashlib.sha256(lock_path.read_bytes()).hexdigest()
        summary["targets"][target.name]["members"] = target.members
    changed = atomic_write_bytes(
        envs / TEAM_LOCK, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()
    )
    return TeamLockOutcome(resolution, tuple(written), changed)


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
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None
