"""Team configuration and where index URLs come from (table-driven: tests/data/config/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.config import effective_indexes, team_from_mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parent / "data" / "config" / "index_precedence.toml").read_text())[
    "case"
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_index_precedence(case: dict[str, Any], tmp_path: Path) -> None:
    indexes: dict[str, str] = {}
    if "team_general" in case:
        indexes["general"] = case["team_general"]
    if "team_pytorch" in case:
        indexes["pytorch"] = case["team_pytorch"]
    team = team_from_mapping({"indexes": indexes}, "team.toml", tmp_path)
    pip_files = []
    if "pip_conf" in case:
        pip_conf = tmp_path / "pip.conf"
        pip_conf.write_text(case["pip_conf"])
        pip_files.append(pip_conf)
    result = effective_indexes(team, case["environ"], pip_files)
    if "expect_general" in case:
        assert (result.general or "") == case["expect_general"]
    if "expect_pytorch_cu126" in case:
        assert result.variant_url("cu126") == case["expect_pytorch_cu126"]
