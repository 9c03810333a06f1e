"""Team configuration and where index URLs come from (table-driven: tests/data/config/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.config import team_from_mapping
from resolver.dirs import user_cache_root
from resolver.sources import Indexes, effective_indexes
from resolver.userconfig import certificate_environment, pip_config_files, uv_config_files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data" / "config" / "index_precedence.toml").read_text())[
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
    uv_files = []
    if "uv_toml" in case:
        uv_toml = tmp_path / "uv.toml"
        uv_toml.write_text(case["uv_toml"])
        uv_files.append(uv_toml)
    result = effective_indexes(team, case["environ"], pip_files, uv_files)
    if "expect_general" in case:
        assert (result.general or "") == case["expect_general"]
    if "expect_pytorch_cu126" in case:
        assert result.variant_url("cu126") == case["expect_pytorch_cu126"]
    if "expect_extra" in case:
        assert list(result.extra) == case["expect_extra"]
    if "expect_find_links" in case:
        assert list(result.find_links) == case["expect_find_links"]
    if "expect_cert" in case:
        assert result.cert == case["expect_cert"]
    for what, origin in case.get("expect_origin", {}).items():
        found = result.origin(what) or ""
        assert found.replace(str(tmp_path), "{tmp}") == origin


PLATFORM_CASES = tomllib.loads(
    (Path(__file__).parents[1] / "data" / "config" / "platform_paths.toml").read_text(encoding="utf-8")
)["case"]


@pytest.mark.parametrize("case", PLATFORM_CASES, ids=[c["name"] for c in PLATFORM_CASES])
def test_config_and_cache_paths_per_os(case: dict[str, Any]) -> None:
    def expand(paths: list[str]) -> list[str]:
        return [Path(p.replace("{prefix}", "/venv").replace("{project}", "/proj")).as_posix() for p in paths]

    environ, platform = case["environ"], case["platform"]
    if "pip" in case:
        found = pip_config_files(environ, platform, prefix="/venv")
        assert [p.as_posix() for p in found] == expand(case["pip"])
    if "uv" in case:
        assert [p.as_posix() for p in uv_config_files(environ, Path("/proj"), platform)] == expand(case["uv"])
    if "cache" in case:
        assert user_cache_root(environ, platform).as_posix() == case["cache"]


def test_pip_config_file_that_exists_hides_the_user_files(tmp_path: Path) -> None:
    named = tmp_path / "ci-pip.conf"
    named.write_text("[global]\nindex-url = https://ci.example.org/simple\n")
    files = pip_config_files({"HOME": "/home/ana", "PIP_CONFIG_FILE": str(named)}, "linux", prefix="/venv")
    assert Path("/home/ana/.config/pip/pip.conf") not in files
    result = effective_indexes(
        team_from_mapping({}, "team.toml", tmp_path), {"PIP_CONFIG_FILE": str(named)}, files, []
    )
    assert result.general == "https://ci.example.org/simple"


def test_pips_cert_reaches_requests_and_poetry_unless_the_user_set_one(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\ncert = /etc/ssl/team-ca.pem\n")
    assert certificate_environment({}, [conf]) == {"REQUESTS_CA_BUNDLE": "/etc/ssl/team-ca.pem"}
    assert certificate_environment({"REQUESTS_CA_BUNDLE": "/mine.pem"}, [conf]) == {}
    assert certificate_environment({"PIP_CONFIG_FILE": os.devnull}, [conf]) == {}


def test_extra_indexes_become_supplemental_poetry_sources(tmp_path: Path) -> None:
    from resolver.host.hostfile import host_from_mapping
    from resolver.lock.poetry.pyproject import render_pyproject
    from resolver.lock.target import environment_spec
    from resolver.matrix.load import load_matrix
    from resolver.solve.search import Request, solve
    from tests.fixtures.cli import HOSTS

    resolution = solve(host_from_mapping(HOSTS["cpu"]), load_matrix(), Request())

    def rendered(indexes: Indexes, existing: str | None = None) -> str:
        return render_pyproject(existing, environment_spec("t", resolution, (), indexes, (), frozenset()))

    two = rendered(
        Indexes(
            general="https://g.example.org/simple",
            extra=("https://a.example.org/s", "https://b.example.org/s"),
        )
    )
    sources = tomllib.loads(two)["tool"]["poetry"]["source"]
    assert [(s["name"], s["priority"]) for s in sources][-2:] == [
        ("extra-1", "supplemental"),
        ("extra-2", "supplemental"),
    ]
    # a local file:// index (pip reads it; Poetry cannot) is not a Poetry source
    local = rendered(Indexes(general="https://g.example.org/simple", extra=("file:///srv/simple",)))
    assert "file:///srv/simple" not in local
    # an extra index the configuration no longer names is removed from the file the tool wrote
    one = rendered(Indexes(general="https://g.example.org/simple", extra=("https://a.example.org/s",)), two)
    assert [s["name"] for s in tomllib.loads(one)["tool"]["poetry"]["source"]][-1] == "extra-1"
    assert "https://b.example.org/s" not in one
