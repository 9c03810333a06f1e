"""Matrix files as located rows: where each key sits in the text, and typed access that records problems.

Every matrix file is parsed with tomllib, then each row is checked field by field. Problems are
collected (never raised one at a time) with the file, the line and the dotted key; line numbers come
from scanning the file text, done only when a problem needs one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from resolver.errors import Location, MatrixProblem
from resolver.host.model import ComputeCapability
from resolver.matrix.model import PLATFORMS

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PYTHON = re.compile(r"^3\.\d{1,2}t?$")
_BARE = r"[A-Za-z0-9_-]+|\"[^\"\\]*\"|'[^']*'"
_KEY_LINE = re.compile(rf"^\s*((?:{_BARE})(?:\s*\.\s*(?:{_BARE}))*)\s*=")
_HEADER_LINE = re.compile(rf"^\s*(\[\[?)\s*((?:{_BARE})(?:\s*\.\s*(?:{_BARE}))*)\s*\]\]?\s*(?:#.*)?$")
_DOTTED_PART = re.compile(_BARE)

PLATFORM_HINT = "one of " + ", ".join(PLATFORMS)
VARIANT_HINT = 'write "cpu", "cuXYZ" (cu128 = CUDA 12.8), "rocmX.Y[.Z]" or "xpu"'
ARCH_HINT = 'use TORCH_CUDA_ARCH_LIST notation: "8.6" (cubin for sm_86) or "8.6+PTX" (cubin and PTX)'
PYTHON_HINT = 'write "3.11", or "3.13t" for a free-threaded build'
VERSION_HINT = "write a PEP 440 version such as 2.7.1"
SPEC_HINT = 'write a PEP 440 specifier such as ">=3.9" or "<2.7,>=2.1"'
DRIVER_HINT = "write the driver as NVIDIA prints it, e.g. 525.60.13"
CC_HINT = "write MAJOR.MINOR, e.g. 8.6"
SOURCE_HINT = 'add source = "<key of sources.toml>", a URL, or a list of these'
DUP_HINT = "merge the rows; an overlay that means to override sets replace = true"

KeyPath = tuple[str | int, ...]


def _split_dotted(text: str) -> list[str]:
    return [part.strip("\"'") for part in _DOTTED_PART.findall(text)]


def scan_lines(text: str) -> dict[KeyPath, int]:
    """Map each table header and key of a TOML text to its 1-based line.

    Paths use the parsed data's shape: ("release", 3, "python", "linux-x86_64") for the fourth
    [[release]]'s [release.python] key. Continuation lines of multi-line arrays are skipped.
    """
    lines: dict[KeyPath, int] = {}
    arrays: dict[tuple[str, ...], int] = {}
    current: KeyPath = ()
    depth = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if depth == 0:
            header = _HEADER_LINE.match(raw)
            if header:
                parts = _split_dotted(header.group(2))
                path: list[str | int] = []
                for i, part in enumerate(parts):
                    path.append(part)
                    prefix = tuple(parts[: i + 1])
                    is_last = i == len(parts) - 1
                    if is_last and header.group(1) == "[[":
                        arrays[prefix] = arrays.get(prefix, 0) + 1
                        path.append(arrays[prefix] - 1)
                    elif prefix in arrays:
                        path.append(arrays[prefix] - 1)
                current = tuple(path)
                lines.setdefault(current, number)
                if isinstance(current[-1], int):  # the array itself: its first row
                    lines.setdefault(current[:-1], number)
                continue
            key = _KEY_LINE.match(raw)
            if key:
                lines.setdefault((*current, *_split_dotted(key.group(1))), number)
        if "[" in raw or "{" in raw or depth:
            depth = max(0, depth + _bracket_balance(raw))
    return lines


def _bracket_balance(line: str) -> int:
    """Net open brackets on a line, ignoring strings and comments (for multi-line arrays)."""
    balance = 0
    quote = ""
    escaped = False
    for ch in line:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance


def key_text(path: KeyPath) -> str:
    return ".".join(str(p) for p in path if not isinstance(p, int))


@dataclass
class File:
    """One parsed matrix file and the problems found in it."""

    path: Path
    layer: int
    text: str
    data: dict[str, Any]
    problems: list[MatrixProblem]
    _lines: dict[KeyPath, int] | None = None

    def line(self, path: KeyPath) -> int | None:
        if self._lines is None:
            self._lines = scan_lines(self.text)
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None

    def location(self, path: KeyPath) -> Location:
        return Location(str(self.path), self.line(path), key_text(path) or None)

    def problem(self, path: KeyPath, message: str, value: object = None, hint: str | None = None) -> None:
        self.problems.append(MatrixProblem(self.location(path), message, value, hint))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    import difflib  # only for a misspelled key: every matrix load reaches this module

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class Row:
    """Typed access to one TOML table; every failed check records a problem and clears `ok`."""

    def __init__(
        self,
        file: File,
        path: KeyPath,
        data: object,
        label: str,
        allowed: Collection[str],
        required: Collection[str] = (),
    ) -> None:
        self.file = file
        self.path = path
        self.label = label
        self.ok = True
        if not isinstance(data, dict):
            self.data: dict[str, Any] = {}
            self.fail((), f"{label} must be a table", short(data))
            return
        self.data = data
        for key in data:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or "allowed keys: " + ", ".join(sorted(allowed))
                self.fail((key,), f"unknown key in {label}", key, hint)
        for key in required:
            if key not in data:
                self.fail((), f"{label} lacks the required key {key!r}", None, None, key=key)

    def fail(
        self,
        sub: KeyPath,
        message: str,
        value: object = None,
        hint: str | None = None,
        key: str | None = None,
    ) -> None:
        self.ok = False
        path = (*self.path, *sub)
        location = self.file.location(path)
        if key is not None:  # name a key that is missing: the row's line, the key's name
            location = Location(location.file, location.line, key_text((*path, key)))
        self.file.problems.append(MatrixProblem(location, message, value, hint))

    def raw(self, key: str) -> object:
        return self.data.get(key)

    def typed(self, key: str, kind: type[Any], what: str, sub: KeyPath = ()) -> Any:
        value = self.data.get(key) if not sub else _dig(self.data, (key, *(str(p) for p in sub)))
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail((key, *sub), f"expected {what}", short(value))
            return None
        return value

    def text(self, key: str) -> str | None:
        value: str | None = self.typed(key, str, "a string")
        return value

    def flag(self, key: str) -> bool:
        value: bool | None = self.typed(key, bool, "true or false")
        return bool(value)

    def table(self, key: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.typed(key, dict, "a table")
        return value

    def strings(self, key: str, sub: KeyPath = ()) -> list[str] | None:
        value: list[Any] | None = self.typed(key, list, "an array of strings", sub)
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            bad = next(item for item in value if not isinstance(item, str))
            self.fail((key, *sub), "expected an array of strings", short(bad))
            return None
        return value

    def parse(
        self, key: str, text: str | None, parser: Callable[[str], _T], what: str, hint: str, sub: KeyPath = ()
    ) -> _T | None:
        if text is None:
            return None
        try:
            return parser(text)
        except ValueError:
            self.fail((key, *sub), f"not {what}", text, hint)
            return None

    def version(self, key: str) -> Version | None:
        return self.parse(key, self.text(key), parse_version, "a version", VERSION_HINT)

    def spec(self, key: str) -> SpecifierSet | None:
        return self.parse(key, self.text(key), parse_spec, "a version specifier", SPEC_HINT)

    def cc(self, key: str) -> ComputeCapability | None:
        return self.parse(key, self.text(key), ComputeCapability.parse, "a compute capability", CC_HINT)

    def date(self, key: str) -> str | None:
        return self.parse(key, self.text(key), parse_date, "a date", "write YYYY-MM-DD")


_T = TypeVar("_T")


def _dig(data: Mapping[str, Any], path: Sequence[str]) -> object:
    value: object = data
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def short(value: object) -> object:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list) and len(value) > 4:
        return "an array"
    return value


def parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(text) from None


def parse_spec(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(text) from None


def parse_date(text: str) -> str:
    if not _DATE.match(text):
        raise ValueError(text)
    date.fromisoformat(text)
    return text


def parse_python(text: str) -> str:
    if not _PYTHON.match(text):
        raise ValueError(text)
    return text


def parse_platform(text: str) -> str:
    if text not in PLATFORMS:
        raise ValueError(text)
    return text


# rows waiting for every sources.toml to be read, with the source keys they cite
Citations = list[tuple[Row, list[str]]]


def cite(row: Row, citations: Citations) -> tuple[str, ...]:
    """Read a row's `source`; the keys are checked once every sources.toml has been read."""
    value = row.raw("source")
    if value is None:
        row.fail((), "row has no source", None, SOURCE_HINT, key="source")
        return ()
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        row.fail(("source",), "expected a source key, a URL, or a list of these", short(value), SOURCE_HINT)
        return ()
    keys = [str(item) for item in items]
    citations.append((row, keys))
    return tuple(keys)


