"""The spellings users' tools produce, normalised once, at the edge, to the one the tool writes.

Every reader of an OS, an architecture or a Python version (host files, the team file, flags,
variables, the probes) goes through these functions; nothing past the edge sees another spelling.
Each returns the normal form or raises `ValueError` with a message the caller puts in its own
error (naming its file, key or variable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OS_NAMES = ("linux", "windows", "macos")
ARCH_NAMES = ("x86_64", "aarch64", "arm64")

# platform.system(), sys.platform, uname -s, Go's GOOS, what inventories hold.
_OS_SPELLINGS = {
    "linux": "linux",
    "linux2": "linux",
    "darwin": "macos",
    "macos": "macos",
    "macosx": "macos",
    "osx": "macos",
    "mac": "macos",
    "windows": "windows",
    "win32": "windows",
    "win64": "windows",
    "win": "windows",
    "cygwin": "windows",
    "msys": "windows",
}
# platform.machine() on each OS, uname -m, Go's GOARCH, Docker's platform names.
_X86_64 = frozenset({"x86_64", "x86-64", "amd64", "x64", "em64t", "intel64"})
_ARM64 = frozenset({"aarch64", "arm64", "armv8", "armv8l", "arm64e", "aarch64_be"})

# 3.11, 3.11.9, 3.13t, 3.13.1t, 3.13.0rc1, 3.12.0a7+ (a development build).
_DOTTED_PYTHON_RE = re.compile(
    r"(?P<major>\d+)\.(?P<minor>\d{1,2})(?P<patch>\.\d+)?(?P<pre>(?:a|b|rc)\d+)?\+?(?P<ft>t)?",
    re.ASCII,
)


def normalize_os(text: str) -> str:
    """`Linux`, `Darwin`, `Windows`, `win32`, `macOS` ... -> one of OS_NAMES."""
    try:
        return _OS_SPELLINGS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown OS {text!r} (one of {', '.join(OS_NAMES)})") from None


def normalize_arch(text: str, os_name: str) -> str:
    """`amd64`, `AMD64`, `x64` -> x86_64; 64-bit ARM is `arm64` on macOS (its wheel tag and matrix
    key) and `aarch64` elsewhere, whichever way the file spells it."""
    value = text.strip().lower()
    if value in _X86_64:
        return "x86_64"
    if value in _ARM64:
        return "arm64" if os_name == "macos" else "aarch64"
    raise ValueError(f"unknown CPU architecture {text!r} (one of {', '.join(ARCH_NAMES)})")


@dataclass(frozen=True)
class PythonVersion:
    """A Python version as given ("3.11.9") and the series wheels are built for ("3.11", "3.13t")."""

    full: str
    series: str


def parse_python(text: str) -> PythonVersion:
    """`3.11`, `3.11.9` (what `platform.python_version()` prints), `3.13t`, `3.13.0rc1`; also as
    `python --version` prints it (`Python 3.11.9`) and as uv names an interpreter
    (`cpython-3.11.9-linux-x86_64-gnu`, `cpython-3.13.0+freethreaded-...`)."""
    full = _bare_python(text)
    match = _DOTTED_PYTHON_RE.fullmatch(full)
    if not match or match.group("major") != "3":
        raise ValueError(f"not a Python 3 version: {text!r} (e.g. 3.11, 3.11.9 or 3.13t)")
    series = f"3.{int(match.group('minor'))}{'t' if match.group('ft') else ''}"
    # Kept in full only when it says more than the series.
    return PythonVersion(full=full if match.group("patch") or match.group("pre") else series, series=series)


def _bare_python(text: str) -> str:
    """The version alone, out of the ways tools print one."""
    bare = text.strip()
    lowered = bare.lower()
    if lowered.startswith("python "):
        bare = bare[len("python ") :].strip()
    elif lowered.startswith("cpython-"):
        bare = bare[len("cpython-") :].split("-", 1)[0]
        if bare.lower().endswith("+freethreaded"):
            bare = bare[: -len("+freethreaded")] + "t"
    return bare


def python_series(text: str) -> str:
    """The MAJOR.MINOR[t] of a Python version: what wheels and the matrix are keyed by."""
    return parse_python(text).series


# `torch==2.8.0+cpu`: the form the tool itself prints; the label names the variant.
_LOCAL_PIN_RE = re.compile(r"(?P<pin>===?\s*[0-9][0-9A-Za-z.!*]*)\+(?P<label>[A-Za-z0-9.]+)")


def split_local_label(requirement: str) -> tuple[str, str | None]:
    """`torch==2.8.0+cpu` -> (`torch==2.8.0`, `cpu`). The matrix lists releases without labels;
    the label chooses the variant. Without a label: (the text unchanged, None)."""
    labels = {m.group("label").lower() for m in _LOCAL_PIN_RE.finditer(requirement)}
    if not labels:
        return requirement, None
    if len(labels) > 1:
        raise ValueError(f"pins name different variants: {', '.join(sorted(labels))}")
    return _LOCAL_PIN_RE.sub(lambda m: m.group("pin"), requirement), labels.pop()
