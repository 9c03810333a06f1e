"""The malformed-matrix corpus: each case under tests/data/matrix_bad/ must produce exactly its errors.

A case directory holds matrix files that replace the same-named files of tests/data/matrix_min/
(an `overlay/` subdirectory is passed as an overlay instead) and `expected.txt`: the rendered
problems, one per line, with `{dir}` / `{overlay}` standing for the directories.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from resolver.errors import MatrixError
from resolver.matrix.load import load_matrix, validate_matrix

DATA = Path(__file__).parents[1] / "data"
MINIMAL = DATA / "matrix_min"
CASES = sorted(p for p in (DATA / "matrix_bad").iterdir() if p.is_dir())


def _lay_out(case: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    base = tmp_path / "matrix"
    shutil.copytree(MINIMAL, base)
    for file in case.glob("*.toml"):
        shutil.copy(file, base / file.name)
    overlays = []
    if (case / "overlay").is_dir():
        overlay = tmp_path / "overlay"
        shutil.copytree(case / "overlay", overlay)
        overlays.append(overlay)
    return base, overlays


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


def test_minimal_matrix_is_valid() -> None:
    assert validate_matrix(MINIMAL) == []


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_malformed_matrix(case: Path, tmp_path: Path) -> None:
    base, overlays = _lay_out(case, tmp_path)
    rendered = []
    for problem in validate_matrix(base, overlays):
        text = problem.render()
        for overlay in overlays:
            text = text.replace(str(overlay), "{overlay}")
        rendered.append(text.replace(str(base), "{dir}"))
    expected = (case / "expected.txt").read_text().splitlines()
    assert rendered == expected
    with pytest.raises(MatrixError) as caught:
        load_matrix(base, overlays)
    assert len(caught.value.problems) == len(expected)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_every_problem_names_file_and_message(case: Path, tmp_path: Path) -> None:
    base, overlays = _lay_out(case, tmp_path)
    for problem in validate_matrix(base, overlays):
        assert problem.location.file.endswith(".toml")
        assert problem.message
