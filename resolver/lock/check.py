"""`lock --check`: is every target's lock current? A check is a lock that may not lock: each
target's inputs (the pyproject it would write, the matrix version, the resolution, the Poetry and
tool versions) are staged exactly as `lock` stages them, and a target that would need Poetry is
stale. Nothing is written and Poetry never runs (its version is read, not started, where it can be).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from resolver.config import Indexes, TeamConfig
from resolver.index.client import IndexClient
from resolver.lock.environment import (
    environment_spec,
    index_bound_requirements,
    previous_record,
    stage_environment,
)
from resolver.lock.poetry.tool import LOCKFILE, PYPROJECT, PoetryTool
from resolver.matrix.model import Matrix
from resolver.solve.request import Request
from resolver.team.lock import solve_team_available
from resolver.team.solve import Target
from resolver.workflows import envs_dir_for


@dataclass(frozen=True)
class TargetCheck:
    name: str
    directory: Path
    fresh: bool
    why: str


class _WouldLock(Exception):
    def __init__(self, pyproject_text: str) -> None:
        super().__init__("would lock")
        self.pyproject_text = pyproject_text


def _refuse(pyproject_text: str, previous_lock: bytes | None) -> bytes:
    raise _WouldLock(pyproject_text)


def check_team(
    targets: Sequence[Target],
    matrix: Matrix,
    request: Request,
    team: TeamConfig,
    indexes: Indexes,
    client: IndexClient,
    tool: PoetryTool,
) -> list[TargetCheck]:
    resolution = solve_team_available(targets, matrix, request, indexes, client, team.packages)
    envs = envs_dir_for(team)
    poetry_version = tool.version()
    checks = []
    for target in targets:
        res = resolution.targets[target.name]
        directory = envs / target.name
        index_url = indexes.variant_url(res.variant) if res.local_label else None
        bound = (
            index_bound_requirements(res, matrix, client, index_url, target.host.platform)
            if index_url is not None
            else []
        )
        previous = previous_record(directory)
        owned = previous.get("owned_dependencies", [])
        spec = environment_spec(
            target.name,
            res,
            team.packages,
            indexes,
            bound,
            frozenset(str(n) for n in owned) if isinstance(owned, list) else frozenset(),
        )
        try:
            stage_environment(
                directory, target.host, matrix, res, spec, index_url, tool, poetry_version, locker=_refuse
            )
        except _WouldLock as would:
            checks.append(
                TargetCheck(target.name, directory, False, _why(directory, would, previous, matrix))
            )
            continue
        checks.append(TargetCheck(target.name, directory, True, "up to date"))
    return checks


def _why(directory: Path, would: _WouldLock, previous: dict[str, object], matrix: Matrix) -> str:
    if not (directory / LOCKFILE).is_file():
        return "not locked"
    pyproject = directory / PYPROJECT
    if not pyproject.is_file() or pyproject.read_text(encoding="utf-8") != would.pyproject_text:
        return "pyproject.toml would change (packages, versions or indexes)"
    if previous.get("matrix_version") != matrix.version:
        return f"the matrix changed ({previous.get('matrix_version')} -> {matrix.version})"
    return "its inputs changed (resolution, Poetry or tool version)"
