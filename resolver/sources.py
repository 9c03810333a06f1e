"""Where packages come from: the PyTorch index (its base URL; the variant is appended), the general
index, extra indexes and find-links, their credentials (kept apart from the URLs), the CA bundle
that secures them, and conda's channels.

Index URLs are configuration, never code: the PyTorch index comes from
`STACK_RESOLVER_PYTORCH_INDEX`, then `[indexes] pytorch` in the team file, then the public default
below. The general index comes from `STACK_RESOLVER_INDEX_URL`, then `[indexes] general`, then the
user's pip or uv configuration (`PIP_INDEX_URL`, `UV_DEFAULT_INDEX`, `UV_INDEX_URL`, pip.conf
`index-url`, uv.toml's default index; see `resolver.userconfig`); with none of these, it is left to
Poetry's built-in source. Extra indexes, find-links and a CA bundle come from the same pip/uv
configuration. Conda channels come from `STACK_RESOLVER_CONDA_CHANNELS`, then the team file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from resolver.errors import ConfigError, InputError, Location
from resolver.index.credentials import Credentials, redact, split_credentials

if TYPE_CHECKING:  # config.py imports this module: the team file's type is named for the checker only
    from resolver.config import TeamConfig

DEFAULT_PYTORCH_INDEX = "https://download.pytorch.org/whl"
DEFAULT_CHANNELS = ("conda-forge",)


@dataclass(frozen=True)
class Indexes:
    """Index URLs, never with credentials in them: those are in `credentials` (memory only)."""

    pytorch: str = DEFAULT_PYTORCH_INDEX
    general: str | None = None
    # From the user's pip/uv configuration: more indexes to search, wheel folders/pages, a CA bundle.
    extra: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str | None = None
    # (what, where it came from): ("general", "PIP_INDEX_URL"), ("extra", "/etc/pip.conf ..."), ...
    origins: tuple[tuple[str, str], ...] = ()
    credentials: Credentials = field(default_factory=Credentials, compare=False, repr=False)

    def origin(self, what: str) -> str | None:
        return dict(self.origins).get(what)

    def variant_url(self, variant: str) -> str:
        """The simple-API root for one variant: `{variant}` in the base is replaced (mirrors with
        another layout, e.g. `https://mirror/whl/{variant}/simple`); otherwise it is appended."""
        if "{variant}" in self.pytorch:
            return self.pytorch.replace("{variant}", variant)
        return f"{self.pytorch.rstrip('/')}/{variant}"


@dataclass(frozen=True)
class Channels:
    """Conda channels, by name or URL. A name is resolved against `alias` (a base URL), or against
    rattler's default channel alias when `alias` is None."""

    names: tuple[str, ...] = DEFAULT_CHANNELS
    alias: str | None = None


def url_like(text: str) -> bool:
    return text.startswith(("http://", "https://", "file://"))


# A conda token rides in the path: https://host/t/<token>/channel
_CONDA_TOKEN = re.compile(r"/t/[^/]+/")


def check_channel_url(url: str, origin: str, key: str) -> None:
    """A conda channel URL never carries credentials: it is written into environment.yml and
    conda-lock.yml, and nothing takes them out of the way for conda as for pip indexes."""
    _clean, credential = split_credentials(url)
    if credential is not None or (url_like(url) and _CONDA_TOKEN.search(url)):
        raise ConfigError(
            "credentials in a conda channel URL would be written into environment.yml and conda-lock.yml",
            location=Location(origin, key=key),
            value=_CONDA_TOKEN.sub("/t/***/", redact(url)),
            hint="use a channel or mirror that needs no credentials in its URL; credentials for conda "
            "channels are not supported yet",
        )


def effective_channels(team: TeamConfig, environ: Mapping[str, str]) -> Channels:
    """`STACK_RESOLVER_CONDA_CHANNELS` (comma-separated) and `STACK_RESOLVER_CONDA_CHANNEL_ALIAS`
    beat the team file."""
    names = team.channels.names
    text = environ.get("STACK_RESOLVER_CONDA_CHANNELS", "")
    if text.strip():
        names = tuple(n.strip() for n in text.split(",") if n.strip())
    alias = environ.get("STACK_RESOLVER_CONDA_CHANNEL_ALIAS") or team.channels.alias
    for name in names:
        check_channel_url(name, "STACK_RESOLVER_CONDA_CHANNELS", "")
    if alias:
        check_channel_url(alias, "STACK_RESOLVER_CONDA_CHANNEL_ALIAS", "")
    return Channels(names=names, alias=alias)


