"""The one subprocess wrapper every external tool goes through, so tests can replace it."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from resolver.errors import ExternalToolError


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    def __call__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
    ) -> Completed: ...


def run_subprocess(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> Completed:
    """Run a program and capture its output; a missing program or a timeout is an ExternalToolError."""
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ExternalToolError(
            f"cannot run {argv[0]}: program not found", hint="install it, or run through `nox -s resolve`"
        ) from None
    except subprocess.TimeoutExpired:
        raise _timed_out(argv, timeout) from None
    return Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


def _timed_out(argv: Sequence[str], timeout: float) -> ExternalToolError:
    return ExternalToolError(
        f"{' '.join(argv[:3])} did not finish within {timeout:.0f} s",
        hint="check the network and the index URLs, or raise STACK_RESOLVER_TOOL_TIMEOUT",
    )
