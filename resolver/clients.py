"""What a run reaches the package sources with: the index client (the HTTP policy, the CA bundle pip
would use, the credentials taken out of the index URLs, the HTTP cache) and conda's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from resolver.config import TeamConfig
from resolver.sources import Indexes, default_pip_config_files, effective_ca_bundle

if TYPE_CHECKING:
    from resolver.index.client import IndexClient
    from resolver.lock.conda import CondaSettings


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    from resolver.dirs import http_cache_dir

    return http_cache_dir(environ)


def default_conda_cache_dir(environ: Mapping[str, str]) -> Path:
    """Repodata that py-rattler fetched: beside the HTTP cache."""
    return default_cache_dir(environ).parent / "conda"


def make_client(environ: Mapping[str, str], offline: bool, indexes: Indexes | None = None) -> IndexClient:
    """The run's index client: the HTTP policy from `environ`, the CA certificates pip would use,
    and the credentials `indexes` took out of their URLs (memory only)."""
    # the HTTP stack loads only for runs that reach an index: a dry run never does
    from resolver.index.client import HttpPolicy, IndexClient
    from resolver.index.credentials import Credentials
    from resolver.progress import traced_session

    policy = replace(
        HttpPolicy.from_environ(environ),
        credentials=indexes.credentials if indexes is not None else Credentials(),
        ca_bundle=effective_ca_bundle(environ, default_pip_config_files(environ)),
    )
    return IndexClient(
        policy=policy,
        cache_dir=default_cache_dir(environ),
        offline=offline,
        session=traced_session(),  # -vv names each request
    )


def conda_settings(team: TeamConfig, environ: Mapping[str, str], engine: str, offline: bool) -> CondaSettings:
    from resolver.lock.conda import CondaSettings
    from resolver.sources import effective_channels

    return CondaSettings(
        channels=effective_channels(team, environ),
        cache_dir=default_conda_cache_dir(environ),
        engine=engine,
        offline=offline,
        environ=dict(environ),
    )
