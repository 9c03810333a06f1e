"""Runs that meet each other, signals, hostile target names and stale locks: one writing run at a
time per checkout, SIGTERM/SIGHUP like Ctrl-C (exit 130, nothing left behind), nothing written
outside envs/, and a lock reused only when everything its record holds matches the disk."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from resolver.lock.guard import ENVS_LOCK
from tests.fixtures.cli import file_tree, loopback_env, run_cli, write_project
from tests.fixtures.isolation import poetry_argv, poetry_available
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

needs_poetry = pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed")
ARGS = ("resolve", "--team", "envs/team.toml", "--host", "cpu.json")


def _project(root: Path, index: FixtureIndex) -> dict[str, str]:
    write_project(root, 'packages = ["torchvision"]\n')
    env = loopback_env(root, index)
    (root / "system-tmp").mkdir()
    env["TMPDIR"] = str(root / "system-tmp")  # where Poetry's staging folders go
    return env


def _project_files(root: Path) -> dict[str, bytes]:
    """The project's files: without the tool's matrix cache, a user cache that these tests keep
    beside the HTTP cache under `root` (a rejected run may still have read the matrix)."""
    return {name: data for name, data in file_tree(root).items() if not name.startswith("matrix-cache/")}


def _start(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "resolver", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: object, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _torch_everywhere(directory: Path) -> tuple[str, str, str]:
    """torch as pyproject.toml, poetry.lock and resolution.json record it."""
    pyproject = tomllib.loads((directory / "pyproject.toml").read_text())
    pinned = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch=="))
    lock = tomllib.loads((directory / "poetry.lock").read_text())
    locked = next(p["version"] for p in lock["package"] if p["name"] == "torch")
    record = json.loads((directory / "resolution.json").read_text())
    return pinned.removeprefix("torch=="), locked, record["resolution"]["torch"]


def _poetry_check(directory: Path, env: dict[str, str]) -> None:
    check = subprocess.run(
        [*poetry_argv(), "check", "--lock", "--no-interaction"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- target names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "/tmp/x", "a\\b", "", "name with space"])
def test_a_target_name_is_a_slug(tmp_path: Path, fixture_index: FixtureIndex, name: str) -> None:
    env = _project(tmp_path, fixture_index)
    (tmp_path / "pyproject.toml").write_text("# the repository's own\n")
    before = _project_files(tmp_path)
    proc = run_cli(tmp_path, env, *ARGS, "--target", name)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "target name" in proc.stderr and repr(name)[1:-1] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _project_files(tmp_path) == before


def test_a_team_target_named_dot_dot_is_rejected(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _project(tmp_path, fixture_index)
    (tmp_path / "envs" / "team.toml").write_text('packages = []\n\n[targets.".."]\nhost = "../cpu.json"\n')
    (tmp_path / "pyproject.toml").write_text("# the repository's own\n")
    before = _project_files(tmp_path)
    proc = run_cli(tmp_path, env, "lock", "--team", "envs/team.toml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'..'" in proc.stderr and "Traceback" not in proc.stderr
    assert _project_files(tmp_path) == before


# --- one run at a time -------------------------------------------------------------------------


def test_no_wait_fails_at_once_while_another_run_writes(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _project(tmp_path, fixture_index)
    with FileLock(str(tmp_path / "envs" / ENVS_LOCK)):
        proc = run_cli(tmp_path, env, *ARGS, "--target", "cpu", "--no-wait", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "another stack-resolver run" in proc.stderr
    assert not (tmp_path / "envs" / "cpu").exists()


def _held_by_other(lock_path: Path) -> bool:
    probe = FileLock(str(lock_path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


@pytest.mark.e2e
@needs_poetry
def test_two_runs_on_one_checkout_take_turns(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    """Two real processes resolve different torch versions into one target at once: the second
    waits (saying so), both succeed, and the files agree with each other and with Poetry."""
    env = _project(tmp_path, fixture_index)
    lock_path = tmp_path / "envs" / ENVS_LOCK
    first = _start(tmp_path, env, *ARGS, "--target", "cpu", "--constraint", "torch<2.8")
    _wait_for(lambda: lock_path.exists() and _held_by_other(lock_path), "the first run to take envs/")
    second = _start(tmp_path, env, *ARGS, "--target", "cpu")
    _, err1 = first.communicate(timeout=600)
    _, err2 = second.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "waiting for another stack-resolver run" in err2
    pinned, locked, recorded = _torch_everywhere(tmp_path / "envs" / "cpu")
    assert pinned == locked == recorded == "2.8.0+cpu"  # the second run's, complete
    _poetry_check(tmp_path / "envs" / "cpu", env)


# --- signals -----------------------------------------------------------------------------------


def _pids_in(directory: Path) -> set[int]:
    """Processes whose working directory is under `directory` (Poetry in its staging folder)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(directory)):
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for this purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.e2e
@needs_poetry
@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_are_ctrl_c(tmp_path: Path, fixture_index: FixtureIndex, signum: int) -> None:
    env = _project(tmp_path, fixture_index)
    staging_root = tmp_path / "system-tmp"
    proc = _start(tmp_path, env, *ARGS, "--target", "cpu")
    _wait_for(lambda: bool(_pids_in(staging_root)), "Poetry to start in its staging folder")
    poetry = _pids_in(staging_root)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    _wait_for(lambda: not any(_alive(pid) for pid in poetry), "Poetry's process group to end", 30)
    assert list(staging_root.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "envs").iterdir()) == [ENVS_LOCK, "team.toml"]


# --- reuse only what the record vouches for ----------------------------------------------------


@pytest.mark.e2e
@needs_poetry
@pytest.mark.parametrize("damage", ["emptied", "tampered", "stale"])
def test_a_lock_the_record_does_not_vouch_for_is_locked_again(
    tmp_path: Path, fixture_index: FixtureIndex, damage: str
) -> None:
    """An emptied or edited poetry.lock, or the lock of another run beside this run's pyproject and
    record (what a run killed between the two writes used to leave), is never "reused"."""
    env = _project(tmp_path, fixture_index)
    target = tmp_path / "envs" / "cpu"
    older = run_cli(tmp_path, env, *ARGS, "--target", "cpu", "--constraint", "torch<2.8")
    assert older.returncode == 0, older.stderr
    older_lock = (target / "poetry.lock").read_bytes()
    first = run_cli(tmp_path, env, *ARGS, "--target", "cpu")
    assert first.returncode == 0, first.stderr
    lock = target / "poetry.lock"
    if damage == "emptied":
        lock.write_bytes(b"")
    elif damage == "tampered":
        lock.write_text(lock.read_text().replace('version = "2.8.0+cpu"', 'version = "2.7.1+cpu"', 1))
    else:
        lock.write_bytes(older_lock)
    again = run_cli(tmp_path, env, *ARGS, "--target", "cpu")
    assert again.returncode == 0, again.stderr
    assert "lock reused" not in again.stdout and "poetry.lock" in again.stdout
    pinned, locked, recorded = _torch_everywhere(target)
    assert pinned == locked == recorded == "2.8.0+cpu"
    record = json.loads((target / "resolution.json").read_text())
    assert record["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    _poetry_check(target, env)
    # And now it is vouched for: reused.
    last = run_cli(tmp_path, env, *ARGS, "--target", "cpu")
    assert last.returncode == 0 and "lock reused" in last.stdout, last.stderr
