"""`matrix show ... --json` prints the facts as objects with fields, for every subject
(table: tests/data/matrix_show/cases.toml); the text is the same data rendered."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.cli import main
from resolver.matrix.load import load_matrix
from resolver.matrix.show import KINDS, show, show_data

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data" / "matrix_show" / "cases.toml").read_text("utf-8"))
MATRIX = load_matrix()


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _show_json(kind: str, key: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    assert main(["matrix", "show", kind, key, "--json"], out, err) == 0, err.getvalue()
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def test_every_subject_has_a_case() -> None:
    assert {case["kind"] for case in CASES["case"]} == set(KINDS)


@pytest.mark.parametrize("case", CASES["case"], ids=lambda c: f"{c['kind']}-{c['key']}")
def test_show_json_is_structured(case: dict[str, Any]) -> None:
    data = _show_json(case["kind"], case["key"])
    assert data["kind"] == case["kind"] and data["key"] == case["key"]
    assert "lines" not in data
    for path, expected in case["expect"].items():
        assert _at(data, path) == expected, path
    for path in case.get("null", []):
        assert _at(data, path) is None, path
    # every source is cited by key, with its citation (or null)
    assert data["sources"] and all(set(s) == {"key", "cite"} for s in data["sources"])


@pytest.mark.parametrize("case", CASES["case"], ids=lambda c: f"{c['kind']}-{c['key']}")
def test_text_and_json_say_the_same(case: dict[str, Any]) -> None:
    data = show_data(MATRIX, case["kind"], case["key"])
    text = show(MATRIX, case["kind"], case["key"])
    for source in data["sources"]:
        assert f"[{source['key']}]" in text
    assert data.get("version", data.get("compute_capability")) in text.splitlines()[0]
