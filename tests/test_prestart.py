"""Prestarted Poetry (resolver/lock/runner.py `Prestarted`, resolver/lock/poetry_warm.py): the
job runs in the process started ahead of time, exactly as a cold run would run it, and a process
that is not used is ended.

The programs here are real processes: small Python console scripts (the shape pip writes for
Poetry) and, where Poetry is installed, real Poetry against the loopback index.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from resolver.lock.poetry import PoetryTool, _boot_argv, _script_interpreter, lock_in_staging, prestarted
from resolver.lock.runner import Completed, Prestarted, run_subprocess
from tests.fixtures.isolation import poetry_argv, poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

# What the fake console script reports: enough to tell which process ran it, and how.
REPORTER = """\
import json, os, sys
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid(), "stdin": sys.stdin.read(),
    "flag": os.environ.get("FLAG"),
}))
if len(sys.argv) > 1 and sys.argv[1] == "fail":
    sys.exit("it failed")
if len(sys.argv) > 1 and sys.argv[1] == "crash":
    raise RuntimeError("boom")
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def console_script(folder: Path, body: str = REPORTER, shebang: str | None = None) -> Path:
    script = folder / "tool"
    script.write_text(f"#!{shebang or sys.executable}\n{body}", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def start(script: Path, env: dict[str, str]) -> Prestarted:
    boot = _boot_argv((str(script),))
    assert boot is not None
    return Prestarted((str(script),), boot, env=env)


def report(done: Completed) -> dict[str, object]:
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_job_runs_in_the_waiting_process_as_a_cold_run_would(tmp_path: Path) -> None:
    script = console_script(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "FLAG": "set"}
    runner = start(script, env)
    waiting = runner.pid
    try:
        warm = runner([str(script), "lock", "3"], cwd=work, env=env, timeout=60)
    finally:
        runner.close()
    cold = run_subprocess([str(script), "lock", "3"], cwd=work, env=env, timeout=60)

    assert report(warm)["pid"] == waiting
    assert warm.returncode == cold.returncode == 3
    assert {k: v for k, v in report(warm).items() if k != "pid"} == {
        k: v for k, v in report(cold).items() if k != "pid"
    }
    assert report(warm) | {"pid": None} == {
        "argv": [str(script), "lock", "3"],
        "cwd": str(work),
        "pid": None,
        "stdin": "",
        "flag": "set",
    }


@pytest.mark.parametrize(
    ("args", "status", "in_stderr"),
    [(["fail"], 1, "it failed"), (["crash"], 1, "RuntimeError: boom"), (["ok", "0"], 0, "")],
)
def test_exit_status_and_errors_are_those_of_a_cold_run(
    tmp_path: Path, args: list[str], status: int, in_stderr: str
) -> None:
    script = console_script(tmp_path)
    runner = start(script, dict(os.environ))
    try:
        warm = runner([str(script), *args], cwd=tmp_path, env=dict(os.environ), timeout=60)
    finally:
        runner.close()
    cold = run_subprocess([str(script), *args], cwd=tmp_path, env=dict(os.environ), timeout=60)
    assert warm.returncode == cold.returncode == status
    assert in_stderr in warm.stderr and in_stderr in cold.stderr


def test_another_command_or_environment_runs_cold_and_the_waiting_process_is_ended(
    tmp_path: Path,
) -> None:
    script = console_script(tmp_path)
    env = dict(os.environ)
    runner = start(script, env)
    waiting = runner.pid
    # A different environment: the waiting process was started with the wrong one.
    done = runner([str(script), "x"], cwd=tmp_path, env={**env, "FLAG": "other"}, timeout=60)
    assert report(done)["flag"] == "other"
    assert report(done)["pid"] != waiting
    assert runner.pid is None  # ended, not left waiting
    # Used up: later calls run cold.
    again = runner([str(script), "y"], cwd=tmp_path, env=env, timeout=60)
    assert report(again)["pid"] != waiting


def test_close_ends_an_unused_process(tmp_path: Path) -> None:
    runner = start(console_script(tmp_path), dict(os.environ))
    waiting = runner.pid
    assert waiting is not None
    runner.close()
    assert runner.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(waiting, 0)  # reaped: no such process any more


@pytest.mark.parametrize(
    ("first_line", "usable"),
    [
        ("#!{python}", True),
        ("#!/usr/bin/env python3", False),  # which Python is decided at run time
        ("#!/bin/sh", False),  # pip's trampoline for long interpreter paths
        ("#!{python} -E", False),  # interpreter options a `-c` start would drop
        ("#!/nonexistent/bin/python3", False),
        ("import sys", False),
        ("", False),
    ],
)
def test_only_a_plain_python_console_script_is_prestarted(
    tmp_path: Path, first_line: str, usable: bool
) -> None:
    script = tmp_path / "poetry"
    script.write_text(first_line.format(python=sys.executable) + "\nprint('hi')\n", encoding="utf-8")
    assert (_script_interpreter(script) == sys.executable) is usable
    assert (_boot_argv((str(script),)) is not None) is usable


def test_a_missing_script_or_a_replaced_runner_is_not_prestarted(tmp_path: Path) -> None:
    assert _script_interpreter(tmp_path / "absent") is None

    def fake(argv: object, *, cwd: Path, env: object, timeout: float) -> Completed:
        return Completed(("poetry",), 0, "", "")

    tool = PoetryTool(argv=(str(console_script(tmp_path)),), runner=fake)
    with prestarted(tool) as same:
        assert same is tool


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
def test_prestarted_poetry_writes_the_lock_a_cold_poetry_writes(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    pyproject = (
        '[project]\nname = "p"\nversion = "0"\nrequires-python = ">=3.11,<3.12"\n'
        'dependencies = ["torch==2.7.1+cpu", "transformers"]\n\n'
        "[tool.poetry]\npackage-mode = false\n\n"
        '[tool.poetry.dependencies]\ntorch = {source = "pytorch-cpu"}\n\n'
        f'[[tool.poetry.source]]\nname = "pytorch-cpu"\nurl = "{fixture_index.variant_url("cpu")}"\n'
        'priority = "explicit"\n\n'
        f'[[tool.poetry.source]]\nname = "general"\nurl = "{fixture_index.url()}"\npriority = "primary"\n'
    )
    locks = []
    for mode in ("cold", "warm"):
        home = tmp_path / mode
        tool = PoetryTool(argv=tuple(poetry_argv()), environ=poetry_env(home))
        if mode == "cold":
            locks.append(lock_in_staging(pyproject, None, tool))
            continue
        with prestarted(tool) as warm:
            assert isinstance(warm.runner, Prestarted) and warm.runner.pid is not None
            locks.append(lock_in_staging(pyproject, None, warm))
            assert warm.runner.pid is None  # the job went to the waiting process
        shutil.rmtree(home)
    assert locks[0] == locks[1]
    assert b'name = "torch"\nversion = "2.7.1+cpu"' in locks[0]
