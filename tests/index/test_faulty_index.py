"""Faulty indexes: 5xx, 429 with Retry-After, truncated and malformed responses, stalls.

Unit level: `IndexClient` against the loopback `FixtureIndex` with a `FaultPlan`; `sleep` is a
recorder, so the backoff is asserted without slowing the tests. End to end: `resolve` with faults
on the general index either recovers (the lock is byte-identical to a clean run's) or fails with
exit 1 naming the URL and writing nothing. Poetry talks to the index too and has retries of its
own (6 attempts on 429/5xx and broken transfers); when it gives up, the run fails the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from resolver.errors import ExternalToolError, InputError
from resolver.index.client import HttpPolicy, IndexClient
from resolver.index.listing import IndexFile
from resolver.lock.guard import ENVS_LOCK
from tests.fixtures.catalog import BuiltCatalog
from tests.fixtures.cli import run_cli
from tests.fixtures.isolation import poetry_available, poetry_env
from tests.fixtures.pyindex import Fault, FixtureIndex

INDEX_DOCS = Path(__file__).resolve().parents[2] / "docs" / "indexes.md"
POLICY = HttpPolicy(timeout=0.5, retries=3, backoff=0.1, max_backoff=2.0)
EXPONENTIAL = [0.1, 0.2, 0.4]  # backoff * 2**attempt, before attempts 2, 3 and 4


def client_for(sleeps: list[float], policy: HttpPolicy = POLICY) -> IndexClient:
    return IndexClient(policy=policy, sleep=sleeps.append)


def names(files: tuple[IndexFile, ...]) -> list[str]:
    return sorted(f.filename for f in files)


# --- unit: IndexClient against the fault-injecting index ----------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("failures", [1, 3])
def test_server_errors_are_retried_with_exponential_backoff(
    fixture_index: FixtureIndex, status: int, failures: int
) -> None:
    clean = names(IndexClient().files(fixture_index.url(), "transformers"))
    fixture_index.faults.add("/simple/transformers/", Fault.http(status), times=failures)
    sleeps: list[float] = []
    client = client_for(sleeps)
    files = client.files(fixture_index.url(), "transformers")
    assert names(files) == clean
    url = fixture_index.project_url("transformers")
    assert client.attempts[url] == failures + 1
    assert sleeps == EXPONENTIAL[:failures]


def test_retry_after_is_honoured_up_to_the_cap(fixture_index: FixtureIndex) -> None:
    fixture_index.faults.add(
        "/whl/cu126/simple/torch/", Fault.rate_limited(1), Fault.rate_limited(30), Fault.http(503)
    )
    sleeps: list[float] = []
    client = client_for(sleeps)
    assert client.files(fixture_index.variant_url("cu126"), "torch")
    assert client.attempts[fixture_index.project_url("torch", "cu126")] == 4
    # 1 s as asked; 30 s capped at max_backoff (2 s); a 503 without the header: the backoff
    assert sleeps == [1.0, 2.0, 0.4]


@pytest.mark.parametrize(
    ("path", "index", "fault"),
    [
        ("/simple/transformers/", "general", Fault.truncated(40)),  # Content-Length says more
        ("/simple/transformers/", "general", Fault.garbled()),  # cut-off JSON
        ("/whl/cpu/simple/torch/", "cpu", Fault.garbled()),  # unclosed HTML, not a listing
        ("/whl/cpu/simple/torch/", "cpu", Fault.stalled(3.0)),  # longer than the 0.5 s timeout
    ],
    ids=["truncated", "malformed-json", "malformed-html", "stall"],
)
def test_broken_responses_are_retried_then_fail_naming_the_url(
    fixture_index: FixtureIndex, path: str, index: str, fault: Fault
) -> None:
    project = path.rstrip("/").rsplit("/", 1)[-1]
    root = fixture_index.url(index)
    url = fixture_index.project_url(project, index)

    # Twice, then the response is whole again: the listing is the real one.
    fixture_index.faults.add(path, fault, times=2)
    sleeps: list[float] = []
    client = client_for(sleeps)
    assert names(client.files(root, project)) == names(IndexClient().files(root, project))
    assert client.attempts[url] == 3 and sleeps == EXPONENTIAL[:2]

    # Every attempt broken: a clear error naming the URL and the attempt count; nothing is kept.
    fixture_index.faults.add(path, fault, times=POLICY.retries + 1)
    sleeps.clear()
    client = client_for(sleeps)
    with pytest.raises(ExternalToolError) as raised:
        client.files(root, project)
    message = raised.value.render()
    assert f"{url} failed after 4 attempts" in message, message
    assert "Hint:" in message
    assert client.attempts[url] == 4 and sleeps == EXPONENTIAL
    assert fixture_index.faults.pending() == 0
    assert url not in client._memo


def test_a_stall_is_cut_by_the_timeout(fixture_index: FixtureIndex) -> None:
    fixture_index.faults.add("/simple/torch/", Fault.stalled(30.0))
    client_sleeps: list[float] = []
    client = IndexClient(policy=HttpPolicy(timeout=0.5, retries=0), sleep=client_sleeps.append)
    started = time.monotonic()
    with pytest.raises(ExternalToolError, match="timed out") as raised:
        client.files(fixture_index.url(), "torch")
    assert time.monotonic() - started < 10  # the 0.5 s timeout, not the 30 s stall
    assert raised.value.message.startswith(f"{fixture_index.project_url('torch')} failed after 1 attempts")


@pytest.mark.parametrize("status", [401, 403, 410])
def test_other_statuses_fail_at_once(fixture_index: FixtureIndex, status: int) -> None:
    fixture_index.faults.add("/simple/transformers/", Fault.http(status))
    sleeps: list[float] = []
    client = client_for(sleeps)
    with pytest.raises(ExternalToolError) as raised:
        client.files(fixture_index.url(), "transformers")
    url = fixture_index.project_url("transformers")
    assert raised.value.message == f"{url} answered HTTP {status}"
    assert client.attempts[url] == 1 and sleeps == []


def test_a_missing_project_is_an_empty_listing(fixture_index: FixtureIndex) -> None:
    sleeps: list[float] = []
    client = client_for(sleeps)
    assert client.files(fixture_index.url(), "no-such-project") == ()
    assert client.attempts[fixture_index.project_url("no-such-project")] == 1 and sleeps == []


def test_metadata_and_file_downloads_are_retried(
    fixture_index: FixtureIndex, fixture_wheels: BuiltCatalog
) -> None:
    (wheel,) = fixture_wheels.find("transformers", "4.57.6")
    fixture_index.faults.add("*.metadata", Fault.http(502), Fault.truncated(10))
    fixture_index.faults.add(f"/files/{wheel.filename}", Fault.http(503), Fault.truncated(100))
    sleeps: list[float] = []
    client = client_for(sleeps)
    (listed,) = [f for f in client.files(fixture_index.url(), "transformers") if f.filename == wheel.filename]
    assert client.metadata(listed) == wheel.metadata.decode()
    assert client.file_sha256(listed.url) == wheel.sha256 == listed.sha256
    assert client.attempts[listed.url.split("#")[0]] == 3
    assert sleeps == EXPONENTIAL[:2] * 2


def test_policy_from_the_environment_and_the_readme_agree() -> None:
    default = HttpPolicy()
    assert HttpPolicy.from_environ({}) == default
    assert HttpPolicy.from_environ(
        {
            "STACK_RESOLVER_HTTP_TIMEOUT": "2.5",
            "STACK_RESOLVER_HTTP_RETRIES": "5",
            "STACK_RESOLVER_HTTP_BACKOFF": "0.25",
            "STACK_RESOLVER_HTTP_MAX_BACKOFF": "4",
        }
    ) == HttpPolicy(timeout=2.5, retries=5, backoff=0.25, max_backoff=4.0)
    with pytest.raises(InputError, match="STACK_RESOLVER_HTTP_RETRIES"):
        HttpPolicy.from_environ({"STACK_RESOLVER_HTTP_RETRIES": "many"})
    with pytest.raises(InputError, match="must be 0 or more"):
        HttpPolicy.from_environ({"STACK_RESOLVER_HTTP_RETRIES": "-1"})
    for no_deadline in ("-1", "0", "inf", "nan"):  # issue 17: "0" was a traceback
        with pytest.raises(InputError, match="must be more than 0 seconds"):
            HttpPolicy.from_environ({"STACK_RESOLVER_HTTP_TIMEOUT": no_deadline})
    text = " ".join(INDEX_DOCS.read_text(encoding="utf-8").split())
    for variable, value in (
        ("STACK_RESOLVER_HTTP_TIMEOUT", f"default {default.timeout:g}"),
        ("STACK_RESOLVER_HTTP_RETRIES", f"default {default.retries}"),
        ("STACK_RESOLVER_HTTP_BACKOFF", f"default {default.backoff:g} s"),
        ("STACK_RESOLVER_HTTP_MAX_BACKOFF", f"default {default.max_backoff:g} s"),
    ):
        assert re.search(rf"`{variable}` \([^)]*{re.escape(value)}", text), (variable, value)


# --- end to end: resolve against a faulty general index -------------------------------------------------

needs_poetry = pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not installed in this interpreter"
)
TARGET = ("--host", "cpu.json", "--target", "cpu")
CPU_HOST = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}


def project_tree(root: Path, index: FixtureIndex, retries: int) -> dict[str, str]:
    envs = root / "envs"
    envs.mkdir(parents=True)
    (envs / "team.toml").write_text(
        'packages = ["torchvision"]\n\n[indexes]\n'
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\ngeneral = "{index.url()}"\n',
        encoding="utf-8",
    )
    (root / "cpu.json").write_text(json.dumps(CPU_HOST), encoding="utf-8")
    env = poetry_env(root / "home")
    env.update(
        {
            "STACK_RESOLVER_CACHE_DIR": str(root / "http-cache"),
            "STACK_RESOLVER_HTTP_RETRIES": str(retries),
            "STACK_RESOLVER_HTTP_BACKOFF": "0.01",
            "STACK_RESOLVER_HTTP_MAX_BACKOFF": "0.05",
            "STACK_RESOLVER_HTTP_TIMEOUT": "2",
        }
    )
    return env


def resolve(root: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, "resolve", "--team", "envs/team.toml", *TARGET, *extra, timeout=600)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under envs/ (temporary files included), with its bytes; not the advisory lock
    file of envs/, which every writing run takes (it holds nothing)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "envs").rglob("*"))
        if p.is_file() and p.name != ENVS_LOCK
    }


@pytest.mark.e2e
@needs_poetry
def test_faults_that_recover_give_the_clean_lock(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    clean_root, faulty_root = tmp_path / "clean", tmp_path / "faulty"
    clean = resolve(clean_root, project_tree(clean_root, fixture_index, retries=3))
    assert clean.returncode == 0, clean.stderr

    # The tool's requests (transformers listing, torch listing, torch metadata) and one only Poetry
    # makes (sympy's listing: Poetry's own retries absorb it).
    rules = [
        fixture_index.faults.add(
            "/simple/transformers/", Fault.http(503), Fault.rate_limited(1), Fault.truncated(40)
        ),
        fixture_index.faults.add("/whl/cpu/simple/torch/", Fault.garbled(), Fault.http(502)),
        fixture_index.faults.add("/whl/cpu/files/torch-*.metadata", Fault.stalled(3.0)),
        fixture_index.faults.add("/simple/sympy/", Fault.http(503)),
    ]
    faulty = resolve(faulty_root, project_tree(faulty_root, fixture_index, retries=3))
    assert faulty.returncode == 0, faulty.stderr
    assert [rule.remaining for rule in rules] == [0, 0, 0, 0]
    assert [rule.hits for rule in rules] == [3, 2, 1, 1]
    assert tree(faulty_root) == tree(clean_root)  # pyproject.toml, poetry.lock, resolution.json...
    assert (faulty_root / "envs" / "cpu" / "poetry.lock").read_bytes() == (
        clean_root / "envs" / "cpu" / "poetry.lock"
    ).read_bytes()


@pytest.mark.e2e
@needs_poetry
def test_a_final_failure_names_the_url_and_writes_nothing(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    env = project_tree(tmp_path, fixture_index, retries=2)
    url = fixture_index.project_url("transformers")
    cycle = (Fault.http(503), Fault.rate_limited(1), Fault.truncated(40), Fault.garbled(), Fault.http(500))

    # A fresh tree: nothing is created.
    before = tree(tmp_path)
    fixture_index.faults.add("/simple/transformers/", *cycle)
    failed = resolve(tmp_path, env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"{url} failed after 3 attempts" in failed.stderr, failed.stderr
    assert tree(tmp_path) == before and not (tmp_path / "envs" / "cpu").exists()

    # A locked tree: the same failure leaves every file as it was. (An unchanged re-run asks no
    # index at all, so the run changes an input: a constraint that keeps the same choice.)
    fixture_index.faults.clear()
    assert resolve(tmp_path, env).returncode == 0
    before = tree(tmp_path)
    # This run revalidates the listing it cached (If-None-Match), and a 304 has no body to cut
    # short or garble: only the failing statuses of the cycle stay failures.
    fixture_index.faults.add("/simple/transformers/", Fault.http(503), Fault.rate_limited(1), Fault.http(500))
    failed = resolve(tmp_path, env, "--constraint", "torch>=2")
    assert failed.returncode == 1 and f"{url} failed after 3 attempts" in failed.stderr, failed.stderr
    assert tree(tmp_path) == before


@pytest.mark.e2e
@needs_poetry
@pytest.mark.parametrize(
    "fault", [Fault.http(503), Fault.garbled(), Fault.truncated(40)], ids=["5xx", "malformed", "truncated"]
)
def test_a_fault_on_a_page_only_poetry_reads_fails_cleanly(
    tmp_path: Path, fixture_index: FixtureIndex, fault: Fault
) -> None:
    """Poetry reads the pages the tool does not (here sympy's, a dependency of torch). Through the
    mirror (the default) it reads them with the tool's client, so the same policy applies and the
    URL is named. (With `STACK_RESOLVER_MIRROR=0`, Poetry's own message may not name the URL for a
    malformed page: the run still fails, exit 1, and writes nothing; see the plain run below.)"""
    plain = {**project_tree(tmp_path, fixture_index, retries=1), "STACK_RESOLVER_MIRROR": "0"}
    before = tree(tmp_path)
    fixture_index.faults.add("/simple/sympy/", fault, times=10)
    failed = resolve(tmp_path, plain)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert tree(tmp_path) == before and not (tmp_path / "envs" / "cpu").exists()
    fixture_index.faults.clear()
    env = {**plain, "STACK_RESOLVER_MIRROR": "1"}  # "1", or unset: the default
    before = tree(tmp_path)
    fixture_index.faults.add("/simple/sympy/", fault, times=10)
    failed = resolve(tmp_path, env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert fixture_index.project_url("sympy") in failed.stderr, failed.stderr
    assert tree(tmp_path) == before and not (tmp_path / "envs" / "cpu").exists()
