"""Guarantee 1 (all-or-nothing commits): a run killed with SIGKILL at any write step leaves every
file of envs/ either as it was or complete in its new form, and the next run repairs an
interrupted commit so the files agree again.

Each test makes an old, locked envs/ (real Poetry), changes an input so that every file the run
writes gets new content, and makes the reference "new" envs/ with one uncrashed run (real Poetry).
Then, for N = 1, 2, ...: restore the old tree, run again with `STACK_RESOLVER_CRASH_AT=N` (the
process SIGKILLs itself at its N-th write step, see resolver/fsutil.py), and check the files:
without a journal in `envs/.stack-resolver-txn/` they are all old (killed before the commit
point) or all new (killed after it was done); with one, each is old or new and the journal
names the rest. Then run once more, uncrashed: it completes
the commit (after the commit point; it says so, and finds the lock up to date: "lock reused") or
locks again (before it), and the tree is the new one exactly. The loop ends at the first N the
run survives. resolver/lock/commit.py takes 3 steps per file written plus 5: 14 kill points for
`resolve` (3 files), 53 for `lock` (5 targets x 3 files + team.lock.json).

Poetry is real in the runs that make the old and new trees. The crashed runs replay its lock
(`replay_poetry` below: the lock real Poetry wrote for the same pyproject) so the runs fit in the
time budget; every crash point is in the tool's commit, after Poetry has finished, and the
uncrashed replay run must reproduce the real run's tree byte for byte.

Temporary files: a killed writer may leave staged files in `envs/.stack-resolver-txn/` (the next
run removes or completes them) and at most one `.stack-resolver-tmp-<pid>-*` file of its own
(dead) pid elsewhere, which `sweep_stale_temps` and the next run remove.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from resolver.fsutil import TEMP_PREFIX, sweep_stale_temps
from resolver.lock.commit import JOURNAL, TXN_DIR
from resolver.lock.poetry.mirror import content_hash
from tests.fixtures.isolation import poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter"),
]

TEAM = Path(__file__).parents[1] / "data" / "team"
CPU_HOST = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
# crash points in a commit (resolver/lock/commit.py): staging and renaming each file, the journal
# (one atomic write: 4), removing it
STEPS_PER_FILE = 3
STEPS_PER_COMMIT = 5

REPLAY = '''#!{python}
"""Stands in for Poetry: writes the lock real Poetry made for this pyproject (see the test)."""
from __future__ import annotations
import hashlib, json, re, sys, tomllib
from pathlib import Path

{content_hash}

if sys.argv[1:2] == ["--version"]:
    print("Poetry (version {version})")
    sys.exit(0)
if "lock" not in sys.argv[1:]:
    sys.exit("replay: only `lock` is recorded")
text = Path("pyproject.toml").read_text(encoding="utf-8")
# The staging copy reads the index through the tool's mirror (resolver/offline.py).
mirror = re.search(r"http://127\\.0\\.0\\.1:\\d+(?=/https?/)", text)
real = re.sub(r"http://127\\.0\\.0\\.1:\\d+/(https?)/", r"\\1://", text)
locks = json.loads(Path({locks!r}).read_text(encoding="utf-8"))
lock = locks.get(hashlib.sha256(real.encode()).hexdigest())
if lock is None:
    sys.exit("replay: no recorded lock for this pyproject")
if mirror is not None:
    base = mirror.group(0)
    lock = re.sub(r'^url = "(https?)://', lambda m: f'url = "{{base}}/{{m.group(1)}}/', lock, flags=re.M)
digest = content_hash(tomllib.loads(text))
lock = re.sub(r'^content-hash = "[0-9a-f]{{64}}"$', f'content-hash = "{{digest}}"', lock, flags=re.M)
Path("poetry.lock").write_text(lock, encoding="utf-8")
'''


def _tree(root: Path) -> dict[str, bytes]:
    """The files a user sees: not temporary files, not an interrupted commit's staging folder."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(TEMP_PREFIX) and TXN_DIR not in p.relative_to(root).parts
    }