def effective_indexes(
    team: TeamConfig,
    environ: Mapping[str, str],
    pip_config_files: Sequence[Path],
    uv_config_files: Sequence[Path] | None = None,
) -> Indexes:
    """Apply the precedence documented above. The config files are injectable for tests; uv's
    default to `userconfig.uv_config_files` for the working directory (the project root).
    Credentials in a URL (`https://user:token@host/...`) move to `Indexes.credentials`: no URL
    here, nor its origin, carries them."""
    from resolver import userconfig

    pip = userconfig.read_pip_config(environ, pip_config_files)
    if uv_config_files is None:
        uv_config_files = userconfig.uv_config_files(environ, Path.cwd())
    uv = userconfig.read_uv_config(environ, uv_config_files)
    origins: list[tuple[str, str]] = []
    pytorch = environ.get("STACK_RESOLVER_PYTORCH_INDEX")
    origins.append(("pytorch", "STACK_RESOLVER_PYTORCH_INDEX"))
    if not pytorch:
        pytorch = team.indexes.pytorch
        from_team = team.path is not None and "pytorch" in team.raw.get("indexes", {})
        origins[-1] = ("pytorch", f"{team.path} [indexes] pytorch" if from_team else "default")
    candidates = [
        (environ.get("STACK_RESOLVER_INDEX_URL"), "STACK_RESOLVER_INDEX_URL"),
        (team.indexes.general, f"{team.path} [indexes] general"),
        (environ.get("PIP_INDEX_URL"), "PIP_INDEX_URL"),
        (environ.get("UV_DEFAULT_INDEX"), "UV_DEFAULT_INDEX"),
        (environ.get("UV_INDEX_URL"), "UV_INDEX_URL"),
        *((s.value, s.origin) for s in (pip.index, uv.index) if s is not None),
    ]
    general = next(((url.strip(), origin) for url, origin in candidates if url and url.strip()), None)
    _check_index_url(pytorch, origins[0][1])
    credentials = team.indexes.credentials
    pytorch, credentials = credentials.with_url(pytorch)
    general_url = None
    if general is not None:
        _check_index_url(*general)
        general_url, credentials = credentials.with_url(general[0])
        origins.append(("general", general[1]))
    extra: list[str] = []
    for setting in (*pip.extra, *uv.extra):
        _check_index_url(setting.value, setting.origin)
        url, credentials = credentials.with_url(setting.value)
        if url not in extra and url != general_url:
            extra.append(url)
            origins.append((f"extra:{url}", setting.origin))
    links: list[str] = []
    for setting in (*pip.find_links, *uv.find_links):
        url, credentials = credentials.with_url(setting.value)
        if url not in links:
            links.append(url)
            origins.append((f"find-links:{url}", setting.origin))
    if pip.cert is not None:
        origins.append(("cert", pip.cert.origin))
    return Indexes(
        pytorch=pytorch,
        general=general_url,
        extra=tuple(extra),
        find_links=tuple(links),
        cert=pip.cert.value if pip.cert is not None else None,
        origins=tuple(origins),
        credentials=credentials,
    )


def _check_index_url(url: str, origin: str) -> None:
    if not url_like(url):
        where = f"${origin}" if origin.isupper() else origin
        raise InputError(
            "index URL must be http(s) or file",
            location=Location(where),
            value=redact(url),
            hint="e.g. https://mirror.example.org/simple",
        )


CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def effective_ca_bundle(environ: Mapping[str, str], pip_config_files: Sequence[Path]) -> str | None:
    """The CA certificates to trust for HTTPS: `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` (what
    requests and Poetry read), then pip's `cert` (`PIP_CERT`, then pip's configuration), then
    `SSL_CERT_FILE`; None: the default bundle. A named file that is missing is bad input."""
    from resolver import userconfig

    candidates = [(f"${name}", environ.get(name, "").strip()) for name in CA_VARIABLES]
    cert = userconfig.read_pip_config(environ, pip_config_files).cert
    if cert is not None:
        candidates.append((f"${cert.origin}" if cert.origin.isupper() else cert.origin, cert.value))
    candidates.append(("$SSL_CERT_FILE", environ.get("SSL_CERT_FILE", "").strip()))
    where, path = next(((where, path) for where, path in candidates if path), ("", ""))
    if not path:
        return None
    if not Path(path).expanduser().exists():
        raise InputError(
            "CA certificate file not found",
            location=Location(where),
            value=path,
            hint="point it at a PEM bundle (or a folder of certificates), or unset it",
        )
    return str(Path(path).expanduser())


def default_pip_config_files(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """pip's own lookup order on this OS (site-wide, user, the environment's); later ones
    override earlier ones."""
    from resolver.userconfig import pip_config_files

    return pip_config_files(environ)
