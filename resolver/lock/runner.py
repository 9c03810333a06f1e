"""The one subprocess wrapper every external tool goes through, so tests can replace it."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from resolver.errors import ExternalToolError, InputError, Location


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
    """Run a program and capture its output; a missing program or a timeout is an ExternalToolError.
    `STACK_RESOLVER_TOOL_TIMEOUT` (seconds, in `env`) replaces the caller's `timeout`."""
    timeout = tool_timeout(env, timeout)
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


TOOL_TIMEOUT = "STACK_RESOLVER_TOOL_TIMEOUT"


def tool_timeout(env: Mapping[str, str], default: float) -> float:
    """How long an external tool (Poetry, conda-lock, pip, uv) may run: `STACK_RESOLVER_TOOL_TIMEOUT`
    seconds when set, else the caller's default."""
    text = env.get(TOOL_TIMEOUT, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InputError(
            "must be a number of seconds above 0",
            location=Location(f"${TOOL_TIMEOUT}"),
            value=text,
            hint="e.g. 1800",
        )
    return value


def _timed_out(argv: Sequence[str], timeout: float) -> ExternalToolError:
    return ExternalToolError(
        f"{' '.join(argv[:3])} did not finish within {timeout:.0f} s",
        hint="check the network and the index URLs, or raise STACK_RESOLVER_TOOL_TIMEOUT",
    )
