"""An unchanged `resolve` is replayed from the user cache (resolver/replay.py): the same bytes on
stdout and stderr as the full no-op path, no request, none of the heavy modules imported; and
any change to what the run depended on takes the full path again.

Which path a run took is read from `python -X importtime`: a replay never imports resolver.cli.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from resolver import replay
from resolver.dirs import cache_root, cache_root_text
from resolver.matrix.load import default_matrix_dir
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import FixtureIndex
from tests.lock.test_resolve_poetry_e2e import snapshot, tool_env, write_team

__all__ = ["tool_env"]  # the fixture, shared with the end-to-end tests

_POETRY = pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")


def E2E(test: Callable[..., None]) -> Callable[..., None]:
    return pytest.mark.e2e(_POETRY(test))


ROOT = Path(__file__).resolve().parents[2]
ARGS = ("resolve", "--team", "envs/team.toml", "--host", "h100.json", "--target", "gpu")
# What the fast path must not load: the command line, the model, the solver, the HTTP stack...
HEAVY = (
    "resolver.cli",
    "argparse",
    "resolver.matrix.model",
    "resolver.solve.search",
    "resolver.config",
    "resolver.sources",
    "packaging",
    "requests",
    "tomlkit",
    "typing",
    "pathlib",
    "json",
)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str  # without the import-time lines
    imported: frozenset[str]
    asked: int  # requests the index received

    @property
    def replayed(self) -> bool:
        return "resolver.cli" not in self.imported


def run(root: Path, env: dict[str, str], index: FixtureIndex) -> Run:
    before = len(index.requests)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "resolver", *ARGS],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = proc.stderr.splitlines(keepends=True)
    timing = [line for line in lines if line.startswith("import time:")]
    imported = frozenset(line.rsplit("|", 1)[-1].strip() for line in timing)
    stderr = "".join(line for line in lines if not line.startswith("import time:"))
    assert proc.returncode == 0, stderr + proc.stdout
    return Run(proc.returncode, proc.stdout, stderr, imported, len(index.requests) - before)


@pytest.fixture
def project(
    tmp_path: Path, fixture_index: FixtureIndex, tool_env: dict[str, str]
) -> tuple[Path, dict[str, str]]:
    """A project locked once by a real run, on a copy of the matrix (so a test may edit it), with
    pip's user configuration file looked for (PIP_CONFIG_FILE names one that does not exist)."""
    root = tmp_path / "project"
    write_team(root, fixture_index, ["torchvision"])
    matrix = Path(shutil.copytree(default_matrix_dir(), tmp_path / "matrix"))
    env = dict(tool_env, STACK_RESOLVER_MATRIX=str(matrix), PIP_CONFIG_FILE=str(tmp_path / "no-pip.conf"))
    env["PYTHONPATH"] = str(ROOT)  # this tree's resolver, whichever one is installed
    first = run(root, env, fixture_index)
    assert first.asked > 0 and not first.replayed
    return root, env


@E2E
def test_an_unchanged_rerun_is_replayed_byte_for_byte_and_loads_nothing_heavy(
    project: tuple[Path, dict[str, str]], fixture_index: FixtureIndex
) -> None:
    root, env = project
    committed = snapshot(root / "envs" / "gpu")
    full = run(root, dict(env, STACK_RESOLVER_NO_REPLAY="1"), fixture_index)
    assert not full.replayed and full.asked == 0  # the full no-op path: the reference
    again = run(root, env, fixture_index)
    assert not again.replayed  # a writing run records nothing: this one, unchanged, records
    replayed = run(root, env, fixture_index)
    assert replayed.replayed
    assert replayed.asked == 0
    assert (replayed.stdout, replayed.stderr) == (full.stdout, full.stderr)
    assert "lock reused (nothing written)" in replayed.stdout
    assert replayed.imported.isdisjoint(HEAVY), sorted(replayed.imported & set(HEAVY))
    assert snapshot(root / "envs" / "gpu") == committed
    # turned off, the same command takes the full path again
    assert not run(root, dict(env, STACK_RESOLVER_NO_REPLAY="1"), fixture_index).replayed


def _entry(env: dict[str, str]) -> Path:
    (path,) = (Path(cache_root_text(env) or "") / replay.FOLDER).iterdir()
    return path


def _edit(path: Path, data: bytes) -> Callable[[], None]:
    """Append `data` to `path` (creating it); returns the undo."""
    old = path.read_bytes() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((old or b"") + data)

    def undo() -> None:
        if old is None:
            path.unlink()
        else:
            path.write_bytes(old)

    return undo


def _journal(root: Path) -> Callable[[], None]:
    (root / "envs" / ".stack-resolver-txn").mkdir()  # a commit killed before its commit point
    return lambda: None  # the full path removes it (under the envs/ lock)


def _damage(env: dict[str, str]) -> Callable[[], None]:
    entry = _entry(env)
    data = bytearray(entry.read_bytes())
    data[-2] ^= 0x01  # one bit of the stored output
    entry.write_bytes(bytes(data))
    return lambda: None  # the full path stores it again


def _variable(root: Path, env: dict[str, str]) -> Callable[[], None]:
    env["SOME_SETTING"] = "1"
    return lambda: env.pop("SOME_SETTING")


