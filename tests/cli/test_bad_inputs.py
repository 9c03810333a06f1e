"""Malformed input gives one paragraph on stderr and exit status 2, never a traceback (README,
"Guarantees" 7).

Each directory under tests/data/bad_inputs/ is one case:
- `args.txt`: the command line after `stack-resolver`, shell-split, run in (a copy of) the case
  directory, so paths in it are relative to the case. Lines `# must name: TEXT` list what the
  message must contain (the file, `file:line`, the `[key]`, the flag, the bad value); lines
  `# env: NAME=VALUE` set a variable for the run;
- the input files the command reads (host JSON, team.toml, a matrix directory, ...);
- `expected.txt`: the exact stderr, with the case directory written as `{case}`.

"One paragraph" means: stderr is one line `error: ... Hint: ...`, except for a malformed matrix,
where it is one line per problem (`error: ` before the first), each naming its file.

Snapshots are reviewed and committed; `STACK_RESOLVER_UPDATE_SNAPSHOTS=1 pytest
tests/cli/test_bad_inputs.py` rewrites them from the current output (then review the diff).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (Path(__file__).parents[1] / "data" / "bad_inputs").iterdir() if p.is_dir())
UPDATE = os.environ.get("STACK_RESOLVER_UPDATE_SNAPSHOTS") == "1"
NAME_PREFIX = "# must name:"
SECRET_PREFIX = "# must not name:"  # a secret the input carries, which no message may repeat
ENV_PREFIX = "# env:"
# argparse quotes the choices of an invalid choice differently across Python versions
# ("choose from 'a', 'b'" up to 3.12.7, "choose from a, b" after): compare them unquoted.
_CHOICES = re.compile(r"\(choose from ([^)]*)\)")


def _stable(text: str) -> str:
    return _CHOICES.sub(lambda m: "(choose from " + m.group(1).replace("'", "") + ")", text)


def _environment(home: Path) -> dict[str, str]:
    """This interpreter's environment without anything that configures the tool or pip."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STACK_RESOLVER_", "PIP_", "PYTHON", "COLUMNS"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        PIP_CONFIG_FILE=os.devnull,
        STACK_RESOLVER_CACHE_DIR=str(home / "cache"),
        STACK_RESOLVER_NO_GPU="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def _run(case: Path, tmp_path: Path) -> tuple[int, str, list[str]]:
    """(exit code, stderr, what it must name)."""
    workdir = tmp_path / "case"
    shutil.copytree(case, workdir, ignore=shutil.ignore_patterns("expected.txt"))
    lines = (case / "args.txt").read_text(encoding="utf-8").splitlines()
    names = [line[len(NAME_PREFIX) :].strip() for line in lines if line.startswith(NAME_PREFIX)]
    argv = shlex.split("\n".join(line for line in lines if not line.startswith("#")))
    home = tmp_path / "home"
    home.mkdir()
    env = _environment(home)
    for line in lines:
        if line.startswith(ENV_PREFIX):
            name, _, value = line[len(ENV_PREFIX) :].strip().partition("=")
            env[name] = value
    result = run_cli(workdir, env, *argv, timeout=120)
    stderr = result.stderr.replace(str(workdir.resolve()), "{case}").replace(str(workdir), "{case}")
    return result.returncode, stderr, names


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    for case in CASES:
        assert (case / "args.txt").is_file(), case.name
        assert UPDATE or (case / "expected.txt").is_file(), f"{case.name}: no snapshot"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_bad_input(case: Path, tmp_path: Path) -> None:
    code, stderr, names = _run(case, tmp_path)
    expected_file = case / "expected.txt"
    if UPDATE:
        expected_file.write_text(stderr, encoding="utf-8")
    assert "Traceback" not in stderr, stderr
    assert code == 2, (code, stderr)
    assert _stable(stderr) == _stable(expected_file.read_text(encoding="utf-8"))
    # `project: ROOT (envs/team.toml here)` names the project in use: information, not the error
    lines = [line for line in stderr.splitlines() if not line.startswith("project: ")]
    assert stderr.endswith("\n") and lines and lines[0].startswith("error: "), stderr
    if len(lines) > 1:
        # Only a malformed matrix reports several problems: one line each, each naming its file.
        assert all(re.match(r"^(error: )?\S+\.toml(:\d+)? ", line) for line in lines), stderr
    assert "Hint: " in stderr, stderr
    assert names, f"{case.name}: args.txt lists nothing the message must name"
    for name in names:
        assert name in stderr, (name, stderr)
    lines = (case / "args.txt").read_text(encoding="utf-8").splitlines()
    for secret in (line[len(SECRET_PREFIX) :].strip() for line in lines if line.startswith(SECRET_PREFIX)):
        assert secret not in stderr, (secret, stderr)
