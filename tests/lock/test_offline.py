"""Guarantee 9 (offline): `--offline` resolves and locks from the tool's HTTP cache with no
connection to any index, and fails at once, naming the missing URL, when the cache lacks one.

Online runs (through the mirror, the default) fill the cache: the tool's own look-ups, and every
page and PEP 658 metadata file Poetry reads, because Poetry then reads the indexes through the
tool's loopback mirror (resolver/lock/poetry/mirror.py; without the switch, online Poetry talks
to the index itself). "No connection" is asserted twice: the fixture index's request log stays
empty during an offline run, and an offline run still succeeds with the index stopped (every
other host is behind a dead proxy, tests/fixtures/isolation.py). Each offline run uses a fresh
Poetry cache, so what serves it is the tool's cache, not Poetry's. The offline lock is
byte-identical to the online one.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from resolver.index.client import HttpPolicy, IndexClient
from resolver.index.listing import JSON_TYPE
from resolver.lock.poetry.mirror import IndexMirror
from tests.fixtures.cli import file_tree, loopback_env, run_cli
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import FixtureIndex

needs_poetry = pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not installed in this interpreter"
)

TEAM = Path(__file__).parents[1] / "data" / "team"


def _mirrored(env: dict[str, str]) -> dict[str, str]:
    """An online run whose Poetry reads through the mirror, so the cache holds what it read."""
    return {**env, "STACK_RESOLVER_MIRROR": "1"}


CPU_HOST = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}


@pytest.mark.e2e
@needs_poetry
def test_team_lock_offline_is_the_online_lock(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    online = tmp_path / "online"
    shutil.copytree(TEAM, online / "envs")
    proc = run_cli(
        online,
        _mirrored(loopback_env(tmp_path, fixture_index, home="home-online")),
        "lock",
        "--team",
        "envs/team.toml",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    expected = file_tree(online / "envs")

    # From the cache alone, with the index up: it is asked nothing.
    offline = tmp_path / "offline"
    shutil.copytree(TEAM, offline / "envs")
    env = loopback_env(tmp_path, fixture_index, home="home-offline")
    fixture_index.clear_log()
    proc = run_cli(offline, env, "lock", "--offline", "--team", "envs/team.toml")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert fixture_index.requests == []
    assert file_tree(offline / "envs") == expected

    # With the index down, the same.
    env_down = loopback_env(tmp_path, fixture_index, home="home-down")
    fixture_index.stop()
    down = tmp_path / "down"
    shutil.copytree(TEAM, down / "envs")
    proc = run_cli(down, env_down, "lock", "--offline", "--team", "envs/team.toml")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert file_tree(down / "envs") == expected


@pytest.mark.e2e
@needs_poetry
def test_offline_lock_fails_fast_naming_the_missing_url(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    online = tmp_path / "online"
    shutil.copytree(TEAM, online / "envs")
    assert (
        run_cli(
            online,
            _mirrored(loopback_env(tmp_path, fixture_index, home="home")),
            "lock",
            "--team",
            "envs/team.toml",
        ).returncode
        == 0
    )
    # A package no online run has asked for: its listing is not in the cache.
    team = online / "envs" / "team.toml"
    team.write_text(
        team.read_text().replace('packages = ["safetensors"]', 'packages = ["safetensors", "accelerate"]')
    )
    before = file_tree(online / "envs")
    fixture_index.clear_log()
    proc = run_cli(
        online,
        loopback_env(tmp_path, fixture_index, home="home"),
        "lock",
        "--offline",
        "--team",
        "envs/team.toml",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"--offline: {fixture_index.url()}/accelerate/ is not in the cache" in proc.stderr
    assert fixture_index.requests == []
    assert file_tree(online / "envs") == before


@pytest.mark.e2e
@needs_poetry
def test_resolve_offline(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    def setup(root: Path) -> Path:
        (root / "envs").mkdir(parents=True)
        (root / "envs" / "team.toml").write_text('packages = ["torchvision"]\n')
        (root / "cpu.json").write_text(json.dumps(CPU_HOST))
        return root

    args = ("resolve", "--team", "envs/team.toml", "--host", "cpu.json", "--target", "cpu")
    online = setup(tmp_path / "online")
    proc = run_cli(online, _mirrored(loopback_env(tmp_path, fixture_index, home="home-online")), *args)
    assert proc.returncode == 0, proc.stderr
    env = loopback_env(tmp_path, fixture_index, home="home-offline")
    fixture_index.stop()  # nothing to connect to from here on

    offline = setup(tmp_path / "offline")
    proc = run_cli(offline, env, *args, "--offline")
    assert proc.returncode == 0, proc.stderr
    assert file_tree(offline / "envs") == file_tree(online / "envs")

    # Another torch than the cached one: its files were never asked for.
    before = file_tree(offline / "envs")
    proc = run_cli(offline, env, *args, "--offline", "--constraint", "torch<2.8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "--offline: http://127.0.0.1:" in proc.stderr and "is not in the cache" in proc.stderr
    assert file_tree(offline / "envs") == before


@pytest.mark.e2e
@needs_poetry
def test_poetry_is_not_sent_again_for_what_the_tool_already_read(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    """The tool reads listings and torch's metadata before locking; Poetry, reading through the
    mirror, gets those from this run's memory: every URL reaches the index once per run."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "team.toml").write_text('packages = ["torchvision"]\n')
    (tmp_path / "cpu.json").write_text(json.dumps(CPU_HOST))
    fixture_index.clear_log()
    proc = run_cli(
        tmp_path,
        _mirrored(loopback_env(tmp_path, fixture_index)),
        *("resolve", "--team", "envs/team.toml", "--host", "cpu.json", "--target", "cpu"),
    )
    assert proc.returncode == 0, proc.stderr
    asked = [(r.method, r.path) for r in fixture_index.requests if r.kind in ("project", "metadata")]
    assert any(path.endswith("/torch/") for _, path in asked)
    assert sorted(asked) == sorted(set(asked))


