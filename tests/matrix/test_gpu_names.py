"""GPU product names accepted wherever a compute capability is (table: tests/data/gpu_names/)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from resolver.cli import main
from resolver.errors import ExitCode, InputError
from resolver.matrix.load import load_matrix
from resolver.matrix.products import product_capability

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data" / "gpu_names" / "cases.toml").read_text("utf-8"))
MATRIX = load_matrix()


@pytest.mark.parametrize(("name", "cc"), CASES["names"], ids=[n for n, _ in CASES["names"]])
def test_a_product_name_gives_its_compute_capability(name: str, cc: str) -> None:
    found = product_capability(MATRIX, name)
    assert found is not None and str(found) == cc


@pytest.mark.parametrize("name", CASES["ambiguous"])
def test_an_ambiguous_name_is_bad_input_naming_the_candidates(name: str) -> None:
    with pytest.raises(InputError, match="more than one GPU"):
        product_capability(MATRIX, name)


@pytest.mark.parametrize("name", CASES["unknown"])
def test_matrix_show_gpu_rejects_an_unknown_name(name: str) -> None:
    assert product_capability(MATRIX, name) is None
    out, err = io.StringIO(), io.StringIO()
    assert main(["matrix", "show", "gpu", name], out, err) == ExitCode.BAD_INPUT
    assert name in err.getvalue()


def test_matrix_show_gpu_takes_a_product_name() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["matrix", "show", "gpu", "RTX 4090"], out, err) == 0, err.getvalue()
    assert out.getvalue().startswith("compute capability 8.9 (sm_89)")
