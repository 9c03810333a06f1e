"""The one place files are written: new content goes to a nameless or temporary file beside the
target, is flushed to disk, and replaces the target with one rename.

A reader, or a process killed at any instant, sees either the old content or the complete new one.
On Linux the new content is written to an O_TMPFILE inode that has no name until the moment it is
linked in just before the rename, so a killed run leaves no temporary file behind. Where the
filesystem cannot link such an inode (probed once per filesystem; some container filesystems
answer EXDEV) a temporary file named with the prefix and the writer's pid is used instead: removed
on every error, and, if the writer was killed, by `sweep_stale_temps` at the start of the next run.

`STACK_RESOLVER_CRASH_AT=N` (tests only) kills the process with SIGKILL at the N-th write step,
so the tests can prove the guarantee at every step instead of at random instants.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from resolver.errors import WriteError

TEMP_PREFIX = ".stack-resolver-tmp-"
_CRASH_ENV = "STACK_RESOLVER_CRASH_AT"
_steps = [0]  # write steps taken by this process, for the crash hook


def crash_point() -> None:
    """Count one write step; die here if the tests asked for a crash at this step."""
    target = os.environ.get(_CRASH_ENV)
    if not target:
        return
    _steps[0] += 1
    if str(_steps[0]) == target:
        os.kill(os.getpid(), signal.SIGKILL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _replace_via_tmpfile(path: Path, data: bytes, durable: bool) -> bool:
    """Linux: write into an unnamed inode, link it under a temporary name, rename over the target.
    Returns False where O_TMPFILE is unsupported (the caller falls back)."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        fd = os.open(path.parent, flag | os.O_WRONLY, 0o644)
    except OSError:
        return False
    try:
        crash_point()
        _write_all(fd, data)
        crash_point()
        if durable:
            os.fsync(fd)
        crash_point()
        # Unique per call: threads of one process may write the same file at once (the cache).
        temp = path.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}-{path.name}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        try:
            os.link(f"/proc/self/fd/{fd}", temp, follow_symlinks=True)
        except OSError:
            return False  # no /proc, or a filesystem that cannot link it: use a named temp file
        try:
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        crash_point()
    finally:
        os.close(fd)
    return True


_F = TypeVar("_F", bound=Callable[..., bool])

_WRITE_HINTS = {
    errno.ENOSPC: "free some disk space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EACCES: "make the folder writable (chmod u+w), or run from a checkout you own",
    errno.EPERM: "make the folder writable (chmod u+w), or run from a checkout you own",
    errno.EROFS: "the filesystem is read-only; run from a writable checkout",
}


def clean_write_errors(write: _F) -> _F:
    """An OS error while writing becomes a `WriteError` naming the file: the write left the old
    content in place (it replaces the target only by the final rename), so nothing is lost."""

    @functools.wraps(write)
    def wrapper(path: Path, *args: object, **kwargs: object) -> bool:
        try:
            return write(path, *args, **kwargs)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise WriteError(str(path), reason, hint=_WRITE_HINTS.get(exc.errno or 0)) from None

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
    mode = _mode_for(path)
    if _nameless_here(path.parent) and _replace_via_tmpfile(path, data, durable):
        with contextlib.suppress(OSError):
            os.chmod(path, mode)
        if durable:
            _fsync_dir(path.parent)
        return True
    # The pid in the name lets a later run tell a dead writer's leftover from a live one's file.
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        crash_point()
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            crash_point()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        crash_point()
        os.replace(tmp_name, path)
        crash_point()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        _fsync_dir(path.parent)
    return True


def sweep_stale_temps(root: Path) -> list[Path]:
    """Remove temporary files that a killed writer left under `root` (where the filesystem could
    not give it a nameless file). Files of writers still running are left alone."""
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


_nameless_by_device: dict[int, bool] = {}


def _nameless_here(directory: Path) -> bool:
    """`supports_nameless_temp`, asked once per filesystem: where it cannot link the nameless
    inode, no write starts on that path only to be thrown away."""
    try:
        device = directory.stat().st_dev
    except OSError:
        return False
    if device not in _nameless_by_device:
        _nameless_by_device[device] = supports_nameless_temp(directory)
    return _nameless_by_device[device]


def supports_nameless_temp(directory: Path) -> bool:
    """Whether writes in `directory` can use a nameless O_TMPFILE inode (nothing to leave behind)."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        fd = os.open(directory, flag | os.O_WRONLY, 0o600)
    except OSError:
        return False
    probe = directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}-probe"
    try:
        os.link(f"/proc/self/fd/{fd}", probe, follow_symlinks=True)
    except OSError:
        return False
    else:
        os.unlink(probe)
        return True
    finally:
        os.close(fd)


def _mode_for(path: Path) -> int:
    """Keep an existing file's permissions; new files get 0644 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> bool:
    return atomic_write_bytes(path, text.encode("utf-8"))
