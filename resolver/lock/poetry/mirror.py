"""Poetry reads the indexes through the tool's HTTP client: the default for every lock.
`--offline` runs need it (Poetry then sees nothing but the cache); online it pays at real index
latency, because the tool fetches ahead of Poetry (below) and Poetry's one-at-a-time requests are
then answered from memory (`benchmarks/lock.py` measures both ways). `STACK_RESOLVER_MIRROR=0`
lets Poetry talk to the index itself. `poetry_tool` is the one switch.

The mirror forwards only to the index hosts the pyproject's sources name, and to the hosts their
pages link files from; any other URL is refused.

`IndexMirror` is a read-only HTTP server on loopback (127.0.0.1, an ephemeral port, always stopped
on exit). Poetry locks a staging copy of the pyproject whose source URLs point at it; every page
and PEP 658 metadata file Poetry asks for is fetched with the tool's `IndexClient` (its retries,
its on-disk cache) and recorded in that cache. With `--offline` the client answers from the cache
alone: a missing page is a 404 to Poetry at once, and the run fails naming the missing URL. Wheel
files are never cached: online they are redirected to the index; offline a request for one fails
the run the same way (Poetry needs them only where an index has no PEP 658 metadata).

The mirror's URLs exist only inside the staging folder: `MirroredRunner` puts the real URLs back
into the poetry.lock Poetry wrote, and its `content-hash` (a hash that covers the source URLs)
back to the one of the real pyproject, after checking that it reproduces the hash Poetry computed.
So the committed lock is the one Poetry writes when it talks to the index itself.

While Poetry runs, `IndexMirror.fetching_ahead` fetches what it is about to read into the run's
memory (resolver/lock/poetry/prefetch.py), so Poetry's one-at-a-time requests are mostly answered at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import json
import re
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import tomlkit

from resolver.errors import ExternalToolError
from resolver.index.client import HttpPolicy, IndexClient
from resolver.index.credentials import poetry_environment
from resolver.index.listing import JSON_TYPE
from resolver.lock.poetry.prefetch import prefetch_for_poetry
from resolver.lock.poetry.tool import LOCKFILE, PYPROJECT, PoetryTool
from resolver.lock.runner import Completed, OnLine, Runner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_CONTENT_HASH = re.compile(r'^content-hash = "([0-9a-f]{64})"$', re.MULTILINE)


class IndexMirror:
    """`with IndexMirror(client) as mirror: mirror.url_for("https://host/simple")`."""

    def __init__(self, client: IndexClient, *, session_factory: Callable[[], Any] = requests.Session) -> None:
        self._template = client
        self._session_factory = session_factory  # injectable for tests
        self._local = threading.local()
        self._lock = threading.Lock()
        self._problems: list[ExternalToolError] = []
        self._clients: list[IndexClient] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # hosts it forwards to: the configured sources' hosts, and hosts their pages link to
        self._hosts: set[str] = set()

    def allow(self, upstream: str) -> None:
        netloc = urllib.parse.urlsplit(upstream).netloc
        if netloc:
            with self._lock:
                self._hosts.add(netloc.lower())

    def allowed(self, upstream: str) -> bool:
        with self._lock:
            return urllib.parse.urlsplit(upstream).netloc.lower() in self._hosts

    @property
    def offline(self) -> bool:
        return self._template.offline

    def direct_environment(self, pyproject: Mapping[str, Any]) -> dict[str, str]:
        """What Poetry needs to talk to the pyproject's sources itself (not through the mirror)."""
        return source_environment(pyproject, self._template.policy)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> IndexMirror:
        server = _Server(("127.0.0.1", 0), self)
        # shutdown() waits for the serving loop's next poll: keep that wait short, it ends every lock
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.session.close()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("IndexMirror is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- URL mapping: <base>/<scheme>/<host[:port]>/<path> <-> <scheme>://<host[:port]>/<path> --

    def url_for(self, upstream: str) -> str:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return upstream
        rest = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
        return f"{self.base_url}/{parts.scheme}/{parts.netloc}{rest}"

    def upstream_for(self, target: str) -> str | None:
        scheme, _, rest = target.lstrip("/").partition("/")
        netloc, slash, path = rest.partition("/")
        if scheme not in ("http", "https") or not netloc:
            return None
        return f"{scheme}://{netloc}{slash}{path}"

    def to_upstream(self, text: str) -> str:
        """Every mirror URL in `text` replaced by the index URL it stands for."""
        pattern = re.escape(self.base_url) + r"/(https?)/"
        return re.sub(pattern, r"\1://", text)

    # -- fetching ahead of Poetry ----------------------------------------------------------------

    @contextlib.contextmanager
    def fetching_ahead(self, pyproject: Mapping[str, Any]) -> Iterator[None]:
        """While this lasts, fetch what Poetry will read for `pyproject` into the run's memory,
        several requests at a time (resolver/lock/poetry/prefetch.py). Best effort, one attempt per URL:
        its failures are not the run's, so Poetry's own request still gets every retry."""
        if self.offline:
            yield
            return
        template = self._template
        client = IndexClient(
            policy=dataclasses.replace(template.policy, retries=0),
            cache_dir=template.cache_dir,
            session=self._session_factory(),
            run=template.run,
        )
        stop = threading.Event()
        walk = threading.Thread(
            target=prefetch_for_poetry, args=(client, pyproject, stop), name="prefetch", daemon=True
        )
        walk.start()
        try:
            yield
        finally:
            stop.set()
            walk.join(timeout=template.policy.timeout + 1)
            client.session.close()

    # -- what went wrong -------------------------------------------------------------------------

    def problems(self) -> list[ExternalToolError]:
        with self._lock:
            return list(self._problems)

    def _record(self, problem: ExternalToolError) -> None:
        with self._lock:
            self._problems.append(problem)

    # -- serving -----------------------------------------------------------------------------

    def _client(self) -> IndexClient:
        # One client per handler thread: a requests.Session is not shared across threads. The
        # pages fetched in this run are shared, so a page the tool already read is not fetched
        # again for Poetry.
        client: IndexClient | None = getattr(self._local, "client", None)
        if client is None:
            template = self._template
            client = IndexClient(
                policy=template.policy,
                cache_dir=template.cache_dir,
                offline=template.offline,
                session=self._session_factory(),
                run=template.run,
                _failed=template._failed,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def respond(self, target: str) -> tuple[int, bytes | _Download, dict[str, str]]:
        upstream = self.upstream_for(target)
        if upstream is None:
            return 404, b"not a mirrored URL\n", {}
        if not self.allowed(upstream):
            return 403, b"not a configured index host\n", {}
        path = urllib.parse.urlsplit(upstream).path
        try:
            if path.endswith(".metadata"):
                body = self._client().metadata_at(upstream).encode("utf-8")
                return 200, body, {"Content-Type": "application/octet-stream"}
            if path.endswith("/"):
                text, content_type = self._client().page(upstream)
                rewritten, empty = self._rewrite_page(text, content_type, upstream)
                if empty:  # how the index answered a project it does not have (see IndexClient.page)
                    return 404, b"no such project\n", {}
                return 200, rewritten.encode("utf-8"), {"Content-Type": content_type or "text/html"}
        except ExternalToolError as exc:
            self._record(exc)
            return 404, f"{exc.message}\n".encode(), {}
        # A distribution file: not cached (wheels are large). Poetry downloads one only where the
        # index serves no PEP 658 metadata for it.
        if self.offline:
            self._record(
                ExternalToolError(
                    f"--offline: {upstream} is not in the cache (Poetry needs the file itself: the index "
                    "serves no PEP 658 metadata for it)",
                    hint="run once online; files without metadata cannot be locked offline",
                )
            )
            return 404, b"not in the cache\n", {}
        if self._template.policy.credentials.for_url(upstream) is not None:
            # Poetry would follow a redirect without the credentials (they are the tool's, in
            # memory): fetch the file with them, and hand it over from a temporary file.
            return 200, _Download(self._client(), upstream), {"Content-Type": "application/octet-stream"}
        return 302, b"", {"Location": upstream}

    def _rewrite_page(self, text: str, content_type: str, page_url: str) -> tuple[str, bool]:
        """Links made absolute and pointed at the mirror, so metadata comes through it too."""
        if JSON_TYPE in content_type or content_type.endswith("json"):
            data = json.loads(text)
            files = data.get("files", []) if isinstance(data, dict) else []
            for item in files:
                if isinstance(item, dict) and isinstance(item.get("url"), str):
                    absolute = urllib.parse.urljoin(page_url, item["url"])
                    self.allow(absolute)
                    item["url"] = self.url_for(absolute)
            return json.dumps(data), not files

        def link(match: re.Match[str]) -> str:
            href = urllib.parse.urljoin(page_url, html.unescape(match.group(3)))
            self.allow(href)
            quote = match.group(2)
            return f"{match.group(1)}{quote}{html.escape(self.url_for(href), quote=True)}{quote}"

        rewritten, count = _HREF.subn(link, text)
        return rewritten, count == 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's backlog of 5 would make a sixth connection wait a second

    def __init__(self, address: tuple[str, int], mirror: IndexMirror) -> None:
        self.mirror = mirror
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60.0
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        status, body, headers = self.server.mirror.respond(self.path)
        try:
            if isinstance(body, _Download):
                with body.fetched() as (size, chunks):
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    for chunk in chunks if not head else ():
                        self.wfile.write(chunk)
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except ExternalToolError as exc:
            self.server.mirror._record(exc)
            with contextlib.suppress(OSError):
                self.send_error(502)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@dataclass(frozen=True)
class _Download:
    """A distribution file the mirror fetches with the index's credentials and passes on."""

    client: IndexClient
    url: str

    @contextlib.contextmanager
    def fetched(self) -> Iterator[tuple[int, Iterator[bytes]]]:
        with tempfile.TemporaryDirectory(prefix="stack-resolver-file-") as scratch:
            path = Path(scratch) / "file"
            digests = self.client.download(self.url, path)

            def chunks() -> Iterator[bytes]:
                with path.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        yield block

            yield digests.size, chunks()


# -- Poetry through the mirror ----------------------------------------------------------------


def content_hash(pyproject: Mapping[str, Any]) -> str:
    """Poetry's lock `content-hash` (poetry/packages/locker.py `_get_content_hash`). Only used
    after checking it reproduces the hash this Poetry wrote, so a Poetry that hashes otherwise is
    detected, never silently given a wrong hash."""
    project = pyproject.get("project", {})
    groups = pyproject.get("dependency-groups", {})
    poetry = pyproject.get("tool", {}).get("poetry", {})
    relevant_project = {
        key: project[key]
        for key in ("requires-python", "dependencies", "optional-dependencies")
        if project.get(key) is not None
    }
    legacy = ("dependencies", "source", "extras", "dev-dependencies")
    relevant_poetry = {}
    for key in (*legacy, "group"):
        value = poetry.get(key)
        if value is None and (key not in legacy or relevant_project or groups):
            continue
        relevant_poetry[key] = value
    content: dict[str, Any] = {}
    if relevant_project:
        content["project"] = relevant_project
    if groups:
        content["dependency-groups"] = groups
    if content:
        content["tool"] = {"poetry": relevant_poetry}
    else:
        content = relevant_poetry
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _mirrored_pyproject(text: str, mirror: IndexMirror) -> tuple[str, dict[str, str]]:
    """The pyproject with every `[[tool.poetry.source]]` URL pointed at the mirror, and the map
    real URL -> mirror URL (empty when there is nothing to route)."""
    document = tomlkit.parse(text)
    sources = document.get("tool", {}).get("poetry", {}).get("source", [])
    mapping: dict[str, str] = {}
    for source in sources:
        url = source.get("url")
        if isinstance(url, str):
            mirror.allow(url)
            mirrored = mirror.url_for(url)
            if mirrored != url:
                mapping[url] = mirrored
                source["url"] = mirrored
    return tomlkit.dumps(document), mapping


@dataclass(frozen=True)
class MirroredRunner:
    """A `Runner` that runs Poetry on a staging folder as if its sources were the mirror's, and
    leaves the folder as if Poetry had talked to the real sources. Anything else passes through."""

    mirror: IndexMirror
    inner: Runner

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_line: OnLine | None = None,
    ) -> Completed:
        pyproject = cwd / PYPROJECT
        if "lock" not in argv or not pyproject.is_file():
            # Only `poetry lock` reads the index; any other command must see the real sources.
            return self.inner(argv, cwd=cwd, env=env, timeout=timeout, on_line=on_line)
        original = pyproject.read_text(encoding="utf-8")
        mirrored, mapping = _mirrored_pyproject(original, self.mirror)
        direct_env = {**env, **self.mirror.direct_environment(tomllib.loads(original))}
        if not mapping:
            if self.mirror.offline:
                raise ExternalToolError(
                    "--offline: Poetry would use its built-in default index, which the cache cannot serve",
                    hint="configure a general index (STACK_RESOLVER_INDEX_URL or [indexes] general)",
                )
            return self.inner(argv, cwd=cwd, env=direct_env, timeout=timeout, on_line=on_line)
        lock = cwd / LOCKFILE
        previous = lock.read_bytes() if lock.exists() else None
        if previous is not None:
            lock.write_text(_to_mirror(previous.decode("utf-8"), mapping), encoding="utf-8")
        pyproject.write_text(mirrored, encoding="utf-8")
        # Poetry asks only the mirror, which needs no credentials (the tool holds them), so its
        # keyring is never used here: Poetry's documented `keyring.enabled` off saves its
        # keyring preflight (about half a second of every lock's start).
        mirrored_env = {**env, "POETRY_KEYRING_ENABLED": "false"}
        try:
            with self.mirror.fetching_ahead(tomllib.loads(original)):
                completed = self.inner(argv, cwd=cwd, env=mirrored_env, timeout=timeout, on_line=on_line)
        finally:
            pyproject.write_text(original, encoding="utf-8")
        problems = self.mirror.problems()
        if problems:
            raise problems[0]
        if completed.returncode != 0 or not lock.exists():
            return completed
        text = self.mirror.to_upstream(lock.read_text(encoding="utf-8"))
        found = _CONTENT_HASH.search(text)
        if found is not None:
            if found.group(1) != content_hash(tomllib.loads(mirrored)):
                if self.mirror.offline:
                    raise ExternalToolError(
                        "--offline: this Poetry computes poetry.lock's content-hash in a way the tool "
                        "does not know, so a lock made through the cache cannot be given the real one",
                        hint="lock online (without --offline), or use the Poetry the nox sessions pin",
                    )
                # Online: let Poetry talk to the index itself (slower, never wrong), and say so.
                from resolver import progress

                progress.say(
                    "this Poetry computes poetry.lock's content-hash in a way the tool does not know: "
                    "locking again with Poetry talking to the index itself (STACK_RESOLVER_MIRROR=0 "
                    "skips the first try)"
                )
                if previous is not None:
                    lock.write_bytes(previous)
                else:
                    lock.unlink()
                return self.inner(argv, cwd=cwd, env=direct_env, timeout=timeout, on_line=on_line)
            real = content_hash(tomllib.loads(original))
            text = text[: found.start(1)] + real + text[found.end(1) :]
        lock.write_text(text, encoding="utf-8")
        return completed


def _to_mirror(lock_text: str, mapping: Mapping[str, str]) -> str:
    """A previous lock's `[package.source] url`s pointed at the mirror, as Poetry would see them."""
    for real, mirrored in mapping.items():
        for a, b in ((real, mirrored), (real.rstrip("/"), mirrored.rstrip("/"))):
            lock_text = lock_text.replace(f'url = "{a}"\n', f'url = "{b}"\n')
    return lock_text


@contextlib.contextmanager
def mirrored_tool(client: IndexClient, tool: PoetryTool) -> Iterator[PoetryTool]:
    """`tool`, with Poetry's index traffic going through the cache for as long as this lasts."""
    with IndexMirror(client) as mirror:
        yield dataclasses.replace(tool, runner=MirroredRunner(mirror, tool.runner))


MIRROR_SWITCH = "STACK_RESOLVER_MIRROR"


def mirror_wanted(environ: Mapping[str, str], *, offline: bool) -> bool:
    """The one switch: on, unless `STACK_RESOLVER_MIRROR=0` (never off for `--offline`)."""
    return offline or environ.get(MIRROR_SWITCH, "").strip() != "0"


def source_environment(pyproject: Mapping[str, Any], policy: HttpPolicy) -> dict[str, str]:
    """Poetry's variables for the pyproject's sources: the credentials the tool took out of their
    URLs (per-source POETRY_HTTP_BASIC_*), and the CA certificates the tool uses. They exist only
    in the child's environment, never in a file."""
    sources = pyproject.get("tool", {}).get("poetry", {}).get("source", [])
    urls = {
        str(s["name"]): str(s["url"])
        for s in sources
        if isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("url"), str)
    }
    env = poetry_environment(urls, policy.credentials)
    if policy.ca_bundle is not None:
        env["REQUESTS_CA_BUNDLE"] = policy.ca_bundle
    return env


@dataclass(frozen=True)
class DirectRunner:
    """A `Runner` for Poetry talking to the sources itself: each run gets `source_environment`
    of the pyproject in its folder."""

    policy: HttpPolicy
    inner: Runner

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_line: OnLine | None = None,
    ) -> Completed:
        pyproject = cwd / PYPROJECT
        if pyproject.is_file():
            extra = source_environment(tomllib.loads(pyproject.read_text(encoding="utf-8")), self.policy)
            env = {**env, **extra}
        return self.inner(argv, cwd=cwd, env=env, timeout=timeout, on_line=on_line)


@contextlib.contextmanager
def poetry_tool(client: IndexClient, environ: Mapping[str, str], *, offline: bool) -> Iterator[PoetryTool]:
    """The Poetry every lock runs: through the mirror unless `mirror_wanted` says otherwise."""
    tool = PoetryTool(environ=dict(environ))
    if not mirror_wanted(environ, offline=offline):
        yield dataclasses.replace(tool, runner=DirectRunner(client.policy, tool.runner))
        return
    with mirrored_tool(client, tool) as mirrored:
        yield mirrored
