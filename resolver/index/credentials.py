"""Index credentials stay in memory: taken out of URLs at the edge, never written or printed.

A URL such as `https://ci:TOKEN@mirror/whl/{variant}/simple` (from a variable, the team file or
pip's configuration) is split once, in `sources.effective_indexes`, into the URL without them
(what every record, cache key, pyproject.toml and poetry.lock holds) and a `Credentials` entry for
its origin. Requests to that origin carry them as HTTP basic auth. Where none are configured,
requests reads `~/.netrc` (or `$NETRC`), as pip and uv do; after a 401, `keyring` is asked (when
installed), as pip does. Poetry, when it talks to an index itself, gets them through its own
per-source variables (`POETRY_HTTP_BASIC_<SOURCE>_USERNAME` / `_PASSWORD`).

`redact` writes a URL for messages: `https://***@host/...`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s\"'<>]+)@")


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)

    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


def origin_of(url: str) -> str:
    """`https://host:port` of a URL, lower-cased, default port dropped: what credentials key on."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}"


def split_credentials(url: str) -> tuple[str, Credential | None]:
    """(the URL without `user:password@`, those credentials or None)."""
    try:
        parts = urllib.parse.urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:  # a port that is not a number: leave the URL to the caller's validation
        return url, None
    if username is None and password is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    credential = Credential(urllib.parse.unquote(username or ""), urllib.parse.unquote(password or ""))
    return clean, credential


def redact(text: str) -> str:
    """Every `scheme://user:password@` in `text` written as `scheme://***@`."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


@dataclass(frozen=True)
class Credentials:
    """Credentials by origin (`https://host:port`). Never printed: the repr names origins only."""

    by_origin: Mapping[str, Credential] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Credentials({sorted(self.by_origin)})"

    def with_url(self, url: str) -> tuple[str, Credentials]:
        """(the URL without credentials, these credentials plus the URL's, if it had any)."""
        clean, credential = split_credentials(url)
        if credential is None:
            return clean, self
        return clean, Credentials({**self.by_origin, origin_of(clean): credential})

    def for_url(self, url: str) -> Credential | None:
        return self.by_origin.get(origin_of(url))

    def auth_for(self, url: str) -> tuple[str, str] | None:
        credential = self.for_url(url)
        return credential.auth() if credential is not None else None


def keyring_credential(url: str) -> Credential | None:
    """What `keyring` holds for the URL, then for its host, as pip asks it (after a 401 only:
    a keyring backend may prompt or block, so it is never asked when nothing needs it)."""
    try:
        import keyring
    except ImportError:
        return None
    host = urllib.parse.urlsplit(url).hostname or ""
    for service in (url, origin_of(url), host):
        try:
            found: Any = keyring.get_credential(service, None)
        except Exception:  # a broken or absent backend is not a failed run: as pip, move on
            return None
        if found is not None and getattr(found, "username", None) is not None:
            return Credential(str(found.username), str(found.password))
    return None


def poetry_environment(sources: Mapping[str, str], credentials: Credentials) -> dict[str, str]:
    """Poetry's own per-source variables for each source (name -> URL) that has credentials:
    `POETRY_HTTP_BASIC_<NAME>_USERNAME` / `_PASSWORD`, the name upper-cased with `-` and `.` as `_`."""
    env: dict[str, str] = {}
    for name, url in sources.items():
        credential = credentials.for_url(url)
        if credential is None:
            continue
        key = re.sub(r"[^A-Z0-9]", "_", name.upper())
        env[f"POETRY_HTTP_BASIC_{key}_USERNAME"] = credential.username
        env[f"POETRY_HTTP_BASIC_{key}_PASSWORD"] = credential.password
    return env
