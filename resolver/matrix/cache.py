"""The validated matrix, kept between runs: parsing and checking the TOML files costs more than
the whole solve, so a checked `Matrix` is pickled into the user cache and read back while the
files are unchanged.

The key is the content of every matrix file (`matrix_digest`, also recorded beside each lock)
plus the code that builds a `Matrix` (the tool's version and the size and mtime of its modules,
so an edited checkout never reads a pickle of older classes). Anything unreadable is rebuilt,
never trusted: the cache can be deleted at any time. `STACK_RESOLVER_NO_MATRIX_CACHE=1` turns it
off. Only the tool itself writes there, under the user's own cache folder, the same trust as its
`__pycache__`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from resolver.codestamp import code_stamp
from resolver.matrix.model import Matrix

DISABLE_VAR = "STACK_RESOLVER_NO_MATRIX_CACHE"
KEEP = 16  # cached matrices kept (one per matrix directory and overlays in use)


def matrix_digest(layers: Sequence[Path]) -> str:
    """sha256 of every *.toml file of the layers, in layer order: what the matrix says, whatever
    folder it sits in. A missing layer hashes as empty (loading then reports it)."""
    digest = hashlib.sha256()
    for layer, root in enumerate(layers):
        try:
            names = sorted(entry.name for entry in os.scandir(root) if entry.name.endswith(".toml"))
        except OSError:
            names = []
        for name in names:
            try:
                data = (root / name).read_bytes()
            except OSError:
                data = b"\0unreadable"
            digest.update(f"{layer}\0{name}\0{len(data)}\0".encode())
            digest.update(data)
    return "sha256:" + digest.hexdigest()


def _cache_dir(environ: Mapping[str, str]) -> Path:
    from resolver.dirs import cache_root

    return cache_root(environ) / "matrix-cache"


def cached_matrix(
    layers: Sequence[Path], build: Callable[[str], Matrix], environ: Mapping[str, str] = os.environ
) -> Matrix:
    """The matrix of `layers`: from the cache when its files are unchanged, else `build(digest)`
    (which raises on a bad matrix: nothing is cached then)."""
    digest = matrix_digest(layers)
    if environ.get(DISABLE_VAR, "").strip() not in ("", "0"):
        return build(digest)
    where = "\n".join(str(p.resolve()) for p in layers)
    key = hashlib.sha256(f"{digest}\n{code_stamp()}\n{where}".encode()).hexdigest()
    folder = _cache_dir(environ)
    path = folder / (hashlib.sha256(where.encode()).hexdigest()[:32] + ".pickle")
    try:
        stored_key, matrix = pickle.loads(path.read_bytes())
        if stored_key == key and isinstance(matrix, Matrix):
            return matrix
    except Exception:  # absent, damaged, or written by other code: rebuilt below
        pass
    matrix = build(digest)
    _store(folder, path, pickle.dumps((key, matrix), protocol=pickle.HIGHEST_PROTOCOL))
    return matrix


def _store(folder: Path, path: Path, data: bytes) -> None:
    """Write the pickle atomically and keep the folder small; a cache that cannot be written
    (read-only home, full disk) only costs the next run its time."""
    from resolver.fsutil import create_temp, write_all

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = create_temp(folder, suffix=".pickle")
        try:
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        entries = sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return
