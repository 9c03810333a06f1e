"""Wheel tags in matrix terms: one fit rule for refresh, index checks and the lock.

Cases: tests/data/wheeltags/fit.toml.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from resolver.host.model import Host
from resolver.matrix.wheeltags import host_floor, tag_platforms, wheel_fits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CASES: list[dict[str, Any]] = tomllib.loads(
    (Path(__file__).parents[1] / "data" / "wheeltags" / "fit.toml").read_text(encoding="utf-8")
)["case"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['wheel']}@{c['platform']}:{c.get('floor')}")
def test_wheel_fits(case: dict[str, Any]) -> None:
    version = case["wheel"].split("-")[1]
    floor = Version(case["floor"]) if "floor" in case else None
    assert wheel_fits(case["wheel"], version, case["python"], case["platform"], floor) is case["fits"]


def test_universal2_serves_both_mac_arches() -> None:
    assert [p for p, _ in tag_platforms("macosx_10_9_universal2")] == ["macos-arm64", "macos-x86_64"]


@pytest.mark.parametrize(
    ("host", "floor"),
    [
        (Host("linux", "x86_64", libc="glibc", libc_version="2.35"), Version("2.35")),
        (Host("linux", "x86_64", libc="musl", libc_version="1.2.4"), None),
        (Host("macos", "arm64", os_version="13.6"), Version("13.6")),
        (Host("windows", "x86_64", os_version="10.0.19045"), None),
        (Host("linux", "x86_64"), None),
    ],
)
def test_host_floor(host: Host, floor: Version | None) -> None:
    assert host_floor(host) == floor