# name -> (the change, which returns its undo; full runs after the undo before a replay again:
# a changed run that ends unchanged records its own inputs under the same key, replacing the
# entry; a changed matrix rewrites the record, and the undo's run writes it back as it was)
CHANGES: dict[str, tuple[Callable[[Path, dict[str, str]], Callable[[], None]], int]] = {
    "env variable": (_variable, 0),
    "team file": (lambda root, env: _edit(root / "envs" / "team.toml", b"\n# a note\n"), 1),
    "host file": (lambda root, env: _edit(root / "h100.json", b"\n"), 1),
    "matrix byte": (lambda root, env: _edit(Path(env["STACK_RESOLVER_MATRIX"]) / "gpus.toml", b"\n# a\n"), 1),
    "pip config created": (
        lambda root, env: _edit(Path(env["XDG_CONFIG_HOME"]) / "pip" / "pip.conf", b"[global]\n"),
        1,
    ),
    "commit journal": (lambda root, env: _journal(root), 0),
    "damaged entry": (lambda root, env: _damage(env), 0),
}


@E2E
@pytest.mark.parametrize("change", CHANGES)
def test_any_change_to_what_the_run_read_takes_the_full_path(
    project: tuple[Path, dict[str, str]], fixture_index: FixtureIndex, change: str
) -> None:
    root, env = project
    assert not run(root, env, fixture_index).replayed  # records
    assert run(root, env, fixture_index).replayed
    make, settle = CHANGES[change]
    undo = make(root, env)
    assert not run(root, env, fixture_index).replayed, change
    undo()
    assert not (root / "envs" / ".stack-resolver-txn").exists()  # completed by the full path
    for _ in range(settle):
        assert not run(root, env, fixture_index).replayed
    assert run(root, env, fixture_index).replayed


@E2E
def test_a_hand_edited_lock_is_relocked_not_replayed(
    project: tuple[Path, dict[str, str]], fixture_index: FixtureIndex
) -> None:
    root, env = project
    assert not run(root, env, fixture_index).replayed
    assert run(root, env, fixture_index).replayed
    lock = root / "envs" / "gpu" / "poetry.lock"
    committed = lock.read_bytes()
    lock.write_bytes(committed + b"\n# edited\n")
    edited = run(root, env, fixture_index)
    assert not edited.replayed and edited.asked > 0
    assert lock.read_bytes() == committed
    # the lock as committed again: the entry recorded before vouches for it
    assert run(root, env, fixture_index).replayed


# --- the entry and the cache folder, without a process ----------------------------------------


def _stored() -> bytes:
    chunks = [("err", "project: here\n"), ("out", "torch 2.8.0\n"), ("err", "warning: é\n")]
    return replay.dump("k" * 64, [(replay.FILE, "/nowhere/x", "-")], chunks, 0)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("cut short", lambda data: data[:-3]),
        ("one bit", lambda data: data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]),
        ("another format", lambda data: data.replace(replay.FORMAT, b"stack-resolver replay 0", 1)),
        ("empty", lambda data: b""),
        ("garbage", lambda data: os.urandom(64)),
    ],
)
def test_a_damaged_entry_is_a_miss(name: str, damage: Callable[[bytes], bytes]) -> None:
    assert replay.parse(_stored(), "k" * 64) is not None
    assert replay.parse(damage(_stored()), "k" * 64) is None, name


def test_an_entry_reads_back_as_written_and_only_under_its_key() -> None:
    parsed = replay.parse(_stored(), "k" * 64)
    assert parsed == (
        [(replay.FILE, "/nowhere/x", "-")],
        [("err", "project: here\n"), ("out", "torch 2.8.0\n"), ("err", "warning: é\n")],
        0,
    )
    assert replay.parse(_stored(), "j" * 64) is None


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/a"},
        {"HOME": "/home/a", "XDG_CACHE_HOME": "/var/cache/a"},
        {"HOME": "/home/a", "XDG_CACHE_HOME": "relative"},
        {"HOME": "/home/a", "STACK_RESOLVER_CACHE_DIR": "/srv/cache/http"},
    ],
)
def test_the_fast_path_finds_the_cache_root_the_tool_uses(env: dict[str, str]) -> None:
    assert cache_root_text(env) == str(cache_root(env))


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["detect"], {}),
        (["lock"], {}),
        (["resolve", "--host", "h.json"], {"STACK_RESOLVER_NO_REPLAY": "1"}),
        (["resolve", "--host", "h.json"], {"_ARGCOMPLETE": "1"}),
    ],
)
def test_other_commands_and_a_turned_off_replay_do_not_look(argv: list[str], env: dict[str, str]) -> None:
    assert replay.lookup(argv, {"HOME": "/nowhere", **env}) is None


def test_a_missing_entry_is_a_miss(tmp_path: Path) -> None:
    found = replay.lookup(
        ["resolve", "--host", "h.json"], {"STACK_RESOLVER_CACHE_DIR": str(tmp_path / "http")}
    )
    assert isinstance(found, replay.Miss)
    assert Path(found.path).parent == tmp_path / replay.FOLDER


def test_the_key_covers_the_environment_but_not_the_shells_own_variables() -> None:
    base = {"HOME": "/h", "PATH": "/bin"}
    key = replay.run_key(["resolve"], base, "/p")
    assert replay.run_key(["resolve"], {**base, "SHLVL": "3", "_": "/usr/bin/x", "OLDPWD": "/"}, "/p") == key
    for other in ({**base, "PATH": "/usr/bin"}, {**base, "ANYTHING": ""}):
        assert replay.run_key(["resolve"], other, "/p") != key
    assert replay.run_key(["resolve"], base, "/q") != key
    assert replay.run_key(["resolve", "--json"], base, "/p") != key


def test_the_stored_environment_is_a_digest_only() -> None:
    key = replay.run_key(["resolve"], {"TOKEN": "s3cr3t-value"}, "/p")
    data = replay.dump(key, [], [("out", "x\n")], 0)
    assert b"s3cr3t-value" not in data
    assert replay.parse(data, key) == ([], [("out", "x\n")], 0)
