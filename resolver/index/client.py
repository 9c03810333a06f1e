"""A small client for simple-API package indexes (PEP 503 HTML, PEP 691 JSON, PEP 658 metadata).

Every request is bounded: a deadline per attempt (STACK_RESOLVER_HTTP_TIMEOUT seconds for the
connection and the whole body, so an index that trickles a byte a second, or never ends its body,
cannot stall a run), a fixed number of retries with exponential backoff for 429/5xx, broken
connections and missed deadlines (a Retry-After header is honoured up to the backoff cap), and a
response that does not parse is retried too, never half-used. Settings come from
`HttpPolicy.from_environ` (STACK_RESOLVER_HTTP_TIMEOUT, _RETRIES, _BACKOFF, _MAX_BACKOFF).

Listings and metadata are cached in memory per run and on disk with their ETag / Last-Modified: a
later run revalidates them (a 304 is answered from the cache), and `--offline` works from the
cache alone. Reading the pages themselves is resolver/index/listing.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import requests
import urllib3
from packaging.utils import canonicalize_name

from resolver.errors import ExternalToolError, InputError, Location
from resolver.fsutil import atomic_write_bytes
from resolver.index.credentials import Credential, Credentials, keyring_credential, origin_of
from resolver.index.listing import (
    JSON_TYPE,
    IndexFile,
    IndexParseError,
    is_listing,
    is_metadata,
    parse_listing,
)

ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
UNREACHABLE_HINT = (
    "the index may be down; retry later, raise STACK_RESOLVER_HTTP_RETRIES, or configure a mirror "
    "([indexes] in envs/team.toml, STACK_RESOLVER_PYTORCH_INDEX, STACK_RESOLVER_INDEX_URL)"
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Requests in flight at once (the survey's listings, the walk ahead of Poetry), and so the
# connections kept per host: enough that a dependency level is asked for in one round trip.
IN_FLIGHT = 32


@dataclass(frozen=True)
class HttpPolicy:
    timeout: float = 15.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    # How to talk to the indexes, not how hard to try: kept out of comparisons and reprs.
    credentials: Credentials = field(default_factory=Credentials, compare=False, repr=False)
    ca_bundle: str | None = field(default=None, compare=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HttpPolicy:
        def number(name: str, default: float, kind: type = float, *, positive: bool = False) -> Any:
            text = environ.get(name, "").strip()
            if text == "":
                return default
            try:
                value = kind(text)
            except ValueError:
                raise InputError(
                    "not a number", location=Location(f"${name}"), value=text, hint=f"e.g. {name}={default:g}"
                ) from None
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                need = (
                    "more than 0 seconds: a request cannot go without a deadline" if positive else "0 or more"
                )
                raise InputError(
                    f"must be {need}",
                    location=Location(f"${name}"),
                    value=text,
                    hint=f"e.g. {name}={default:g}",
                )
            return value

        return cls(
            timeout=number("STACK_RESOLVER_HTTP_TIMEOUT", cls.timeout, positive=True),
            retries=number("STACK_RESOLVER_HTTP_RETRIES", cls.retries, int),
            backoff=number("STACK_RESOLVER_HTTP_BACKOFF", cls.backoff),
            max_backoff=number("STACK_RESOLVER_HTTP_MAX_BACKOFF", cls.max_backoff),
        )


@dataclass(frozen=True)
class FileDigests:
    sha256: str
    md5: str
    size: int


@dataclass
class RunMemory:
    """The pages and metadata one run has fetched, shared by all of the run's clients: one
    request per URL per run, and a request already in flight is waited for, not sent again."""

    pages: dict[str, tuple[str, str]] = field(default_factory=dict)
    _in_flight: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def once(self, url: str, fetch: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        if url in self.pages:
            return self.pages[url]
        with self._guard:
            lock = self._in_flight.setdefault(url, threading.Lock())
        with lock:
            if url not in self.pages:
                self.pages[url] = fetch()
        return self.pages[url]


@dataclass
class IndexClient:
    """Fetch project listings. `session` and `sleep` are injectable for tests."""

    policy: HttpPolicy = field(default_factory=HttpPolicy)
    cache_dir: Path | None = None
    offline: bool = False
    session: Any = None
    sleep: Callable[[float], None] = time.sleep
    attempts: dict[str, int] = field(default_factory=dict)
    _memo: dict[str, tuple[IndexFile, ...]] = field(default_factory=dict)
    # pages fetched in this run, shared with the clients that serve Poetry (resolver/lock/poetry/mirror.py)
    # and fetch ahead of it (resolver/lock/poetry/prefetch.py)
    run: RunMemory = field(default_factory=lambda: RunMemory())
    # a URL that already failed all its attempts in this run fails again at once, not with a
    # fresh round of retries
    _failed: dict[str, ExternalToolError] = field(default_factory=dict)
    # credentials keyring gave after a 401, by origin
    _from_keyring: dict[str, Credential] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = requests.Session()
        pooled(self.session)

    def project_url(self, index_url: str, project: str) -> str:
        return f"{index_url.rstrip('/')}/{canonicalize_name(project)}/"

    def files(self, index_url: str, project: str) -> tuple[IndexFile, ...]:
        """The files of one project on one index; one request per (index, project) per run."""
        url = self.project_url(index_url, project)
        if url not in self._memo:
            body, content_type = self.page(url)
            try:
                listing = parse_listing(body, content_type, url)
            except IndexParseError as exc:
                raise ExternalToolError(
                    f"{url} sent a listing that cannot be parsed ({exc})",
                    hint="the index or a proxy in front of it is faulty; try again or use another mirror",
                ) from None
            self._memo[url] = listing
        return self._memo[url]

    # -- HTTP with retries and an on-disk cache --------------------------------------------

    def _cache_path(self, url: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    def _read_cache(self, url: str) -> dict[str, Any] | None:
        path = self._cache_path(url)
        if path is None or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return entry if isinstance(entry, dict) and entry.get("url") == url else None

    def _write_cache(self, url: str, body: str, headers: Mapping[str, str]) -> None:
        path = self._cache_path(url)
        if path is None:
            return
        entry = {
            "url": url,
            "body": body,
            "content_type": headers.get("Content-Type", ""),
            "etag": headers.get("ETag"),
            "last_modified": headers.get("Last-Modified"),
        }
        atomic_write_bytes(path, json.dumps(entry, sort_keys=True).encode(), durable=False)

    def page(self, url: str) -> tuple[str, str]:
        """A simple-API page (body, content type), validated, cached; a 404 is an empty listing.
        Also what resolver/lock/poetry/mirror.py serves to Poetry, so every page Poetry reads is cached."""
        if url in self._failed:
            raise self._failed[url]
        try:
            return self.run.once(url, lambda: self._get(url, is_listing))
        except ExternalToolError as exc:
            self._failed[url] = exc
            raise

    def prefetch(self, index_urls_and_projects: Iterable[tuple[str, str]]) -> None:
        """Fetch several listings at once (they are independent); later `files()` calls find them.
        Failures are left for those calls to report, with their own retries and messages."""
        self._all_at_once([self.project_url(i, p) for i, p in index_urls_and_projects], self.page)

    def prefetch_metadata(self, files: Iterable[IndexFile]) -> None:
        """`prefetch` for the PEP 658 metadata of several files."""
        self._all_at_once([f.metadata_url for f in files], self.metadata_at)

    def _all_at_once(self, urls: list[str], fetch: Callable[[str], object]) -> None:
        wanted = [u for u in dict.fromkeys(urls) if u not in self.run.pages]
        if len(wanted) < 2 or self.offline:
            return

        def quietly(url: str) -> None:
            with contextlib.suppress(ExternalToolError):
                fetch(url)

        with ThreadPoolExecutor(max_workers=min(IN_FLIGHT, len(wanted))) as pool:
            list(pool.map(quietly, wanted))

    def metadata(self, file: IndexFile) -> str:
        """The PEP 658 core metadata of a file (`<file URL>.metadata`)."""
        return self.metadata_at(file.metadata_url)

    def metadata_at(self, url: str) -> str:
        """PEP 658 core metadata by its own URL (`<file URL>.metadata`), validated, cached."""
        return self.run.once(url, lambda: self._get(url, is_metadata))[0]

    def file_sha256(self, url: str) -> str:
        """The sha256 of the file at `url`, computed while streaming it (never held in memory),
        under the same policy as listings: retried on 429/5xx, broken or truncated transfers."""
        return self.download(url).sha256

    def download(self, url: str, destination: Path | None = None) -> FileDigests:
        """Stream the file at `url` (into `destination` when given, rewritten on each attempt),
        computing its sha256 and md5 on the way; retried like `file_sha256`."""
        url = url.split("#", 1)[0]

        def attempt() -> FileDigests:
            deadline = Deadline(self.policy.timeout)
            # identity: the bytes hashed are the file's, not a compressed transfer of it
            with self._send(url, {"Accept-Encoding": "identity"}, deadline) as response:
                if response.status_code != 200:
                    self._refuse_or_retry(url, response)
                deadline.extend(_transfer_time(response))
                digest, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
                with destination.open("wb") if destination is not None else nullcontext() as sink:
                    for chunk in deadline.chunks(response):
                        digest.update(chunk)
                        md5.update(chunk)
                        size += len(chunk)
                        if sink is not None:
                            sink.write(chunk)
                _check_length(response, size)
                return FileDigests(digest.hexdigest(), md5.hexdigest(), size)

        return self._retrying(url, attempt)

    def _get(self, url: str, valid: Callable[[str, str, str], bool]) -> tuple[str, str]:
        cached = self._read_cache(url)
        if self.offline:
            if cached is None:
                raise ExternalToolError(
                    f"--offline: {url} is not in the cache",
                    hint="run once online to fill the cache, or drop --offline",
                )
            return str(cached["body"]), str(cached.get("content_type", ""))
        headers = {"Accept": ACCEPT}
        if cached is not None:
            if cached.get("etag"):
                headers["If-None-Match"] = str(cached["etag"])
            if cached.get("last_modified"):
                headers["If-Modified-Since"] = str(cached["last_modified"])

        def attempt() -> tuple[str, str]:
            deadline = Deadline(self.policy.timeout)
            with self._send(url, headers, deadline) as response:
                # only a 200's body is used; any other answer is judged by its status alone
                body = b"".join(deadline.chunks(response)) if response.status_code == 200 else b""
            if response.status_code == 304 and cached is not None:
                return str(cached["body"]), str(cached.get("content_type", ""))
            if response.status_code == 404 and valid is is_listing:
                # A project the index does not have: an empty listing, not an outage. Cached
                # like any listing, so --offline gives the answer the index gave.
                empty = '{"meta": {"api-version": "1.0"}, "files": []}'
                self._write_cache(url, empty, {"Content-Type": JSON_TYPE})
                return empty, JSON_TYPE
            if response.status_code != 200:
                self._refuse_or_retry(url, response)
            _check_length(response, _wire_size(response, len(body)))
            text = body.decode(response.encoding or "utf-8", errors="replace")
            content_type = response.headers.get("Content-Type", "")
            if not valid(text, content_type, url):
                raise _TryAgain("response does not parse as a simple-API listing")
            self._write_cache(url, text, response.headers)
            return text, content_type

        return self._retrying(url, attempt)

    def _send(self, url: str, headers: Mapping[str, str], deadline: Deadline) -> Any:
        """One GET, streamed, with the origin's credentials (else requests reads ~/.netrc); after
        a 401 without configured credentials, once more with keyring's, as pip does."""
        configured = self.policy.credentials.for_url(url) or self._from_keyring.get(origin_of(url))
        options: dict[str, Any] = {"headers": dict(headers), "stream": True}
        if self.policy.ca_bundle is not None:
            options["verify"] = self.policy.ca_bundle
        auth = configured.auth() if configured is not None else None
        response = self.session.get(url, auth=auth, timeout=deadline.timeout(), **options)
        if response.status_code == 401 and configured is None:
            found = keyring_credential(url)
            if found is not None:
                self._from_keyring[origin_of(url)] = found
                response.close()
                response = self.session.get(url, auth=found.auth(), timeout=deadline.timeout(), **options)
        return response

    def _retrying(self, url: str, attempt: Callable[[], _T]) -> _T:
        """The one retry policy: up to `retries` more attempts after the first, exponential
        backoff capped at `max_backoff` (a Retry-After header replaces it, capped too)."""
        last_problem = "no attempt made"
        for number in range(self.policy.retries + 1):
            self.attempts[url] = self.attempts.get(url, 0) + 1
            delay = min(self.policy.backoff * (2**number), self.policy.max_backoff)
            try:
                return attempt()
            except _TryAgain as again:
                last_problem = again.problem
                if again.retry_after is not None:
                    delay = min(again.retry_after, self.policy.max_backoff)
            except requests.RequestException as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            if number < self.policy.retries:
                self.sleep(delay)
        raise ExternalToolError(
            f"{url} failed after {self.policy.retries + 1} attempts ({last_problem})",
            hint=UNREACHABLE_HINT,
        )

    @staticmethod
    def _refuse_or_retry(url: str, response: Any) -> NoReturn:
        """A non-200 answer: 429/5xx are worth another attempt; anything else is final."""
        if response.status_code in RETRY_STATUSES:
            retry_after = str(response.headers.get("Retry-After", "")).strip()
            raise _TryAgain(
                f"HTTP {response.status_code}", float(retry_after) if retry_after.isdigit() else None
            )
        raise ExternalToolError(
            f"{url} answered HTTP {response.status_code}",
            hint="check the index URL and your credentials (in the URL, ~/.netrc or keyring)"
            if response.status_code in (401, 403)
            else "check the index URL",
        )