def _temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(f"{TEMP_PREFIX}*") if TXN_DIR not in p.relative_to(root).parts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _env(tmp: Path, index: FixtureIndex) -> dict[str, str]:
    env = poetry_env(tmp / "home")  # one Poetry cache for every run of the test
    env["STACK_RESOLVER_CACHE_DIR"] = str(tmp / "http-cache")
    env["STACK_RESOLVER_PYTORCH_INDEX"] = f"{index.base_url}/whl/{{variant}}/simple"
    env["STACK_RESOLVER_INDEX_URL"] = index.url()
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    scratch = tmp / "system-tmp"  # Poetry's staging folders: checked for leftovers too
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    return env


def _replay_poetry(tmp: Path, new_envs: Path) -> Path:
    """A stand-in for Poetry that writes, for each pyproject of the new tree, its real lock."""
    import hashlib

    locks: dict[str, str] = {}
    version = None
    for lock in new_envs.rglob("poetry.lock"):
        pyproject = (lock.parent / "pyproject.toml").read_bytes()
        locks[hashlib.sha256(pyproject).hexdigest()] = lock.read_text(encoding="utf-8")
        version = json.loads((lock.parent / "resolution.json").read_text())["poetry"]
    (tmp / "replay-locks.json").write_text(json.dumps(locks), encoding="utf-8")
    script = tmp / "replay-bin" / "poetry"
    script.parent.mkdir()
    script.write_text(
        REPLAY.format(
            python=sys.executable,
            version=version,
            locks=str(tmp / "replay-locks.json"),
            # resolver.lock.poetry.mirror's own function, without importing the tool (5 stand-ins per run)
            content_hash=inspect.getsource(content_hash),
        ),
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    pid: int  # whose name a killed writer's temp file carries


def _run(cwd: Path, env: dict[str, str], *args: str) -> Ran:
    with subprocess.Popen(
        [sys.executable, "-m", "resolver", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        stdout, stderr = proc.communicate(timeout=300)
    return Ran(proc.returncode, stdout, stderr, proc.pid)


def _kill_at_every_step(
    tmp: Path,
    old: Path,
    new_tree: dict[str, bytes],
    env: dict[str, str],
    run: Callable[[Path, dict[str, str]], Ran],
) -> int:
    """Crash the run at N = 1, 2, ... until it survives; check the files after each kill, and
    that the next run repairs them. Returns the number of write steps (kill points) the run has."""
    old_tree = _tree(old / "envs")
    work = tmp / "work"
    envs = work / "envs"
    staging_root = Path(env["TMPDIR"])
    rolled_forward = 0
    for n in range(1, 500):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(old, work)
        proc = run(work, dict(env, STACK_RESOLVER_CRASH_AT=str(n)))
        if proc.returncode == 0:
            assert _tree(envs) == new_tree, f"the run past its last write step (N={n}) differs"
            assert not _temps(envs) and not (envs / TXN_DIR).exists()
            assert rolled_forward > 0, "no kill point fell after the commit point"
            return n - 1
        assert proc.returncode == -signal.SIGKILL, f"N={n}: {proc.returncode}\n{proc.stderr}"
        now = _tree(envs)
        assert set(now) <= set(old_tree) | set(new_tree), (
            f"N={n}: unexpected files {set(now) - set(old_tree)}"
        )
        for path in set(old_tree) | set(new_tree):
            assert now.get(path) in (old_tree.get(path), new_tree.get(path)), (
                f"N={n}: {path} is neither its old nor its complete new content"
            )
        committed = (envs / TXN_DIR / JOURNAL).is_file()
        if not committed:
            # before the commit point, or after the journal was removed (the commit was done)
            assert now in (old_tree, new_tree), f"N={n}: a mixed set without a journal"
        temps = _temps(envs)
        # A named temp file of the killed writer, at most one (it writes one file at a time).
        assert len(temps) <= 1, f"N={n}: {temps}"
        for temp in temps:
            assert temp.name.startswith(f"{TEMP_PREFIX}{proc.pid}-") and not _alive(proc.pid)
        if n % 2:  # a sweep before the next run (as a run does it) never breaks the repair
            assert [t for t in sweep_stale_temps(envs) if TXN_DIR not in t.parts] == temps
        assert not list(staging_root.glob("stack-resolver-staging-*")), f"N={n}: staging folder left"

        # The next run repairs: it completes the commit (then the lock is up to date) or locks again.
        again = run(work, env)
        assert again.returncode == 0, f"N={n}: {again.stderr}"
        assert _tree(envs) == new_tree, f"N={n}: the run after the kill did not repair the files"
        assert not _temps(envs) and not (envs / TXN_DIR).exists()
        if committed:
            rolled_forward += 1
            assert "completed an interrupted commit" in again.stderr, f"N={n}: {again.stderr}"
            assert "lock reused" in again.stdout, f"N={n}: {again.stdout}"
    raise AssertionError("the run never got past its write steps")


def _next_run_sweeps(tmp: Path, old: Path, new_tree: dict[str, bytes], env: dict[str, str], run: Any) -> None:
    """Kill at the first step (inside the commit's staging), then run again: the staging folder
    is gone, and the files are the new ones."""
    work = tmp / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(old, work)
    assert run(work, dict(env, STACK_RESOLVER_CRASH_AT="1")).returncode == -signal.SIGKILL
    assert (work / "envs" / TXN_DIR).is_dir()
    again = run(work, env)
    assert again.returncode == 0, again.stderr
    assert _temps(work / "envs") == [] and not (work / "envs" / TXN_DIR).exists()
    assert _tree(work / "envs") == new_tree


def test_resolve_killed_at_every_write_step(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _env(tmp_path, fixture_index)
    old = tmp_path / "old"
    (old / "envs").mkdir(parents=True)
    (old / "envs" / "team.toml").write_text('packages = ["torchvision"]\n', encoding="utf-8")
    (old / "cpu.json").write_text(json.dumps(CPU_HOST), encoding="utf-8")

    args = ("resolve", "--team", "envs/team.toml", "--host", "cpu.json", "--target", "cpu")

    def resolve(cwd: Path, run_env: dict[str, str], *extra: str) -> Ran:
        return _run(cwd, run_env, *args, *extra)

    first = resolve(old, env, "--constraint", "torch<2.8")  # the old lock: torch 2.7.1
    assert first.returncode == 0, first.stderr
    new = tmp_path / "new"
    shutil.copytree(old, new)
    second = resolve(new, env)  # the change: the constraint is dropped, torch 2.8.0
    assert second.returncode == 0, second.stderr
    new_tree = _tree(new / "envs")
    old_tree = _tree(old / "envs")
    changed = [p for p in new_tree if new_tree[p] != old_tree.get(p)]
    assert sorted(changed) == ["cpu/poetry.lock", "cpu/pyproject.toml", "cpu/resolution.json"]

    replay_env = dict(env, STACK_RESOLVER_POETRY=str(_replay_poetry(tmp_path, new / "envs")))
    steps = _kill_at_every_step(tmp_path, old, new_tree, replay_env, resolve)
    assert steps == STEPS_PER_FILE * len(changed) + STEPS_PER_COMMIT
    _next_run_sweeps(tmp_path, old, new_tree, replay_env, resolve)


def test_lock_killed_at_every_write_step(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = _env(tmp_path, fixture_index)
    old = tmp_path / "old"
    shutil.copytree(TEAM, old / "envs")

    def lock(cwd: Path, run_env: dict[str, str], *extra: str) -> Ran:
        return _run(cwd, run_env, "lock", "--team", "envs/team.toml", *extra)

    first = lock(old, env, "--constraint", "transformers<5")  # the old locks: transformers 4.57.6
    assert first.returncode == 0, first.stderr
    new = tmp_path / "new"
    shutil.copytree(old, new)
    second = lock(new, env)  # the change: transformers 5.0.0 for every target
    assert second.returncode == 0, second.stderr
    new_tree = _tree(new / "envs")
    old_tree = _tree(old / "envs")
    changed = [p for p in new_tree if new_tree[p] != old_tree.get(p)]
    assert len(changed) == 5 * 3 + 1 and "team.lock.json" in changed

    replay_env = dict(env, STACK_RESOLVER_POETRY=str(_replay_poetry(tmp_path, new / "envs")))
    steps = _kill_at_every_step(tmp_path, old, new_tree, replay_env, lock)
    assert steps == STEPS_PER_FILE * len(changed) + STEPS_PER_COMMIT
    _next_run_sweeps(tmp_path, old, new_tree, replay_env, lock)
