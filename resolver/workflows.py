"""The `resolve` job as plain functions: host + team + matrix -> resolution -> envs/<target>/."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.config import Indexes, TeamConfig
from resolver.errors import InputError
from resolver.fsutil import sweep_stale_temps
from resolver.host.model import Host
from resolver.index.availability import solve_available
from resolver.index.client import HttpPolicy, IndexClient
from resolver.lock.environment import (
    Staged,
    Written,
    base_record,
    commit,
    environment_spec,
    index_bound_requirements,
    previous_record,
    stage_environment,
    target_name_for,
    with_formats,
)
from resolver.lock.poetry.mirror import mirrored_tool
from resolver.lock.poetry.tool import PoetryTool
from resolver.matrix.model import Matrix
from resolver.solve.request import Request
from resolver.solve.search import Resolution, solve

if TYPE_CHECKING:
    from resolver.lock.conda import CondaSettings


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    from resolver.dirs import http_cache_dir

    return http_cache_dir(environ)


def default_conda_cache_dir(environ: Mapping[str, str]) -> Path:
    """Repodata that py-rattler fetched: beside the HTTP cache."""
    return default_cache_dir(environ).parent / "conda"


def make_client(environ: Mapping[str, str], offline: bool) -> IndexClient:
    from resolver.progress import traced_session

    return IndexClient(
        policy=HttpPolicy.from_environ(environ),
        cache_dir=default_cache_dir(environ),
        offline=offline,
        session=traced_session(),  # -vv names each request
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
    formats: Sequence[str] | None = None,
    conda: CondaSettings | None = None,
) -> ResolveOutcome:
    """Solve, stage every format's files (Poetry locks in a staging folder, conda solves in-process),
    then commit them together; a failure in any format writes nothing."""
    formats = tuple(dict.fromkeys(formats or team.formats))
    for fmt in formats:
        if fmt not in ("poetry", "conda"):
            raise InputError("unknown lock format", value=fmt, hint="poetry or conda")
    # The conda machinery (asyncio, the lock writer) is loaded only for conda targets.
    from resolver.lock.conda import CondaSettings, channel_gaps, conda_inputs, stage_conda

    conda = conda or CondaSettings(channels=team.channels)
    sweep_stale_temps(envs_dir_for(team))
    if "conda" in formats:
        # Builds the conda channels lack are skipped like builds missing on a pip index.
        gaps, missing_transformers = channel_gaps(matrix, host, team.packages, conda)
        request = replace(
            request,
            unavailable={**gaps, **request.unavailable},
            unavailable_transformers={**missing_transformers, **request.unavailable_transformers},
        )
    if "poetry" in formats:
        resolution = solve_available(host, matrix, request, indexes, client)
    else:
        resolution = solve(host, matrix, request)
    name = target or target_name_for(host, resolution.variant, resolution.python)
    directory = envs_dir_for(team) / name
    index_url = indexes.variant_url(resolution.variant) if resolution.local_label else None
    previous = previous_record(directory)
    sections: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    reused = True
    if "conda" in formats:
        inputs = conda_inputs(name, host, matrix, resolution, team.packages, conda)
        staged_conda = stage_conda(directory, inputs, conda, previous)
        sections["conda"] = staged_conda.record
        files.update(staged_conda.files)
        reused = staged_conda.reused
    poetry = (
        _stage_poetry(host, matrix, resolution, team, indexes, client, tool, name, directory, index_url)
        if "poetry" in formats
        else None
    )
    staged = with_formats(
        directory, base_record(host, matrix, resolution, index_url), formats, poetry, sections, files, reused
    )
    (written,) = commit([staged])
    return ResolveOutcome(name, resolution, index_url, written)


def _stage_poetry(
    host: Host,
    matrix: Matrix,
    resolution: Resolution,
    team: TeamConfig,
    indexes: Indexes,
    client: IndexClient,
    tool: PoetryTool | None,
    name: str,
    directory: Path,
    index_url: str | None,
) -> Staged:
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
    # Poetry reads the indexes through the tool's cache (resolver/offline.py): what --offline uses.
    with mirrored_tool(client, tool or PoetryTool(environ=dict(os.environ))) as mirrored:
        return stage_environment(
            directory, host, matrix, resolution, spec, index_url, mirrored, mirrored.version(), client=client
        )
