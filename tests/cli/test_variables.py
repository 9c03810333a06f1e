"""`STACK_RESOLVER_*` variables (resolver/variables.py): one list of every name the tool and its
harness read, kept whole by reading the sources; a name not on it is warned about on stderr, with
the names it most likely meant, and changes nothing else."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from resolver.variables import KNOWN, PREFIX, READ_BY_THE_HARNESS, READ_BY_THE_TOOL, likely_meant
from tests.fixtures.cli import run_cli, write_project
from tests.fixtures.isolation import offline_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"STACK_RESOLVER_[A-Z0-9_]*[A-Z0-9]")
CASES_FILE = ROOT / "tests" / "data" / "variables" / "misspelled.toml"
CASES = tomllib.loads(CASES_FILE.read_text(encoding="utf-8"))["case"]


def _names_in(*parts: str) -> set[str]:
    found: set[str] = set()
    for part in parts:
        paths = [ROOT / part] if (ROOT / part).is_file() else sorted((ROOT / part).rglob("*.py"))
        for path in paths:
            if path.name not in ("variables.py", "test_variables.py"):  # the list, and its misspellings
                found |= set(NAME.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_list_names_every_variable_the_sources_read_and_no_other() -> None:
    assert _names_in("resolver") == READ_BY_THE_TOOL
    assert _names_in("tests", "noxfile.py", "benchmarks") <= KNOWN
    assert _names_in("tests", "noxfile.py") >= READ_BY_THE_HARNESS


def test_the_docs_name_only_variables_on_the_list() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    docs = {m for page in pages for m in NAME.findall(page.read_text(encoding="utf-8"))}
    assert docs - KNOWN == {"STACK_RESOLVER_NVIDA_DRIVER"}  # docs/usage.md's example of the warning


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_misspelled_name_suggests_the_ones_it_likely_meant(case: dict[str, object]) -> None:
    meant: list[str] = case["meant"]  # type: ignore[assignment]
    assert likely_meant(PREFIX + str(case["name"])) == [PREFIX + m for m in meant]


def test_a_run_names_an_unknown_variable_and_is_otherwise_unchanged(tmp_path: Path) -> None:
    write_project(tmp_path, 'packages = ["torchvision"]\n')
    env = {**offline_env(tmp_path / "home"), "STACK_RESOLVER_CACHE_DIR": str(tmp_path / "cache")}
    args = ("resolve", "--dry-run", "--json", "--host", "h100.json")
    plain = run_cli(tmp_path, env, *args)
    typo = run_cli(tmp_path, {**env, "STACK_RESOLVER_NVIDA_DRIVER": "470.82.01"}, *args)
    assert typo.returncode == plain.returncode == 0
    assert typo.stdout == plain.stdout
    assert "warning: $STACK_RESOLVER_NVIDA_DRIVER is not a variable stack-resolver reads" in typo.stderr
    assert "did you mean $STACK_RESOLVER_NVIDIA_DRIVER or $STACK_RESOLVER_CUDA_DRIVER_API?" in typo.stderr
    assert "warning" not in plain.stderr
