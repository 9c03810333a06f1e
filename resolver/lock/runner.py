"""The one subprocess wrapper every external tool goes through, so tests can replace it.

Each child runs in a process group of its own, so an interrupted run (SIGINT, SIGTERM, SIGHUP)
terminates the whole group (Poetry and anything it started), not just the first process.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from resolver.errors import ExternalToolError, InputError, Location

_GRACE_S = 5.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


# Each line a child prints (stdout or stderr), as it prints it: for a progress status.
OnLine = Callable[[str], None]


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_line: OnLine | None = None,
    ) -> Completed: ...


class _Children:
    """The process groups this process started and has not reaped: what an interrupt ends."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._live: set[subprocess.Popen[str]] = set()
        self._closed = False

    def add(self, proc: subprocess.Popen[str]) -> None:
        """Track `proc`; once the run is stopping, end it at once instead (a worker thread must
        not start Poetry after the interrupt ended the others)."""
        with self._guard:
            if not self._closed:
                self._live.add(proc)
                return
        _end_group(proc)
        raise ExternalToolError(f"{proc.args!r} not run: the run was interrupted")

    def discard(self, proc: subprocess.Popen[str]) -> None:
        with self._guard:
            self._live.discard(proc)

    def terminate_all(self) -> None:
        """End every child's process group; no new child starts after this."""
        with self._guard:
            self._closed = True
            live = list(self._live)
        for proc in live:
            _end_group(proc)


CHILDREN = _Children()


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after a grace period."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a grandchild may outlive the leader
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_subprocess(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: OnLine | None = None,
) -> Completed:
    """Run a program and capture its output; a missing program or a timeout is an ExternalToolError.
    `STACK_RESOLVER_TOOL_TIMEOUT` (seconds, in `env`) replaces the caller's `timeout`. With
    `on_line`, each line is also handed over as the program prints it (captured all the same)."""
    timeout = tool_timeout(env, timeout)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ExternalToolError(
            f"cannot run {argv[0]}: program not found", hint="install it, or run through `nox -s resolve`"
        ) from None
    CHILDREN.add(proc)  # raises (the child ended) when the run is being interrupted
    try:
        if on_line is None:
            stdout, stderr = proc.communicate(timeout=timeout)
        else:
            stdout, stderr = _read_lines(proc, timeout, on_line)
    except subprocess.TimeoutExpired:
        _end_group(proc)
        if on_line is None:
            proc.communicate()
        raise _timed_out(argv, timeout) from None
    except BaseException:
        _end_group(proc)
        if on_line is None:
            with contextlib.suppress(Exception):
                proc.communicate(timeout=_GRACE_S)
        raise
    finally:
        CHILDREN.discard(proc)
    return Completed(tuple(argv), proc.returncode, stdout, stderr)


def _read_lines(proc: subprocess.Popen[str], timeout: float, on_line: OnLine) -> tuple[str, str]:
    """(stdout, stderr), read line by line as the child writes them: a thread per pipe, so a full
    pipe never stalls the child while the other is read. On a timeout or an interrupt the child's
    group is ended (the pipes then close) before the exception goes on."""
    captured: tuple[list[str], list[str]] = ([], [])

    def pump(pipe: Any, into: list[str]) -> None:
        for line in pipe:
            into.append(line)
            with contextlib.suppress(Exception):  # a status display never fails the run
                on_line(line.rstrip("\r\n"))

    readers = [
        threading.Thread(target=pump, args=(pipe, into), daemon=True)
        for pipe, into in zip((proc.stdout, proc.stderr), captured, strict=True)
    ]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except BaseException:
        _end_group(proc)
        for reader in readers:
            reader.join(timeout=_GRACE_S)
        raise
    for reader in readers:
        reader.join()
    return "".join(captured[0]), "".join(captured[1])


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
        hint=f"check the network and the index URLs, or raise {TOOL_TIMEOUT} (seconds)",
    )
