"""`envs/<target>/resolution.json`: what a target was resolved and locked from, and the hashes of
the files written at its commit. Its own schema and serializer (not the display JSON of
`resolve --json`), so a change of wording never changes a record or invalidates a lock.

Keys: `tool`, `matrix_version`, `matrix_sha256` (the matrix files' content), `host`, `resolution`
(python, torch, variant, torchvision, torchaudio, transformers, index_url, warnings), `formats`;
for Poetry `poetry` (its version), `owned_dependencies`, `inputs_hash`, `pyproject_sha256`,
`lock_sha256`; for conda a `conda` section (resolver/lock/conda.py); for
`resolve`, `fresh` (resolver/lock/fresh.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resolver import __version__, files
from resolver.host.model import Host
from resolver.matrix.model import Matrix
from resolver.solve.search import Resolution

RESOLUTION = "resolution.json"


def resolution_record(resolution: Resolution, index_url: str | None) -> dict[str, Any]:
    return {
        "python": resolution.python,
        "torch": resolution.torch,
        "variant": resolution.variant,
        "torchvision": resolution.pin(resolution.torchvision),
        "torchaudio": resolution.pin(resolution.torchaudio),
        "transformers": str(resolution.transformers.version),
        "index_url": index_url,
        "warnings": list(resolution.warnings),
    }


def base_record(host: Host, matrix: Matrix, resolution: Resolution, index_url: str | None) -> dict[str, Any]:
    return {
        "tool": {"name": "stack-resolver", "version": __version__},
        "matrix_version": matrix.version,
        "matrix_sha256": matrix.digest or None,
        "host": host.to_json(),
        "resolution": resolution_record(resolution, index_url),
    }


def dumps(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytes | None:
    """A file's bytes; None when absent; an InputError naming it when it cannot be read."""
    if not path.exists():
        return None
    return files.read_bytes(path, path.name)


def previous_record(directory: Path) -> dict[str, Any]:
    """The target's last committed record; {} when there is none or it does not parse (then
    nothing is reused: the target is locked again)."""
    raw = read_bytes(directory / RESOLUTION)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # damaged: no record, so the target is locked again
        return {}
    return data if isinstance(data, dict) else {}
