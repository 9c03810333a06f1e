"""`lock --check`: is every target's lock current? A check is a lock that may not lock: each
target is prepared exactly as `lock` prepares it (resolver/lock/target.py), and a target whose
lock could not be reused (its record does not vouch for what is on disk) is stale. Nothing is
written and Poetry never runs (its version is read, not started, where it can be)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.index.client import IndexClient
from resolver.lock import target as stage
from resolver.lock.poetry.tool import LOCKFILE, PYPROJECT
from resolver.matrix.model import Matrix
from resolver.sources import Indexes
from resolver.team.solve import TeamResolution
from resolver.team.targets import Target


@dataclass(frozen=True)
class TargetCheck:
    name: str
    directory: Path
    fresh: bool
    why: str


def check_targets(
    targets: Sequence[Target],
    resolution: TeamResolution,
    matrix: Matrix,
    packages: Sequence[str],
    formats: Sequence[str],
    envs: Path,
    indexes: Indexes,
    client: IndexClient,
    lockers: stage.Lockers,
) -> list[TargetCheck]:
    checks = []
    for target in targets:
        res = resolution.targets[target.name]
        plan = stage.LockPlan(
            target.name,
            stage.target_directory(envs, target.name),
            target.host,
            res,
            indexes.variant_url(res.variant) if res.local_label else None,
        )
        prepared = stage.prepare(plan, matrix, formats, packages, indexes, client, lockers)
        fresh = (prepared.poetry is None or prepared.poetry.reused_lock is not None) and (
            prepared.conda is None or prepared.conda.reused_lock is not None
        )
        why = "up to date" if fresh else _why(prepared, matrix)
        checks.append(TargetCheck(target.name, plan.directory, fresh, why))
    return checks


def _why(prepared: stage.Prepared, matrix: Matrix) -> str:
    directory = prepared.plan.directory
    previous: Mapping[str, Any] = prepared.previous
    if not (directory / LOCKFILE).is_file() and not (directory / stage.CONDA_LOCKFILE).is_file():
        return "not locked"
    poetry = prepared.poetry
    if poetry is not None:
        pyproject = directory / PYPROJECT
        if not pyproject.is_file() or pyproject.read_bytes() != poetry.pyproject:
            return "pyproject.toml would change (packages, versions or indexes)"
    if previous.get("matrix_version") != matrix.version:
        return f"the matrix changed ({previous.get('matrix_version')} -> {matrix.version})"
    if poetry is not None and poetry.seed is None:
        return "poetry.lock is not the lock its record vouches for (edited, emptied or stale)"
    return "its inputs changed (resolution, Poetry or tool version)"
