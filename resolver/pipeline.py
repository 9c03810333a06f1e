"""The `resolve` job as plain functions: host + team + matrix -> resolution -> envs/<target>/."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from resolver.availability import solve_available
from resolver.config import Indexes, TeamConfig
from resolver.environment import (
    Written,
    commit,
    environment_spec,
    index_bound_requirements,
    previous_record,
    stage_environment,
    target_name_for,
)
from resolver.host import Host
from resolver.index import HttpPolicy, IndexClient
from resolver.lock.poetry import PoetryTool
from resolver.matrix import Matrix
from resolver.solve import Request, Resolution


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("STACK_RESOLVER_CACHE_DIR"):
        return Path(environ["STACK_RESOLVER_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".cache")
    return Path(base) / "stack-resolver" / "http"


def make_client(environ: Mapping[str, str], offline: bool) -> IndexClient:
    return IndexClient(
        policy=HttpPolicy.from_environ(environ), cache_dir=default_cache_dir(environ), offline=offline
    )


def envs_dir_for(team: TeamConfig) -> Path:
    return team.path.parent if team.path is not None else Path("envs")


@dataclass(frozen=True)
class ResolveOutcome:
    target: str
    resolution: Resolution
    index_url: str | None
    written: Written


def resolve_and_write(
    host: Host,
    matrix: Matrix,
    request: Request,
    team: TeamConfig,
    indexes: Indexes,
    *,
    target: str | None,
    client: IndexClient,
    tool: PoetryTool | None = None,
) -> ResolveOutcome:
    tool = tool or PoetryTool(environ=dict(os.environ))
    resolution = solve_available(host, matrix, request, indexes, client)
    name = target or target_name_for(host, resolution)
    directory = envs_dir_for(team) / name
    index_url = indexes.variant_url(resolution.variant) if resolution.local_label else None
    bound = (
        index_bound_requirements(resolution, matrix, client, index_url, host.platform)
        if index_url is not None
        else []
    )
    previous = previous_record(directory)
    owned = previous.get("owned_dependencies", [])
    spec = environment_spec(
        name,
        resolution,
        team.packages,
        indexes,
        bound,
        frozenset(str(n) for n in owned) if isinstance(owned, list) else frozenset(),
    )
    staged = stage_environment(directory, host, matrix, resolution, spec, index_url, tool, tool.version())
    (written,) = commit([staged])
    return ResolveOutcome(name, resolution, index_url, written)
