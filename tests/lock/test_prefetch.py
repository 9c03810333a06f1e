"""Fetching ahead of Poetry (resolver/prefetch.py): the walk's guesses, case by case from
tests/data/prefetch/cases.toml, and against real Poetry on the loopback index: what the walk
fetches is what `poetry lock` reads, and a lock made with it is the lock Poetry makes alone."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.index.client import IndexClient, RunMemory
from resolver.index.listing import IndexFile
from resolver.lock.poetry.prefetch import (
    Wanted,
    metadata_files,
    newest_allowed,
    prefetch_for_poetry,
    requirements_of,
    sources_from_pyproject,
)
from tests.fixtures.cli import HOSTS, loopback_env, run_cli
from tests.fixtures.isolation import poetry_argv, poetry_available, poetry_env
from tests.fixtures.pyindex import Fault, FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data" / "prefetch" / "cases.toml").read_text("utf-8"))


def index_file(text: str) -> IndexFile:
    name, *flags = text.split(" ")
    python = next((f for f in flags if f[:1] in "<>=~!"), None)
    return IndexFile(
        filename=name,
        url=f"https://idx/{name}",
        sha256=None,
        requires_python=python,
        yanked="yanked" in flags,
    )


@pytest.mark.parametrize("case", CASES["metadata_files"], ids=lambda c: c["case"])
def test_metadata_files(case: dict[str, Any]) -> None:
    chosen = metadata_files([index_file(f) for f in case["files"]])
    assert [f.filename for f in chosen] == case["reads"]


@pytest.mark.parametrize("case", CASES["newest_allowed"], ids=lambda c: c["case"])
def test_newest_allowed(case: dict[str, Any]) -> None:
    floor = Version(case["python_floor"]) if "python_floor" in case else None
    files = newest_allowed([index_file(f) for f in case["files"]], SpecifierSet(case["specifier"]), floor)
    versions = {f.filename.split("-")[1] for f in files}
    assert versions == ({case["version"]} if case["version"] else set())


def test_requirements_apply_with_the_extras_asked_for() -> None:
    metadata = (
        "Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n"
        "Requires-Dist: filelock\n"
        'Requires-Dist: numpy>=1.17; python_version >= "3.9"\n'
        'Requires-Dist: torch>=2.2; extra == "torch"\n'
        'Requires-Dist: accelerate>=0.26; extra == "torch" or extra == "accelerate"\n'
        'Requires-Dist: tensorflow; extra == "tf"\n'
        "Requires-Dist: not a requirement ((\n\n"
        "Requires-Dist: in-the-body\n"
    )
    names = {w.name for w in requirements_of(metadata, frozenset({"Torch"}))}
    assert names == {"filelock", "numpy", "torch", "accelerate"}
    assert {w.name for w in requirements_of(metadata, frozenset())} == {"filelock", "numpy"}


def test_sources_are_read_as_poetry_reads_them() -> None:
    document = tomllib.loads(
        '[project]\nrequires-python = ">=3.11,<3.12"\n'
        'dependencies = ["Torch==2.8.0+cu129", "transformers[torch]==5.0.0", "bad (("]\n'
        '[tool.poetry.dependencies]\ntorch = {source = "pytorch"}\nother = "^1"\n'
        '[[tool.poetry.source]]\nname = "pytorch"\nurl = "https://t/simple"\npriority = "explicit"\n'
        '[[tool.poetry.source]]\nname = "mirror"\nurl = "https://m/simple"\n'
    )
    sources = sources_from_pyproject(document)
    assert sources.roots == (
        Wanted("torch", SpecifierSet("==2.8.0+cu129"), frozenset()),
        Wanted("transformers", SpecifierSet("==5.0.0"), frozenset({"torch"})),
    )
    assert sources.index_for("torch") == "https://t/simple"
    assert sources.index_for("filelock") == "https://m/simple"  # a source without priority is primary
    assert sources.python_floor == Version("3.11")
    assert sources_from_pyproject({"project": {"dependencies": ["a"]}}).index_for("a") is None


PYPROJECT = """\
[project]
name = "p"
version = "0"
requires-python = ">=3.11,<3.12"
dependencies = ["torch==2.8.0+cu128", "torchvision==0.23.0+cu128", "transformers[torch]"]

[tool.poetry]
package-mode = false