@dataclass
class Origin:
    file: File
    path: KeyPath

    def where(self) -> str:
        line = self.file.line(self.path)
        return f"{self.file.path.name}:{line}" if line else self.file.path.name

    def problem(self, sub: KeyPath, message: str, value: object = None, hint: str | None = None) -> None:
        self.file.problem((*self.path, *sub), message, value, hint)


@dataclass
class Keyed(Generic[_T]):
    """Rows of one kind by key, merged across the base directory and its overlays."""

    label: str
    rows: dict[Any, tuple[_T, Origin]] = field(default_factory=dict)

    def add(self, key: Any, value: _T, origin: Origin, replace: bool, shown: str) -> None:
        existing = self.rows.get(key)
        if replace and origin.file.layer == 0:
            origin.problem(
                ("replace",),
                "replace = true is only meaningful in an overlay directory",
                True,
                "drop it, or move the row to an overlay",
            )
            return
        if existing is None:
            if replace:
                origin.problem(
                    ("replace",),
                    f"replace = true but no earlier {self.label} for {shown}",
                    True,
                    "drop replace = true to add a new row",
                )
                return
            self.rows[key] = (value, origin)
            return
        first = existing[1]
        if replace and first.file.layer < origin.file.layer:
            self.rows[key] = (value, origin)
            return
        origin.problem((), f"duplicate {self.label} for {shown} (first at {first.where()})", shown, DUP_HINT)

    def values(self) -> list[_T]:
        return [value for value, _ in self.rows.values()]
