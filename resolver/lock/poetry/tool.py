"""Run real Poetry to lock a generated environment.

Poetry works in a staging folder (a copy of the pyproject.toml and the previous lock), so a
failed or interrupted lock never touches the environment's files; the caller commits the result.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from resolver.errors import ExternalToolError
from resolver.lock.runner import Runner, run_subprocess

PYPROJECT = "pyproject.toml"
LOCKFILE = "poetry.lock"


def default_poetry_argv(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Where Poetry is: `STACK_RESOLVER_POETRY` (a path; nox installs the pinned Poetry in a venv
    of its own, because its dependencies clash with conda-lock's), else Poetry installed beside
    the tool, else the pinned Poetry the tool installed in its cache, else `poetry` on PATH, else
    the pinned Poetry installed into the cache now (once, saying so)."""
    from resolver.lock.poetry.provision import ensure_poetry, installed_poetry

    configured = environ.get("STACK_RESOLVER_POETRY")
    if configured:
        return (configured,)
    if importlib.util.find_spec("poetry") is not None and importlib.util.find_spec("poetry.console"):
        return (sys.executable, "-m", "poetry")
    provisioned = installed_poetry(environ)
    if provisioned is not None:
        return (str(provisioned),)
    found = shutil.which("poetry", path=environ.get("PATH"))
    if found is not None:
        return (found,)
    return (str(ensure_poetry(environ)),)


@dataclass(frozen=True)
class PoetryTool:
    """How to run Poetry (see `default_poetry_argv`)."""

    argv: tuple[str, ...] = ()
    runner: Runner = run_subprocess
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timeout: float = 900.0

    @property
    def command(self) -> tuple[str, ...]:
        return self.argv or default_poetry_argv(self.environ)

    def process_env(self) -> dict[str, str]:
        """The environment Poetry runs in."""
        env = dict(self.environ)
        # Never prompt, never create a venv just to lock, and keep output free of colour codes.
        env.setdefault("POETRY_VIRTUALENVS_CREATE", "false")
        env["NO_COLOR"] = "1"
        env["PYTHONUNBUFFERED"] = "1"  # each line as Poetry writes it: the progress status shows it
        # A proxy must never stand between Poetry and a loopback index (resolver/lock/poetry/mirror.py).
        for name in ("no_proxy", "NO_PROXY"):
            hosts = [part for part in env.get(name, "").split(",") if part.strip()]
            if "127.0.0.1" not in hosts:
                env[name] = ",".join([*hosts, "127.0.0.1"])
        return env

    def run(self, args: list[str], cwd: Path) -> str:
        from resolver import progress

        argv = [*self.command, *args, "--no-interaction", "--no-ansi"]
        progress.say(f"running {' '.join(argv)} in {cwd}", progress.DEBUG)
        with progress.step(f"poetry {' '.join(args)}") as step:
            shown = OperationCount(step.status)
            completed = self.runner(
                argv, cwd=cwd, env=self.process_env(), timeout=self.timeout, on_line=shown
            )
        if completed.returncode != 0:
            detail = (completed.stderr.strip() or completed.stdout.strip()).splitlines()
            tail = "\n".join(detail[-15:])
            raise ExternalToolError(
                f"`poetry {' '.join(args)}` failed (exit {completed.returncode}) in {cwd}:\n{tail}",
                hint=_hint_for(tail),
            )
        return completed.stdout

    def version(self) -> str:
        command = self.command
        if command == (sys.executable, "-m", "poetry"):
            # Same interpreter: read the installed version instead of starting Poetry (~1 s).
            from importlib import metadata

            try:
                return metadata.version("poetry")
            except metadata.PackageNotFoundError:
                pass
        # A Poetry in a venv of its own: its dist-info sits beside the executable's venv.
        venv = Path(command[0]).resolve().parent.parent
        for info in sorted(venv.glob("lib/python*/site-packages/poetry-*.dist-info")):
            name = info.name.removesuffix(".dist-info")
            return name.split("-", 1)[1]
        with tempfile.TemporaryDirectory(prefix="stack-resolver-") as scratch:
            out = self.run(["--version"], Path(scratch))
        # "Poetry (version 2.5.1)"
        return out.strip().rsplit(" ", 1)[-1].rstrip(")") or out.strip()


_OPERATIONS = re.compile(r"Package operations: (\d+) installs?, (\d+) updates?")
_OPERATION = re.compile(r"^\s*- (Installing|Updating|Downgrading|Downloading) (\S+) \(([^)]*)\)")


class OperationCount:
    """Poetry's output as a progress status: each line as it is, except an install's operations,
    counted ("installing 3/17 packages: torch (2.7.1+cu126)") from its "Package operations: 17
    installs, 0 updates" line on. Poetry shows no sizes, so the count is of packages."""

    def __init__(self, status: Callable[[str], None]) -> None:
        self.status = status
        self.total = 0
        self.seen: set[str] = set()

    def __call__(self, line: str) -> None:
        if (counted := _OPERATIONS.search(line)) is not None:
            self.total = int(counted.group(1)) + int(counted.group(2))
        elif self.total and (operation := _OPERATION.match(line)) is not None:
            verb, name, version = operation.groups()
            self.seen.add(name)  # "Downloading x" then "Installing x" is one package
            self.status(
                f"{verb.lower()} {min(len(self.seen), self.total)}/{self.total} packages: {name} ({version})"
            )
            return
        self.status(line)


def _hint_for(output: str) -> str:
    lowered = output.lower()
    if "connection" in lowered or "max retries" in lowered or "timed out" in lowered:
        return (
            "an index is unreachable: check the URLs above, your network, "
            "or configure a mirror ([indexes] in envs/team.toml)"
        )
    if "solving" in lowered or "version solving failed" in lowered:
        return "the index lacks a build the resolution needs; run with --explain, or pin another version"
    return "the previous files were left as they were; fix the problem above and run again"


def lock_in_staging(pyproject_text: str, previous_lock: bytes | None, tool: PoetryTool) -> bytes:
    """Lock `pyproject_text` with Poetry in a scratch folder and return the new poetry.lock bytes.
    The folder is in the system's temporary directory, never in envs/, and is removed however the
    run ends. No `poetry check --lock` follows: Poetry just wrote this lock for exactly this
    pyproject, so that check (a second Poetry start, about a second) could only repeat its work;
    the caller checks what Poetry cannot know (sources, and sha256 against the index)."""
    staging = Path(tempfile.mkdtemp(prefix="stack-resolver-staging-"))
    try:
        (staging / PYPROJECT).write_text(pyproject_text, encoding="utf-8")
        if previous_lock is not None:
            (staging / LOCKFILE).write_bytes(previous_lock)
        tool.run(["lock"], staging)
        return (staging / LOCKFILE).read_bytes()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
