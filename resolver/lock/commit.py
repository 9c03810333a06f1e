"""All-or-nothing commits of several files under `envs/`: a target's pyproject.toml, locks and
resolution.json, and the team's team.lock.json, change together or not at all.

1. Every new file is written in full (and fsynced) into `envs/.stack-resolver-txn/`.
2. The journal (`journal.json`: destination -> staged file, sha256) is written there with one
   atomic rename: this is the commit point.
3. Each staged file is renamed over its destination; then the journal and the folder go.

A run killed before step 2 leaves the old files and a folder without a journal; one killed after
it leaves a journal. `recover` (every writing run calls it first, under the envs/ lock) removes the
former and completes the latter, so the next run always starts from one consistent state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any

from resolver.fsutil import (
    as_write_error,
    atomic_write_bytes,
    crash_point,
    create_temp,
    fsync_dir,
    write_all,
)

TXN_DIR = ".stack-resolver-txn"
JOURNAL = "journal.json"
STAGED_PREFIX = "staged-"
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Recovery:
    """What `recover` found: a commit past its commit point, completed (`rolled_forward`: the
    files it still had to rename), or one thrown away before it."""

    completed: bool = False
    rolled_forward: tuple[str, ...] = ()
    rolled_back: bool = False


def _inside(envs: Path, relative: str) -> Path | None:
    """`envs/relative`, or None when `relative` would leave envs/ (a journal is never trusted)."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in pure.parts):
        return None
    return envs.joinpath(*pure.parts)


def _read_journal(txn: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads((txn / JOURNAL).read_bytes())
    except (OSError, ValueError):
        return None
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    return [e for e in entries if isinstance(e, dict)]


def recover(envs: Path) -> Recovery:
    """Finish or undo a commit that a killed run left in `envs/`. Call it holding the envs/ lock."""
    txn = envs / TXN_DIR
    if not txn.is_dir():
        return Recovery()
    entries = _read_journal(txn)
    if entries is None:
        shutil.rmtree(txn, ignore_errors=True)
        return Recovery(rolled_back=True)
    done = []
    for entry in entries:
        destination = _inside(envs, str(entry.get("path", "")))
        staged = txn / str(entry.get("staged", ""))
        if destination is None or staged.parent != txn or not staged.is_file():
            continue  # renamed before the kill (or not ours to write)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, destination)
        fsync_dir(destination.parent)
        done.append(str(entry["path"]))
    (txn / JOURNAL).unlink()
    shutil.rmtree(txn, ignore_errors=True)
    return Recovery(completed=True, rolled_forward=tuple(done))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP wait until the renames are done, then take effect as usual (a SIGKILL
    cannot wait: `recover` repairs that). Python runs signal handlers in the main thread only,
    whichever thread the kernel picked, so replacing the handlers is enough."""
    pending: list[int] = []

    def defer(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    try:
        previous = {number: signal.signal(number, defer) for number in _SIGNALS}
    except ValueError:  # not the main thread: its signals are the application's business
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for signum in pending:
            signal.raise_signal(signum)


def commit(envs: Path, files: Mapping[Path, bytes]) -> tuple[Path, ...]:
    """Replace every file of `files` (paths under `envs`) together; returns those that changed.
    Unchanged files are left alone; nothing changed writes nothing."""
    envs = Path(envs)
    changes: dict[str, tuple[Path, bytes]] = {}
    for path, data in files.items():
        relative = Path(path).relative_to(envs).as_posix()
        if _inside(envs, relative) is None:
            raise ValueError(f"{path} is not inside {envs}")
        with contextlib.suppress(FileNotFoundError):
            if Path(path).read_bytes() == data:
                continue
        changes[relative] = (Path(path), data)
    if not changes:
        return ()
    txn = envs / TXN_DIR
    shutil.rmtree(txn, ignore_errors=True)  # a folder without a journal: `recover` ran first
    entries = []
    current = txn
    try:
        txn.mkdir(parents=True)
        for relative, (_, data) in sorted(changes.items()):
            current = envs / relative
            # not a TEMP_PREFIX name: `sweep_stale_temps` must never remove a journalled file
            fd, staged = create_temp(txn, prefix=STAGED_PREFIX)
            try:
                crash_point()
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            _keep_mode(envs / relative, staged)
            crash_point()
            entries.append({"path": relative, "staged": staged.name, "sha256": _sha256(data)})
        fsync_dir(txn)
    except OSError as exc:  # a full disk, no permission: before the commit point, so nothing changed
        shutil.rmtree(txn, ignore_errors=True)
        raise as_write_error(current, exc) from None
    except BaseException:
        shutil.rmtree(txn, ignore_errors=True)
        raise
    journal = (json.dumps({"files": entries}, indent=2) + "\n").encode()
    with _signals_deferred():
        atomic_write_bytes(txn / JOURNAL, journal)  # the commit point
        for entry in entries:
            destination = envs / entry["path"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(txn / entry["staged"], destination)
            crash_point()
        for directory in {(envs / e["path"]).parent for e in entries}:
            fsync_dir(directory)
        (txn / JOURNAL).unlink()
        crash_point()
        shutil.rmtree(txn, ignore_errors=True)
    return tuple(path for _, (path, _) in sorted(changes.items()))


def _keep_mode(destination: Path, staged: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.chmod(staged, destination.stat().st_mode & 0o777)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
