"""Runs inside Poetry's own interpreter (`python -c <this file> script|module <target>`), started
by `resolver.lock.poetry.prestarted` before the tool knows what to lock.

It imports Poetry and fills Poetry's pure caches (its compiled pyproject schema, its PEP 508
grammar), then waits for one JSON line on stdin: `{"cwd": ..., "args": [...]}`, and runs Poetry
exactly as its console script would, in that folder with those arguments. The waiting overlaps
Poetry's start-up with the tool's own work. End of input before a job means the job was given
to an ordinary run instead: exit at once.

This file must run under any Python that Poetry runs under, with nothing but Poetry installed,
so it imports nothing from `resolver`. A warm-up that fails (another Poetry version) is skipped:
it only costs the speed it would have saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import traceback

# The modules a `poetry lock` loads anyway, the heaviest first.
POETRY_MODULES = (
    "poetry.console.application",
    "poetry.console.commands.lock",
    "poetry.plugins.plugin_manager",
    "poetry.installation",
    "poetry.factory",
    "poetry.packages.locker",
    "poetry.puzzle.solver",
    "poetry.mixology",
    "poetry.repositories.legacy_repository",
    "poetry.utils.env",
)


def warm_up() -> None:
    for name in POETRY_MODULES:
        with contextlib.suppress(Exception):
            __import__(name)
    with contextlib.suppress(Exception):
        from poetry.core.packages.dependency import Dependency

        Dependency.create_from_pep_508('warm (>=1) ; python_version >= "3" and sys_platform == "linux"')
    with contextlib.suppress(Exception):
        from poetry.factory import Factory

        Factory.validate({"project": {"name": "warm"}}, strict=False)


def main(mode: str, target: str) -> int:
    # `python -c` puts the current folder first on sys.path; the console script would put its
    # own folder there, and `python -m` the folder Poetry runs in (the staging copy: no modules).
    sys.path[0] = os.path.dirname(target) if mode == "script" else os.path.dirname(sys.executable)
    warm_up()
    line = sys.stdin.readline()
    if not line:
        return 0
    job = json.loads(line)
    # Poetry sees what an ordinary run gives it: no input, its folder, its arguments.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - stays open for Poetry's whole run
    os.chdir(job["cwd"])
    sys.argv = [target, *job["args"]]
    try:
        if mode == "script":
            runpy.run_path(target, run_name="__main__")
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return _exit_status(done.code)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    status = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    # Poetry's files are written and closed by now; skipping the interpreter's teardown (it
    # frees every object Poetry made) saves a tenth of a second, as mypy does with its hard exit.
    os._exit(status)
