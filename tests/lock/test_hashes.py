"""Hashes: every package entry of every lock the tool writes carries sha256 (and md5 for conda), and
an index that serves bytes other than the hash it advertises makes `lock` or `verify` fail, naming
the package, the file, the URL, the expected and the actual hash.

Where each mismatch is caught: Poetry locks from the listings' `#sha256=` and PEP 658 metadata
without downloading wheels, so bytes that differ from the advertised hash cannot show at lock
time; after Poetry writes the lock, the tool compares the hashes it recorded for the files of the
PyTorch index with what that index advertises (`check_lock_hashes`). Tampered bytes show when the
lock is installed: Poetry refuses the file, and `verify` downloads it itself (streamed) to report
what was served against what was locked (`hash_checks`).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from resolver.errors import ExternalToolError
from resolver.host.hostfile import parse_host_json
from resolver.index.client import HttpPolicy, IndexClient
from resolver.lock.poetry.checks import check_lock_hashes
from resolver.lock.poetry.pyproject import EnvironmentSpec, SourceSpec
from resolver.verify import poetry as verify
from tests.fixtures.catalog import BuiltCatalog
from tests.fixtures.cli import HOSTS, run_cli
from tests.fixtures.isolation import offline_env, poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
needs_poetry = pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not installed in this interpreter"
)


def write_team(root: Path, index: FixtureIndex, targets: tuple[str, ...] = ()) -> dict[str, str]:
    envs = root / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    text = 'packages = ["torchvision", "accelerate"]\n\n[indexes]\n'
    text += f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\ngeneral = "{index.url()}"\n'
    for name in targets:
        text += f"\n[targets.{name}]\nhost = {json.dumps(str(root / f'{name}.json'))}\n"
    (envs / "team.toml").write_text(text, encoding="utf-8")
    for name, host in HOSTS.items():
        (root / f"{name}.json").write_text(json.dumps(host), encoding="utf-8")
    env = poetry_env(root / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(root / "http-cache")
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    env["STACK_RESOLVER_NO_GPU"] = "1"  # verify: this machine's GPUs, whatever the target says
    env.pop("LD_LIBRARY_PATH", None)
    return env


def run_tool(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, *args, timeout=600)


# --- (a) every package entry of every lock has its hashes -------------------------------------------


@pytest.mark.e2e
@needs_poetry
@pytest.mark.parametrize(
    "command",
    [("resolve", "h100"), ("resolve", "k80"), ("lock", "h100", "cpu", "mac")],
    ids=["resolve-h100", "resolve-k80", "team-lock"],
)
def test_every_poetry_lock_entry_has_sha256_hashes_of_the_served_files(
    tmp_path: Path, fixture_index: FixtureIndex, fixture_wheels: BuiltCatalog, command: tuple[str, ...]
) -> None:
    verb, *targets = command
    if verb == "resolve":
        env = write_team(tmp_path, fixture_index)
        args = ["resolve", "--team", "envs/team.toml", "--host", f"{targets[0]}.json", "--target", targets[0]]
    else:
        env = write_team(tmp_path, fixture_index, tuple(targets))
        args = ["lock", "--team", "envs/team.toml"]
    proc = run_tool(tmp_path, env, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    locks = sorted((tmp_path / "envs").glob("*/poetry.lock"))
    assert [p.parent.name for p in locks] == sorted(targets)
    for lock in locks:
        packages = tomllib.loads(lock.read_text(encoding="utf-8"))["package"]
        assert packages
        for package in packages:
            assert package["files"], (lock, package["name"])
            for entry in package["files"]:
                assert SHA256.match(entry["hash"]), (lock, package["name"], entry)
                # and it is the hash of the bytes the fixture index serves for that file
                assert entry["hash"] == f"sha256:{fixture_wheels[entry['file']].sha256}", entry


def test_every_conda_lock_entry_has_md5_and_sha256_of_the_served_files(tmp_path: Path) -> None:
    try:
        import conda_lock.lockfile as conda_lock_lockfile
        import rattler  # noqa: F401
    except ImportError as exc:  # not in the dev venv: conda-lock 4 pins dulwich<0.25, Poetry needs >=0.25
        pytest.skip(f"py-rattler / conda-lock cannot be imported ({exc}); nox -s tests installs them")
    from tests.fixtures.condachannel import CondaChannel, standard_packages

    with CondaChannel(standard_packages(), tmp_path / "channel") as channel:
        envs = tmp_path / "envs"
        envs.mkdir()
        (envs / "team.toml").write_text(
            'packages = ["torchvision", "accelerate"]\nformats = ["conda"]\nchannels = ["conda-forge"]\n\n'
            f'[conda]\nchannel_alias = "{channel.alias}"\n',
            encoding="utf-8",
        )
        env = offline_env(tmp_path / "home")
        env["HOME"] = str(tmp_path / "home")
        env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "cache" / "http")
        for host in ("h100", "cpu"):
            (tmp_path / f"{host}.json").write_text(json.dumps(HOSTS[host]), encoding="utf-8")
            proc = run_tool(
                tmp_path,
                env,
                "resolve",
                "--team",
                "envs/team.toml",
                "--host",
                f"{host}.json",
                "--target",
                host,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            lock = conda_lock_lockfile.parse_conda_lock_file(envs / host / "conda-lock.yml")
            assert lock.package
            for package in lock.package:
                assert re.fullmatch(r"[0-9a-f]{32}", package.hash.md5 or ""), package.name
                assert re.fullmatch(r"[0-9a-f]{64}", package.hash.sha256 or ""), package.name
                with urllib.request.urlopen(package.url) as response:  # loopback channel
                    data = response.read()
                assert hashlib.md5(data).hexdigest() == package.hash.md5, package.name
                assert hashlib.sha256(data).hexdigest() == package.hash.sha256, package.name


# --- (b) tampered files --------------------------------------------------------------------------------


def served_wheel(wheels: BuiltCatalog, name: str, version: str, index: str) -> str:
    """The cp311 / py3 Linux x86_64 file of `name==version` on `index`."""
    (found,) = [
        w.filename
        for w in wheels.find(name, version)
        if index in w.spec.indexes
        and ("py3-none-any" in w.filename or "cp311-cp311-" in w.filename)
        and ("linux" in w.filename or "any" in w.filename)
    ]
    return found


@pytest.mark.e2e
@needs_poetry
@pytest.mark.parametrize(
    ("package", "version", "index"),
    [("torch", "2.8.0+cpu", "cpu"), ("regex", "2024.11.6", "general")],
    ids=["torch-pytorch-index", "transformers-dependency-general-index"],
)
def test_verify_names_a_tampered_file(
    tmp_path: Path,
    fixture_index: FixtureIndex,
    fixture_wheels: BuiltCatalog,
    package: str,
    version: str,
    index: str,
) -> None:
    env = write_team(tmp_path, fixture_index)
    resolved = run_tool(
        tmp_path, env, "resolve", "--team", "envs/team.toml", "--host", "cpu.json", "--target", "cpu"
    )
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    lock = (tmp_path / "envs" / "cpu" / "poetry.lock").read_bytes()

    filename = served_wheel(fixture_wheels, package, version, index)
    expected = fixture_wheels[filename].sha256
    actual = hashlib.sha256(fixture_index.tamper(filename)).hexdigest()
    url = fixture_index.file_url(filename, index)

    proc = run_tool(tmp_path, env, "verify", "--team", "envs/team.toml", "--target", "cpu", "--json")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["install the lock"]["status"] == "fail"
    check = checks[f"hash of {filename}"]
    assert check["status"] == "fail"
    assert check["expected"] == f"sha256:{expected} (poetry.lock)"
    assert check["found"] == f"sha256:{actual} (served)"
    assert check["detail"].startswith(f"{package} {version}: ") and check["detail"].endswith(url)
    assert [n for n, c in checks.items() if n.startswith("hash of") and c["status"] == "fail"] == [
        f"hash of {filename}"
    ]
    assert checks["smoke test"]["status"] == "skip"

    text = run_tool(tmp_path, env, "verify", "--team", "envs/team.toml", "--target", "cpu")
    assert text.returncode == 5
    line = next(line for line in text.stdout.splitlines() if f"hash of {filename}" in line)
    for part in (package, filename, url, f"sha256:{expected}", f"sha256:{actual}"):
        assert part in line, (part, line)
    assert (tmp_path / "envs" / "cpu" / "poetry.lock").read_bytes() == lock  # verify changes nothing


def test_hash_checks_download_the_files_poetry_names(
    tmp_path: Path, fixture_index: FixtureIndex, fixture_wheels: BuiltCatalog
) -> None:
    """Unit level: a hand-made lock of two packages; the tampered one is found, only the file the
    install output names is downloaded, and with no file named every file for the platform is."""
    good = served_wheel(fixture_wheels, "idna", "3.10", "general")
    bad = served_wheel(fixture_wheels, "torch", "2.8.0+cpu", "cpu")
    other_platform = "torch-2.8.0+cpu-cp311-cp311-win_amd64.whl"
    directory = tmp_path / "target"
    directory.mkdir()
    entries = [
        ("idna", "3.10", good, fixture_index.url()),
        ("torch", "2.8.0+cpu", bad, fixture_index.variant_url("cpu")),
    ]
    text = ""
    for name, version, filename, source in entries:
        files = [filename] + ([other_platform] if name == "torch" else [])
        listed = ", ".join(f'{{file = "{f}", hash = "sha256:{fixture_wheels[f].sha256}"}}' for f in files)
        text += (
            f'[[package]]\nname = "{name}"\nversion = "{version}"\nfiles = [{listed}]\n\n'
            f'[package.source]\ntype = "legacy"\nurl = "{source}"\nreference = "x"\n\n'
        )
    (directory / "poetry.lock").write_text(text, encoding="utf-8")
    actual = hashlib.sha256(fixture_index.tamper(bad)).hexdigest()
    expect = verify.Expectations("t", "3.11", "cpu", None, {}, {}, 0)
    host = parse_host_json('{"os": "linux", "arch": "x86_64", "libc": "glibc", "python": "3.11"}')
    client = IndexClient(policy=HttpPolicy(retries=0))

    fixture_index.clear_log()
    output = f"Installing torch (2.8.0+cpu): Failed\nHash for torch from archive {bad} not found"
    (check,) = verify.hash_checks(directory, expect, host.platform, output, client)
    assert (check.name, check.status) == (f"hash of {bad}", "fail")
    assert (check.expected, check.found) == (
        f"sha256:{fixture_wheels[bad].sha256} (poetry.lock)",
        f"sha256:{actual} (served)",
    )
    assert check.detail.endswith(fixture_index.file_url(bad, "cpu"))
    assert fixture_index.served_files() == [bad]

    fixture_index.clear_log()
    checks = verify.hash_checks(directory, expect, host.platform, "connection reset", client)
    assert [c.name for c in checks] == [f"hash of {bad}"]
    assert sorted(fixture_index.served_files()) == sorted([good, bad])  # not the Windows wheel

    fixture_index.untamper()
    (passed,) = verify.hash_checks(directory, expect, host.platform, "connection reset", client)
    assert (passed.status, passed.found) == ("pass", "2 files match")


def test_lock_hashes_are_compared_with_what_the_pytorch_index_advertises(
    fixture_index: FixtureIndex, fixture_wheels: BuiltCatalog
) -> None:
    pytorch = fixture_index.variant_url("cpu")
    spec = EnvironmentSpec(
        name="t",
        requires_python=">=3.11,<3.12",
        dependencies=(),
        sources=(
            SourceSpec("pytorch-cpu", pytorch, "explicit"),
            SourceSpec("general", fixture_index.url(), "primary"),
        ),
    )
    filename = served_wheel(fixture_wheels, "torch", "2.8.0+cpu", "cpu")
    advertised = fixture_wheels[filename].sha256

    def lock(torch_hash: str) -> bytes:
        return (
            f'[[package]]\nname = "torch"\nversion = "2.8.0+cpu"\n'
            f'files = [{{file = "{filename}", hash = "sha256:{torch_hash}"}}]\n\n'
            f'[package.source]\ntype = "legacy"\nurl = "{pytorch}"\nreference = "pytorch-cpu"\n\n'
            '[[package]]\nname = "idna"\nversion = "3.10"\n'
            'files = [{file = "idna-3.10-py3-none-any.whl", hash = "sha256:' + "0" * 64 + '"}]\n\n'
            f'[package.source]\ntype = "legacy"\nurl = "{fixture_index.url()}"\nreference = "general"\n'
        ).encode()

    client = IndexClient(policy=HttpPolicy(retries=0))
    check_lock_hashes(lock(advertised), spec, client)  # the general index's files are not compared
    with pytest.raises(ExternalToolError) as raised:
        check_lock_hashes(lock("f" * 64), spec, client)
    message = raised.value.message
    for part in ("torch 2.8.0+cpu", filename, fixture_index.file_url(filename, "cpu"), advertised, "f" * 64):
        assert part in message, (part, message)
