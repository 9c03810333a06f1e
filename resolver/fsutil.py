"""The one place files are written: new content goes to a temporary file beside the target, is
flushed to disk, and replaces the target with one rename.

A reader, or a process killed at any instant, sees either the old content or the complete new one.
The temporary file is named with the prefix and the writer's pid: it is removed on every error and,
if the writer was killed, by `sweep_stale_temps` at the start of the next run. It is created with
O_EXCL and mode 0o666, so the kernel applies the umask (reading the umask would mean setting it,
which races with every other thread that creates a file).

Files that must change together (a target's pyproject.toml and its lock) go through
`resolver.lock.commit`, which stages them and journals the renames; this module writes one file.

`STACK_RESOLVER_CRASH_AT=N` (tests only) kills the process with SIGKILL at the N-th write step,
so the tests can prove the guarantees at every step instead of at random instants.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from resolver.errors import WriteError

TEMP_PREFIX = ".stack-resolver-tmp-"
_CRASH_ENV = "STACK_RESOLVER_CRASH_AT"
# Write steps this process has taken. A process-wide count is the point: the tests name the
# N-th step of a whole run, whichever module takes it.
_steps: Iterator[int] = itertools.count(1)


def crash_point() -> None:
    """Count one write step; die here if the tests asked for a crash at this step."""
    target = os.environ.get(_CRASH_ENV)
    if target and str(next(_steps)) == target:
        os.kill(os.getpid(), signal.SIGKILL)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def create_temp(directory: Path, suffix: str = "", prefix: str = TEMP_PREFIX) -> tuple[int, Path]:
    """A new file beside the target, `<prefix><pid>-<random><suffix>`, opened for writing.
    Mode 0o666 less the umask, applied by the kernel."""
    while True:
        path = directory / f"{prefix}{os.getpid()}-{os.urandom(6).hex()}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


_F = TypeVar("_F", bound=Callable[..., bool])

_WRITE_HINTS = {
    errno.ENOSPC: "free some disk space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EACCES: "make the folder writable (chmod u+w), or run from a checkout you own",
    errno.EPERM: "make the folder writable (chmod u+w), or run from a checkout you own",
    errno.EROFS: "the filesystem is read-only; run from a writable checkout",
}


def as_write_error(path: Path, exc: OSError) -> WriteError:
    """The tool's one-line error for an OS error while writing `path`, with a hint by errno."""
    return WriteError(str(path), exc.strerror or str(exc), hint=_WRITE_HINTS.get(exc.errno or 0))


def clean_write_errors(write: _F) -> _F:
    """An OS error while writing becomes a `WriteError` naming the file: the write left the old
    content in place (it replaces the target only by the final rename), so nothing is lost."""

    @functools.wraps(write)
    def wrapper(path: Path, *args: object, **kwargs: object) -> bool:
        try:
            return write(path, *args, **kwargs)
        except OSError as exc:
            raise as_write_error(path, exc) from None

    return wrapper  # type: ignore[return-value]


@clean_write_errors
def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> bool:
    """Write `data` to `path` atomically. Returns False (and touches nothing) if unchanged.
    `durable=False` (caches) skips the fsyncs: still all-or-nothing, just not forced to disk."""
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = create_temp(path.parent, f"-{path.name}")
    try:
        crash_point()
        try:
            write_all(fd, data)
            crash_point()
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        _keep_mode(path, temp)
        crash_point()
        os.replace(temp, path)
        crash_point()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(path.parent)
    return True


def _keep_mode(path: Path, temp: Path) -> None:
    """An existing file keeps its permissions; a new one has what the kernel gave the temp."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    os.chmod(temp, mode)


def sweep_stale_temps(root: Path) -> list[Path]:
    """Remove temporary files that a killed writer left under `root`. Files of writers still
    running are left alone."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for candidate in root.rglob(f"{TEMP_PREFIX}*"):
        pid_text = candidate.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(directory: Path) -> None:
    # Makes a rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> bool:
    return atomic_write_bytes(path, text.encode("utf-8"))