[tool.poetry.dependencies]
torch = {{source = "pytorch-cu128"}}
torchvision = {{source = "pytorch-cu128"}}

[[tool.poetry.source]]
name = "pytorch-cu128"
url = "{pytorch}"
priority = "explicit"

[[tool.poetry.source]]
name = "general"
url = "{general}"
priority = "primary"
"""


def plain_poetry_lock(folder: Path, pyproject: str) -> bytes:
    """`poetry lock` on its own in `folder`, with a Poetry home of its own: the lock it writes."""
    folder.mkdir()
    (folder / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    proc = subprocess.run(
        [*poetry_argv(), "lock", "--no-interaction"],
        cwd=folder,
        env=poetry_env(folder / ".home"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return (folder / "poetry.lock").read_bytes()


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
def test_the_walk_fetches_what_poetry_reads(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    text = PYPROJECT.format(pytorch=fixture_index.variant_url("cu128"), general=fixture_index.url())
    client = IndexClient()
    prefetch_for_poetry(client, tomllib.loads(text), threading.Event())
    fetched = {urllib.parse.unquote(urllib.parse.urlsplit(url).path) for url in client.run.pages}

    fixture_index.clear_log()
    plain_poetry_lock(tmp_path / "plain", text)
    read = {r.path for r in fixture_index.requests if r.kind in ("project", "metadata")}
    assert len(read) > 20
    assert read <= fetched, f"Poetry read what the walk did not fetch: {sorted(read - fetched)}"
    assert len(fetched - read) <= len(read) // 10, f"fetched for nothing: {sorted(fetched - read)}"


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
def test_a_lock_made_with_the_walk_is_the_lock_poetry_makes_alone(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "team.toml").write_text(
        'packages = ["torchvision"]\n[indexes]\n'
        f'pytorch = "{fixture_index.base_url}/whl/{{variant}}/simple"\ngeneral = "{fixture_index.url()}"\n',
        encoding="utf-8",
    )
    (tmp_path / "host.json").write_text(json.dumps(HOSTS["h100"]), encoding="utf-8")
    proc = run_cli(
        tmp_path, loopback_env(tmp_path, fixture_index), "resolve", "--host", "host.json", "--target", "t"
    )
    assert proc.returncode == 0, proc.stderr

    generated = tmp_path / "envs" / "t"
    alone = plain_poetry_lock(tmp_path / "alone", (generated / "pyproject.toml").read_text(encoding="utf-8"))
    assert alone == (generated / "poetry.lock").read_bytes()


def test_a_url_in_flight_is_waited_for_not_fetched_twice() -> None:
    """The walk and Poetry (through the mirror) often want the same page at the same moment."""
    memory = RunMemory()
    calls: list[str] = []
    started = threading.Event()

    def slow_fetch() -> tuple[str, str]:
        calls.append("fetch")
        started.set()
        time.sleep(0.2)
        return "body", "text/html"

    results: list[tuple[str, str]] = []
    first = threading.Thread(target=lambda: results.append(memory.once("u", slow_fetch)))
    first.start()
    started.wait(5)
    results.append(memory.once("u", slow_fetch))  # arrives while the first is in flight
    first.join()
    assert calls == ["fetch"]
    assert results == [("body", "text/html")] * 2


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
def test_a_page_the_walk_failed_on_still_gets_every_retry_for_poetry(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    """The walk makes one attempt per URL and keeps its failures to itself: filelock's listing
    fails once (the walk asks first, while Poetry starts), and Poetry's request is retried."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "team.toml").write_text('packages = ["torchvision"]\n', encoding="utf-8")
    (tmp_path / "host.json").write_text(json.dumps(HOSTS["cpu"]), encoding="utf-8")
    env = loopback_env(tmp_path, fixture_index)
    env.update(STACK_RESOLVER_HTTP_RETRIES="2", STACK_RESOLVER_HTTP_BACKOFF="0")
    fixture_index.faults.add("/simple/filelock/", Fault.http(503))
    proc = run_cli(tmp_path, env, "resolve", "--host", "host.json", "--target", "t")
    assert proc.returncode == 0, proc.stderr
    assert fixture_index.faults.pending() == 0
    asked = [r.status for r in fixture_index.requests if r.path == "/simple/filelock/"]
    assert asked == [503, 200]