PAGES = {
    "https://idx.example/whl/cu126/torch/": (
        '<a href="/whl/cu126/torch-2.8.0%2Bcu126-cp311-none-any.whl#sha256=ab" '
        'data-dist-info-metadata="sha256=cd">torch</a>'
        "<a href='../files/t2.whl'>t2</a>"
        '<a href="https://files.example/t3.whl">t3</a>',
        "text/html",
    ),
    "https://idx.example/simple/x/": (
        '{"meta": {"api-version": "1.1"}, "files": [{"filename": "x.whl", "url": "../../f/x.whl"}]}',
        JSON_TYPE,
    ),
}


class _Response:
    def __init__(self, body: str, content_type: str) -> None:
        self.status_code = 200
        self.raw = _Body(body.encode())
        self.headers = {"Content-Type": content_type}
        self.encoding = "utf-8"

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Body(io.BytesIO):
    """What a streamed response reads from (urllib3's `read1` takes `decode_content`)."""

    def read1(self, size: int = -1, decode_content: bool | None = None) -> bytes:
        return super().read1(size)


class _Session:
    """Canned pages, as a real index writes them: root-relative, relative and absolute links."""

    def get(self, url: str, **_: object) -> _Response:
        return _Response(*PAGES[url])

    def close(self) -> None:
        pass


def test_mirror_points_every_link_at_itself(tmp_path: Path) -> None:
    client = IndexClient(policy=HttpPolicy(retries=0), cache_dir=tmp_path, session=_Session())
    with IndexMirror(client, session_factory=_Session) as mirror:
        # It forwards only to the configured index hosts (and to the hosts their pages link to).
        assert mirror.respond("/https/idx.example/whl/cu126/torch/")[0] == 403
        assert mirror.respond("/https/files.example/t3.whl")[0] == 403
        mirror.allow("https://idx.example/whl/cu126")
        base = mirror.base_url
        assert mirror.url_for("https://idx.example/whl/cu126") == f"{base}/https/idx.example/whl/cu126"
        assert mirror.to_upstream(f'url = "{base}/https/idx.example/whl/cu126"') == (
            'url = "https://idx.example/whl/cu126"'
        )
        status, body, headers = mirror.respond("/https/idx.example/whl/cu126/torch/")
        assert status == 200 and headers["Content-Type"] == "text/html"
        page = body.decode()
        assert (
            f'href="{base}/https/idx.example/whl/cu126/torch-2.8.0%2Bcu126-cp311-none-any.whl#sha256=ab"'
            in page
        )
        assert f"href='{base}/https/idx.example/whl/cu126/files/t2.whl'" in page
        assert f'href="{base}/https/files.example/t3.whl"' in page
        status, body, _ = mirror.respond("/https/idx.example/simple/x/")
        assert json.loads(body)["files"][0]["url"] == f"{base}/https/idx.example/f/x.whl"
        # A wheel: online, sent to the index itself, never cached.
        status, _, headers = mirror.respond("/https/files.example/t3.whl")
        assert (status, headers["Location"]) == (302, "https://files.example/t3.whl")
    # Offline, the same pages come from the cache; a wheel or a page never fetched is a miss.
    offline = IndexClient(policy=HttpPolicy(retries=0), cache_dir=tmp_path, offline=True)
    with IndexMirror(offline) as mirror:
        mirror.allow("https://idx.example/simple")
        assert mirror.respond("/https/evil.example/simple/x/")[0] == 403
        assert mirror.respond("/https/idx.example/whl/cu126/torch/")[0] == 200
        assert mirror.respond("/https/idx.example/simple/x/")[0] == 200
        assert mirror.respond("/https/files.example/t3.whl")[0] == 404
        assert mirror.respond("/https/idx.example/simple/y/")[0] == 404
        problems = [p.message for p in mirror.problems()]
        assert "--offline: https://files.example/t3.whl is not in the cache" in problems[0]
        assert problems[1] == "--offline: https://idx.example/simple/y/ is not in the cache"


def test_poetry_through_the_mirror_runs_without_its_keyring(tmp_path: Path) -> None:
    """Through the mirror Poetry asks only loopback, which needs no credentials, so its keyring
    (whose preflight costs every lock about half a second) is off there; any other Poetry command
    runs with the caller's environment as it was."""
    from resolver.lock.poetry.mirror import MirroredRunner
    from resolver.lock.runner import Completed

    seen: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def poetry(
        argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, on_line: object = None
    ) -> Completed:
        seen.append((tuple(argv), dict(env)))
        return Completed(tuple(argv), 0, "", "")

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "0"\n\n[[tool.poetry.source]]\n'
        'name = "general"\nurl = "https://idx.example/simple"\npriority = "primary"\n'
    )
    client = IndexClient(policy=HttpPolicy(retries=0), cache_dir=tmp_path / "cache", session=_Session())
    with IndexMirror(client, session_factory=_Session) as mirror:
        runner = MirroredRunner(mirror, poetry)
        runner(["poetry", "lock"], cwd=tmp_path, env={"KEEP": "1"}, timeout=10)
        runner(["poetry", "install"], cwd=tmp_path, env={"KEEP": "1"}, timeout=10)
    (_, lock_env), (_, install_env) = seen
    assert lock_env == {"KEEP": "1", "POETRY_KEYRING_ENABLED": "false"}
    assert install_env == {"KEEP": "1"}
