"""`verify`: one entry point for every lock format. It picks the format's verifier, so the
Poetry and conda verifiers never import each other (the conda one builds on the Poetry one's
report types)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resolver.host.model import Host
from resolver.verify import poetry
from resolver.verify.poetry import Report, lock_format_for


def verify_target(directory: Path, host: Host, *, lock_format: str | None = None, **options: Any) -> Report:
    """Install `directory`'s lock (`--format`, else poetry.lock when present, else conda-lock.yml)
    into a fresh environment and smoke-test it there; `options` are `poetry.verify_target`'s."""
    if lock_format_for(directory, lock_format) == "conda":
        from resolver.verify.conda import verify_conda_target

        conda_options = {k: v for k, v in options.items() if k in ("runner", "environ", "keep", "client")}
        return verify_conda_target(directory, host, **conda_options)
    return poetry.verify_target(directory, host, **options)
