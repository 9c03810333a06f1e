"""Which code is running: the tool's version and the size and mtime of each of its modules. A
cache the tool writes (the validated matrix, resolver/matrix/cache.py; a replayed run,
resolver/replay.py) is used only by the code that wrote it, so an upgrade or an edited checkout
misses. Taken once per process; only `os` is loaded (the replay's lookup runs before anything
heavier)."""

from __future__ import annotations

import os

from resolver import __version__

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_taken: list[str] = []


def code_stamp() -> str:
    """The stamp as text (callers hash it with the digest they already use)."""
    if not _taken:
        parts = [__version__]
        folders = [_PACKAGE]
        while folders:
            folder = folders.pop()
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    folders.append(entry.path)
                elif entry.name.endswith(".py"):
                    info = entry.stat()
                    parts.append(f"{entry.path}:{info.st_size}:{info.st_mtime_ns}")
        _taken.append("\n".join(parts))
    return _taken[0]
