"""Table-driven solver cases: each tests/cases/*.toml holds a host, a request and what to expect.

Expected values are written by hand from the sources (not derived from the matrix), so a wrong
matrix row or a solver bug both fail here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.errors import NoCompatibleCombination
from resolver.explain.render import failure_json, resolution_json
from resolver.host.hostfile import host_from_mapping
from resolver.matrix.load import load_matrix
from resolver.solve.request import Request, merge_constraints
from resolver.solve.search import solve
from resolver.sources import Indexes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = sorted((Path(__file__).parents[1] / "cases").glob("*.toml"))


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load_matrix()


def request_from(data: dict[str, Any]) -> Request:
    return Request(
        constraints=merge_constraints(data.get("constraints", [])),
        variant=data.get("variant"),
        python=data.get("python"),
        allow_ptx=data.get("allow_ptx", False),
        allow_unverified=data.get("allow_unverified", False),
        allow_cpu_fallback=data.get("allow_cpu_fallback", False),
        packages=tuple(data.get("packages", ())),
        prefer=tuple(data.get("prefer", ("torch", "variant", "transformers"))),
    )


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, matrix: Any) -> None:
    data = tomllib.loads(case.read_text())
    host = host_from_mapping(data["host"], str(case))
    request = request_from(data.get("request", {}))
    expect = data["expect"]
    if "error_contains" in expect:
        with pytest.raises(NoCompatibleCombination) as caught:
            solve(host, matrix, request)
        payload = failure_json(caught.value)
        assert expect["error_contains"] in payload["error"], payload
        for text in expect.get("causes_contain", []):
            assert any(text in line for line in payload["causes"]), (text, payload["causes"])
        return
    resolution = solve(host, matrix, request)
    payload = resolution_json(
        resolution, Indexes().variant_url(resolution.variant) if resolution.local_label else None
    )
    for key in ("torch", "variant", "torchvision", "torchaudio", "transformers", "python"):
        if key in expect:
            assert payload[key] == expect[key], (key, payload)
    for key in expect.get("null", []):
        assert payload[key] is None, (key, payload)
    if "index_url" in expect:
        assert payload["index_url"] == expect["index_url"]
    if "index_url_suffix" in expect:
        assert payload["index_url"].endswith(expect["index_url_suffix"])
    reasons = [reason for r in payload["rejected"] for reason in r["reasons"]]
    for text in expect.get("rejected_contains", []):
        assert any(text in reason for reason in reasons), (text, reasons[:20])
    for text in expect.get("warnings_contain", []):
        assert any(text in w for w in payload["warnings"]), (text, payload["warnings"])
    if "unverified_gpus" in expect:
        assert payload["unverified_gpus"] == expect["unverified_gpus"], payload["unverified_gpus"]
