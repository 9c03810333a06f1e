"""One writing run at a time per checkout: the advisory lock on envs/, taken with the repair of what
a killed run left (its commit finished or undone, its temporary files removed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from resolver.errors import ExternalToolError
from resolver.fsutil import sweep_stale_temps
from resolver.lock.commit import TXN_DIR, recover

ENVS_LOCK = ".stack-resolver.lock"
Notify = Callable[[str], None]


@contextlib.contextmanager
def envs_locked(envs: Path, *, wait: bool, notify: Notify) -> Iterator[None]:
    """Hold the advisory lock on envs/ (one writing run at a time per checkout), then repair what
    a killed run left: finish or undo its commit, remove its temporary files."""
    from filelock import FileLock, Timeout  # only writing runs load it (and its asyncio)

    envs.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(envs / ENVS_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise ExternalToolError(
                f"another stack-resolver run is writing {envs}/ (it holds {envs / ENVS_LOCK})",
                hint="wait for it to finish, or run again without --no-wait to wait for it",
            ) from None
        notify(f"waiting for another stack-resolver run to finish writing {envs}/ ...")
        lock.acquire()
    try:
        recovery = recover(envs)
        if recovery.completed:
            renamed = f": {', '.join(recovery.rolled_forward)}" if recovery.rolled_forward else ""
            notify(f"completed an interrupted commit in {envs}/{renamed}")
        sweep_stale_temps(envs)
        yield
    finally:
        lock.release()


def settle(envs: Path, notify: Notify) -> None:
    """Before a command reads envs/ (verify, export, sync): if a commit is in progress or was
    interrupted, wait for the writer, or complete the commit a killed run left, so what is read
    is one consistent set. Takes nothing when no commit is pending."""
    if (envs / TXN_DIR).exists():
        with envs_locked(envs, wait=True, notify=notify):
            pass
