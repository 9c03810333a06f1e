"""The one subprocess wrapper every external tool goes through, so tests can replace it."""

from __future__ import annotations

import json
import subprocess
import tempfile
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


class Prestarted:
    """A `Runner` for one command whose process was started ahead of time, while the caller was
    still working out the arguments: the process loads its program, then waits on stdin for the
    job (`{"cwd": ..., "argv": [...]}`, one JSON line). See resolver/lock/poetry_warm.py.

    Only a call for the same command in the same environment is handed to the waiting process,
    and only once; any other call (or a process that failed to start) runs `fallback` as usual.
    `close()` ends a process that was never used.
    """

    def __init__(
        self,
        command: Sequence[str],
        boot_argv: Sequence[str],
        *,
        env: Mapping[str, str],
        fallback: Runner = run_subprocess,
    ) -> None:
        self.command = tuple(command)
        self.env = dict(env)
        self.fallback = fallback
        self._process: subprocess.Popen[str] | None
        try:
            self._process = subprocess.Popen(
                list(boot_argv),
                cwd=tempfile.gettempdir(),
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError:
            self._process = None  # the ordinary cold run will report what is wrong

    @property
    def pid(self) -> int | None:
        """The waiting process, or None once it was used or ended."""
        return None if self._process is None else self._process.pid

    def __call__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
    ) -> Completed:
        process, self._process = self._process, None
        command = tuple(argv[: len(self.command)])
        if process is None or command != self.command or dict(env) != self.env:
            if process is not None:
                _end(process)
            return self.fallback(argv, cwd=cwd, env=env, timeout=timeout)
        job = json.dumps({"cwd": str(cwd), "args": list(argv[len(self.command) :])})
        try:
            stdout, stderr = process.communicate(job + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            _end(process)
            raise _timed_out(argv, timeout) from None
        return Completed(tuple(argv), process.returncode, stdout, stderr)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _end(process)


def _timed_out(argv: Sequence[str], timeout: float) -> ExternalToolError:
    return ExternalToolError(
        f"{' '.join(argv[:3])} did not finish within {timeout:.0f} s",
        hint="check the network and the index URLs, or raise STACK_RESOLVER_TOOL_TIMEOUT",
    )


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()
