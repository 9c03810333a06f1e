"""Wheel tags in matrix terms: which platform a tag serves, with which floor, and whether a wheel
fits a target (its Python, its platform, and the target's glibc or macOS version).

One rule for the whole package: `matrix refresh` reads floors from tags with it, and the index
checks (`index/availability.py`) and the lock's wheel selection decide fit with it. Tags come from
`packaging.utils.parse_wheel_filename`; this module only maps a platform tag to a matrix platform
and its floor (PEP 600 manylinux_X_Y and its legacy aliases, macosx_X_Y_arch).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from resolver.host.model import Host

if TYPE_CHECKING:
    from packaging.tags import Tag

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(x86_64|aarch64)$")
# PEP 600's aliases for the legacy manylinux tags.
_MANYLINUX_LEGACY = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}
_LEGACY = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(x86_64|aarch64)$")
_LINUX = re.compile(r"^linux_(x86_64|aarch64)$")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(\w+)$")
_MACOS_ARCHES = {
    "arm64": ("arm64",),
    "x86_64": ("x86_64",),
    "intel": ("x86_64",),
    "universal2": ("arm64", "x86_64"),
}
_CPYTHON = re.compile(r"^cp(3)(\d{1,2})$")


def tag_platforms(platform_tag: str) -> list[tuple[str, Version | None]]:
    """A wheel platform tag -> [(matrix platform, glibc or macOS floor)]; [] for other platforms."""
    if match := _MANYLINUX.match(platform_tag):
        return [(f"linux-{match.group(3)}", Version(f"{match.group(1)}.{match.group(2)}"))]
    if match := _LEGACY.match(platform_tag):
        return [(f"linux-{match.group(2)}", Version(_MANYLINUX_LEGACY[match.group(1)]))]
    if match := _LINUX.match(platform_tag):
        return [(f"linux-{match.group(1)}", None)]
    if platform_tag == "win_amd64":
        return [("windows-x86_64", None)]
    if match := _MACOS.match(platform_tag):
        floor = Version(f"{match.group(1)}.{match.group(2)}")
        return [(f"macos-{arch}", floor) for arch in _MACOS_ARCHES.get(match.group(3), ())]
    return []


def tag_platforms_all(compressed: str) -> list[tuple[str, Version | None]]:
    """tag_platforms over a compressed platform tag set (`manylinux_2_27_x86_64.manylinux_2_28_x86_64`)."""
    return [item for part in compressed.split(".") for item in tag_platforms(part)]


def tag_python(interpreter: str, abi: str) -> str | None:
    """`cp311`/`cp311` -> "3.11"; `cp313`/`cp313t` -> "3.13t"; anything but CPython -> None."""
    match = _CPYTHON.match(interpreter)
    if not match:
        return None
    python = f"{match.group(1)}.{match.group(2)}"
    return python + "t" if abi == f"{interpreter}t" else python


def host_floor(host: Host) -> Version | None:
    """The version a wheel's platform floor is compared with: glibc on Linux, macOS on macOS.
    None where the host does not say (then a floor is not checked: absent is not broken)."""
    text = host.libc_version if host.os == "linux" and host.libc == "glibc" else None
    if host.os == "macos":
        text = host.os_version
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def python_fits(tag: Tag, python: str) -> bool:
    free_threaded = python.endswith("t")
    major, minor = python.rstrip("t").split(".")
    if tag.interpreter.startswith("py"):
        return tag.interpreter in ("py3", f"py{major}", f"py{major}{minor}") and tag.abi in ("none", "abi3")
    if tag.interpreter != f"cp{major}{minor}":
        return False
    if tag.abi == "abi3":
        return not free_threaded
    if tag.abi == "none":  # e.g. torch's macOS wheels: cp311-none-macosx_11_0_arm64
        return True
    return tag.abi == f"cp{major}{minor}{'t' if free_threaded else ''}"


def platform_fits(tag_platform: str, platform: str, floor: Version | None = None) -> bool:
    """Whether a platform tag serves `platform` on a target whose glibc (Linux) or macOS version is
    `floor`: manylinux_2_28 needs glibc >= 2.28, macosx_14_0 needs macOS >= 14.0."""
    if tag_platform == "any":
        return True
    return any(
        served == platform and (needs is None or floor is None or needs <= floor)
        for served, needs in tag_platforms(tag_platform)
    )


def wheel_fits(filename: str, version: str, python: str, platform: str, floor: Version | None = None) -> bool:
    """Whether a wheel file is `version` and installs for `python` on `platform` (and `floor`)."""
    # packaging.utils loads packaging.tags (platform, sysconfig): only when a listing is read
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        _, wheel_version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    if wheel_version != Version(version):
        return False
    return any(python_fits(tag, python) and platform_fits(tag.platform, platform, floor) for tag in tags)
