"""What keeps a dry run's start-up short (issue 21; benchmarks/startup.py times it): the modules
it must not load, and the shortcuts it takes meaning the same as the long way."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from resolver.arguments import BUILDERS
from resolver.cli import build_parser
from resolver.commands import COMMANDS
from resolver.config import _bare_name
from tests.fixtures.cli import write_project
from tests.fixtures.isolation import offline_env

# Loaded only by runs that reach an index, write envs/ or parse a full requirement.
NOT_ON_A_DRY_RUN = (
    "requests",
    "urllib3",
    "tomlkit",
    "filelock",
    "packaging.requirements",
    "packaging.markers",
    "packaging.tags",
    "resolver.index.client",
    "resolver.host.parse",
    "resolver.host.vendors",
    "resolver.lock.target",
    "difflib",  # suggestions for a misspelled name or key only
)

_CHILD = """
import io, json, sys
from resolver.cli import main
out = io.StringIO()
code = main(["resolve", "--dry-run", "--json", "--host", "h100.json"], out=out, err=io.StringIO())
print(json.dumps({"code": code, "out": json.loads(out.getvalue()), "modules": sorted(sys.modules)}))
"""


def test_a_dry_run_loads_no_http_stack_no_lock_writer_and_no_requirement_parser(tmp_path: Path) -> None:
    write_project(tmp_path, 'packages = ["torchvision", "accelerate"]\n')
    env = {**offline_env(tmp_path / "home"), "STACK_RESOLVER_CACHE_DIR": str(tmp_path / "cache")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    for _ in range(2):  # the second run reads the matrix cache, as a user's later runs do
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        child = json.loads(proc.stdout)
        assert child["code"] == 0 and child["out"]["torch"]
        assert [m for m in NOT_ON_A_DRY_RUN if m in child["modules"]] == []


@pytest.mark.parametrize(
    "text", ["torchvision", "Foo_Bar.baz", "a", "A__B--c", "x-", "-x", "x y", "föo", "torch>=2", "a[b]", ""]
)
def test_a_bare_name_is_read_as_the_requirement_parser_reads_it(text: str) -> None:
    try:
        requirement = Requirement(text)
    except Exception:
        assert _bare_name(text) is None
        return
    bare = requirement.name == text and not (requirement.specifier or requirement.extras)
    assert _bare_name(text) == (canonicalize_name(text) if bare else None)


def test_every_command_of_the_parser_has_a_builder_and_a_handler_and_no_other() -> None:
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(commands.choices) == list(BUILDERS)  # --help lists them in the table's order
    assert set(BUILDERS) == set(COMMANDS)


@pytest.mark.parametrize(
    "argv",
    [
        ["resolve", "--dry-run", "--json", "--host", "h.json", "-q"],
        ["-v", "--project", "p", "lock", "--jobs", "3", "--dry-run"],
        ["matrix", "show", "gpu", "RTX 4090", "--json"],
        ["export", "--format", "pylock", "-o", "-"],
    ],
)
def test_a_parser_for_one_command_parses_it_as_the_whole_parser_does(argv: list[str]) -> None:
    (command,) = {word for word in argv if word in COMMANDS}
    assert build_parser(command).parse_args(argv) == build_parser().parse_args(argv)