_T = TypeVar("_T")


def pooled(session: Any) -> Any:
    """`session` keeping up to IN_FLIGHT connections per host (requests keeps 10, and above that
    urllib3 drops each extra connection with a warning on stderr)."""
    if isinstance(session, requests.Session):
        for prefix in ("https://", "http://"):
            if type(session.adapters.get(prefix)) is requests.adapters.HTTPAdapter:  # not a caller's own
                adapter = requests.adapters.HTTPAdapter(pool_connections=IN_FLIGHT, pool_maxsize=IN_FLIGHT)
                session.mount(prefix, adapter)
    return session


class _TryAgain(Exception):
    """This attempt failed in a way another attempt may not (a 5xx, a truncated or garbled body)."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


class Deadline:
    """One request's deadline: the connection and the whole body within `seconds`. Each read
    waits at most the time left (the socket's timeout is shortened as it runs out), and the
    body is read as it arrives, so a trickling or endless body ends the attempt on time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise _TryAgain(f"no complete response within {self.seconds:g} s (STACK_RESOLVER_HTTP_TIMEOUT)")
        return left

    def timeout(self) -> float:
        return self.left()

    def extend(self, seconds: float) -> None:
        self.seconds += seconds
        self.ends += seconds

    def chunks(self, response: Any) -> Iterator[bytes]:
        raw = response.raw
        while True:
            left = self.left()
            connection = getattr(raw, "connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                sock.settimeout(left)
            try:
                chunk = raw.read1(1 << 16, decode_content=True)
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                if time.monotonic() >= self.ends:
                    self.left()
                raise requests.ConnectionError(f"the body broke off: {exc}") from None
            if not chunk:
                return
            yield chunk


# A file download (a wheel, for its hash) may take its size at this rate on top of the deadline;
# one that does not say its size gets an hour.
DOWNLOAD_MIN_RATE = 1 << 20  # bytes per second
DOWNLOAD_UNSIZED_S = 3600.0


def _transfer_time(response: Any) -> float:
    declared = str(response.headers.get("Content-Length", ""))
    return int(declared) / DOWNLOAD_MIN_RATE if declared.isdigit() else DOWNLOAD_UNSIZED_S


def _wire_size(response: Any, fallback: int) -> int:
    """Bytes as sent (before any Content-Encoding is undone): what Content-Length counts."""
    tell = getattr(response.raw, "tell", None)
    return int(tell()) if callable(tell) else fallback


def _check_length(response: Any, size: int) -> None:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) != size:
        raise _TryAgain(f"truncated response ({size} of {declared} bytes)")
