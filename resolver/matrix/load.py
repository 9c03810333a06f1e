"""The compatibility matrix: typed, frozen values loaded from `matrices/*.toml`.

This module holds the value types (the API the solver reads) and the loader. Facts live in the
TOML files; this code only knows their shape.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from resolver.errors import Location, MatrixError, MatrixProblem
from resolver.host.model import ComputeCapability, DriverVersion
from resolver.matrix.arch import ArchTarget, TegraRule
from resolver.matrix.vocab import variant_cuda, variant_kind

# Platform keys, `{os}-{arch}` exactly as `Host.platform` builds them.
PLATFORMS = ("linux-x86_64", "linux-aarch64", "windows-x86_64", "macos-arm64", "macos-x86_64")


@dataclass(frozen=True)
class Source:
    """Where a fact comes from: a URL, or a git repository + path + commit."""

    key: str
    title: str
    url: str | None = None
    repo: str | None = None
    path: str | None = None
    commit: str | None = None
    # a locator in prose for what has neither URL nor repository (a registry project, a wheel file)
    where: str | None = None
    retrieved: str | None = None
    note: str | None = None

    def cite(self) -> str:
        if self.url:
            return self.url
        if self.repo is None and self.where:
            return f"{self.where} (read {self.retrieved})" if self.retrieved else self.where
        text = f"{self.repo}:{self.path}"
        return f"{text}@{self.commit}" if self.commit else text


@dataclass(frozen=True)
class Build:
    """The wheels of one variant (cu128, rocm6.3, cpu) for one torch release series (2.7).

    `arch` maps each platform with wheels to its TORCH_CUDA_ARCH_LIST (empty for cpu/rocm).
    """

    series: str
    variant: str
    kind: str  # "cuda" | "rocm" | "cpu"
    cuda: Version | None
    arch: Mapping[str, tuple[ArchTarget, ...]]
    unverified: bool = False
    unverified_platforms: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    note: str | None = None

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(self.arch)

    def is_unverified_on(self, platform: str) -> bool:
        return self.unverified or platform in self.unverified_platforms


@dataclass(frozen=True)
class TorchRelease:
    version: Version
    date: str
    requires_python: SpecifierSet
    # platform -> Python versions ("3.11", "3.13t") with a wheel on that platform
    python: Mapping[str, tuple[str, ...]]
    # CPU arch ("x86_64", "aarch64") -> glibc floor of the Linux wheels
    glibc_min: Mapping[str, Version]
    # minimum macOS version of the arm64 / x86_64 wheels; None: no macOS wheels
    macos_min: Version | None
    variants: tuple[str, ...]
    # platform -> the variant of the wheel the general index (PyPI) serves there
    default_variant: Mapping[str, str]
    sources: tuple[str, ...] = ()
    unverified: bool = False
    note: str | None = None
    # CPU arch ("arm64", "x86_64") -> minimum macOS of that arch's wheels; `macos_min` is the lowest
    macos_min_arch: Mapping[str, Version] = field(default_factory=dict)

    @functools.cached_property
    def series(self) -> str:
        return f"{self.version.major}.{self.version.minor}"

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(self.python)


@dataclass(frozen=True)
class CudaFamily:
    """One CUDA major: the driver floor under minor-version compatibility, targetable CCs."""

    major: int
    minor_version_compatibility: bool
    # os ("linux", "windows") -> minimum driver; an OS missing here is unknown
    min_driver: Mapping[str, DriverVersion]
    cc_min: ComputeCapability
    cc_max: ComputeCapability
    unverified_os: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    note: str | None = None

    def can_target(self, cc: ComputeCapability) -> bool:
        return self.cc_min <= cc <= self.cc_max


@dataclass(frozen=True)
class CudaToolkit:
    """One toolkit release and the driver it ships with (its full-feature floor)."""

    version: Version
    driver: Mapping[str, DriverVersion]
    unverified: bool = False
    sources: tuple[str, ...] = ()
    # OSes whose toolkit driver is not known (absent from `driver`)
    unverified_os: frozenset[str] = frozenset()
    note: str | None = None


@dataclass(frozen=True)
class GpuArch:
    cc: ComputeCapability
    architecture: str
    products: tuple[str, ...]
    tegra: bool = False
    aliases: tuple[ComputeCapability, ...] = ()
    first_cuda: Version | None = None
    removed_in_cuda: Version | None = None
    unverified: bool = False
    sources: tuple[str, ...] = ()
    note: str | None = None

    def targetable_by(self, cuda: Version) -> bool:
        """Whether a toolkit of version `cuda` can compile for this architecture."""
        if self.first_cuda is not None and cuda < self.first_cuda:
            return False
        return self.removed_in_cuda is None or cuda < self.removed_in_cuda


@dataclass(frozen=True)
class CompanionPair:
    """torch -> torchvision / torchaudio. None means no release exists for that torch."""

    torch: Version
    torchvision: Version | None
    torchaudio: Version | None
    unverified: bool = False
    sources: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class TransformersRelease:
    version: Version
    requires_python: SpecifierSet
    # the `torch` extra's specifier ("" = any torch)
    torch: SpecifierSet
    # below this torch, transformers' import-time gate disables torch support
    runtime_min_torch: Version | None = None
    yanked: bool = False
    upload_date: str | None = None
    unverified: bool = False
    sources: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Matrix:
    version: str
    directories: tuple[Path, ...]
    sources: Mapping[str, Source]
    torch: tuple[TorchRelease, ...]  # newest first
    builds: Mapping[tuple[str, str], Build]  # (series, variant) -> build
    cuda_families: Mapping[int, CudaFamily]
    toolkits: tuple[CudaToolkit, ...]
    gpus: Mapping[ComputeCapability, GpuArch]
    companions: Mapping[Version, CompanionPair]
    transformers: tuple[TransformersRelease, ...]  # newest first
    rocm_platforms: frozenset[str] = field(default=frozenset({"linux-x86_64"}))
    # platforms whose wheels carry no local version label (+cpu, +cu128) on the download index
    unlabelled_platforms: frozenset[str] = field(default=frozenset({"macos-arm64", "macos-x86_64"}))
    # packages torch wheels of the PyTorch download index require that only that index serves
    index_bound_packages: tuple[str, ...] = ("pytorch-triton-rocm", "pytorch-triton-xpu")

    def transformers_release(self, version: Version) -> TransformersRelease | None:
        return next((t for t in self.transformers if t.version == version), None)

    def gpu(self, cc: ComputeCapability) -> GpuArch | None:
        """The architecture row for a compute capability, also found by an alias (10.1 -> 11.0)."""
        found = self.gpus.get(cc)
        if found is not None:
            return found
        return next((g for g in self.gpus.values() if cc in g.aliases), None)

    @property
    def tegra_rule(self) -> TegraRule:
        tegra = frozenset(cc for cc, gpu in self.gpus.items() if gpu.tegra)
        aliases = frozenset(frozenset({cc, *gpu.aliases}) for cc, gpu in self.gpus.items() if gpu.aliases)
        return TegraRule(tegra=tegra | frozenset(a for g in aliases for a in g), aliases=aliases)

    def build(self, release: TorchRelease, variant: str) -> Build | None:
        return self.builds.get((release.series, variant))

    def release(self, version: Version) -> TorchRelease | None:
        return next((r for r in self.torch if r.version == version), None)

    def toolkit(self, version: Version) -> CudaToolkit | None:
        """The toolkit row for a variant's CUDA version (12.8 matches 12.8.0)."""
        rows = [t for t in self.toolkits if t.version.release[:2] == version.release[:2]]
        return min(rows, key=lambda t: t.version) if rows else None

    def driver_floor(self, cuda: Version, os_name: str) -> DriverVersion | None:
        """Minimum driver a build of CUDA `cuda` needs on `os_name`; None if unknown."""
        family = self.cuda_families.get(cuda.major)
        if family is not None and family.minor_version_compatibility:
            return family.min_driver.get(os_name)
        toolkit = self.toolkit(cuda)
        if toolkit is not None:
            return toolkit.driver.get(os_name)
        return family.min_driver.get(os_name) if family else None


# --- loading -----------------------------------------------------------------------------------
#
# Every matrix file is parsed with tomllib, then each row is checked field by field. Problems are
# collected (never raised one at a time) with the file, the line and the dotted key; line numbers
# come from scanning the file text, done only when a problem needs one.

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENV_VAR = "STACK_RESOLVER_MATRIX"
MATRIX_FILES = (
    "sources.toml",
    "torch.toml",
    "builds.toml",
    "cuda.toml",
    "gpus.toml",
    "companions.toml",
    "transformers.toml",
)
# Data files beside the matrix that other modules read and validate (conda.toml: lock/conda.py).
AUXILIARY_FILES = ("conda.toml",)
OS_KEYS = ("linux", "windows")
GLIBC_ARCHES = ("x86_64", "aarch64")
MACOS_ARCHES = ("arm64", "x86_64")

_SERIES = re.compile(r"^\d+\.\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PYTHON = re.compile(r"^3\.\d{1,2}t?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_URL = re.compile(r"^https?://\S+$")
_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column \d+\)$")
_BARE = r"[A-Za-z0-9_-]+|\"[^\"\\]*\"|'[^']*'"
_KEY_LINE = re.compile(rf"^\s*((?:{_BARE})(?:\s*\.\s*(?:{_BARE}))*)\s*=")
_HEADER_LINE = re.compile(rf"^\s*(\[\[?)\s*((?:{_BARE})(?:\s*\.\s*(?:{_BARE}))*)\s*\]\]?\s*(?:#.*)?$")
_DOTTED_PART = re.compile(_BARE)

_PLATFORM_HINT = "one of " + ", ".join(PLATFORMS)
_VARIANT_HINT = 'write "cpu", "cuXYZ" (cu128 = CUDA 12.8) or "rocmX.Y[.Z]"'
_ARCH_HINT = 'use TORCH_CUDA_ARCH_LIST notation: "8.6" (cubin for sm_86) or "8.6+PTX" (cubin and PTX)'
_PYTHON_HINT = 'write "3.11", or "3.13t" for a free-threaded build'
_VERSION_HINT = "write a PEP 440 version such as 2.7.1"
_SPEC_HINT = 'write a PEP 440 specifier such as ">=3.9" or "<2.7,>=2.1"'
_DRIVER_HINT = "write the driver as NVIDIA prints it, e.g. 525.60.13"
_CC_HINT = "write MAJOR.MINOR, e.g. 8.6"
_SOURCE_HINT = 'add source = "<key of sources.toml>", a URL, or a list of these'
_DUP_HINT = "merge the rows; an overlay that means to override sets replace = true"

Path_ = tuple[str | int, ...]


def default_matrix_dir() -> Path:
    """`$STACK_RESOLVER_MATRIX` if set, else the `matrices/` directory shipped next to the package."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "matrices"


def _split_dotted(text: str) -> list[str]:
    return [part.strip("\"'") for part in _DOTTED_PART.findall(text)]


def _scan_lines(text: str) -> dict[Path_, int]:
    """Map each table header and key of a TOML text to its 1-based line.

    Paths use the parsed data's shape: ("release", 3, "python", "linux-x86_64") for the fourth
    [[release]]'s [release.python] key. Continuation lines of multi-line arrays are skipped.
    """
    lines: dict[Path_, int] = {}
    arrays: dict[tuple[str, ...], int] = {}
    current: Path_ = ()
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


def _key_text(path: Path_) -> str:
    return ".".join(str(p) for p in path if not isinstance(p, int))


@dataclass
class _File:
    """One parsed matrix file and the problems found in it."""

    path: Path
    layer: int
    text: str
    data: dict[str, Any]
    problems: list[MatrixProblem]
    _lines: dict[Path_, int] | None = None

    def line(self, path: Path_) -> int | None:
        if self._lines is None:
            self._lines = _scan_lines(self.text)
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None

    def location(self, path: Path_) -> Location:
        return Location(str(self.path), self.line(path), _key_text(path) or None)

    def problem(self, path: Path_, message: str, value: object = None, hint: str | None = None) -> None:
        self.problems.append(MatrixProblem(self.location(path), message, value, hint))


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class _Row:
    """Typed access to one TOML table; every failed check records a problem and clears `ok`."""

    def __init__(
        self,
        file: _File,
        path: Path_,
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
            self.fail((), f"{label} must be a table", _short(data))
            return
        self.data = data
        for key in data:
            if key not in allowed:
                hint = _did_you_mean(key, allowed) or "allowed keys: " + ", ".join(sorted(allowed))
                self.fail((key,), f"unknown key in {label}", key, hint)
        for key in required:
            if key not in data:
                self.fail((), f"{label} lacks the required key {key!r}", None, None, key=key)

    def fail(
        self,
        sub: Path_,
        message: str,
        value: object = None,
        hint: str | None = None,
        key: str | None = None,
    ) -> None:
        self.ok = False
        path = (*self.path, *sub)
        location = self.file.location(path)
        if key is not None:  # name a key that is missing: the row's line, the key's name
            location = Location(location.file, location.line, _key_text((*path, key)))
        self.file.problems.append(MatrixProblem(location, message, value, hint))

    def raw(self, key: str) -> object:
        return self.data.get(key)

    def typed(self, key: str, kind: type[Any], what: str, sub: Path_ = ()) -> Any:
        value = self.data.get(key) if not sub else _dig(self.data, (key, *(str(p) for p in sub)))
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail((key, *sub), f"expected {what}", _short(value))
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

    def strings(self, key: str, sub: Path_ = ()) -> list[str] | None:
        value: list[Any] | None = self.typed(key, list, "an array of strings", sub)
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            bad = next(item for item in value if not isinstance(item, str))
            self.fail((key, *sub), "expected an array of strings", _short(bad))
            return None
        return value

    def parse(
        self, key: str, text: str | None, parser: Callable[[str], _T], what: str, hint: str, sub: Path_ = ()
    ) -> _T | None:
        if text is None:
            return None
        try:
            return parser(text)
        except ValueError:
            self.fail((key, *sub), f"not {what}", text, hint)
            return None

    def version(self, key: str) -> Version | None:
        return self.parse(key, self.text(key), _parse_version, "a version", _VERSION_HINT)

    def spec(self, key: str) -> SpecifierSet | None:
        return self.parse(key, self.text(key), _parse_spec, "a version specifier", _SPEC_HINT)

    def cc(self, key: str) -> ComputeCapability | None:
        return self.parse(key, self.text(key), ComputeCapability.parse, "a compute capability", _CC_HINT)

    def date(self, key: str) -> str | None:
        return self.parse(key, self.text(key), _parse_date, "a date", "write YYYY-MM-DD")


_T = TypeVar("_T")


def _dig(data: Mapping[str, Any], path: Sequence[str]) -> object:
    value: object = data
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _short(value: object) -> object:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list) and len(value) > 4:
        return "an array"
    return value


def _parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(text) from None


def _parse_spec(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(text) from None


def _parse_date(text: str) -> str:
    if not _DATE.match(text):
        raise ValueError(text)
    date.fromisoformat(text)
    return text


def _parse_python(text: str) -> str:
    if not _PYTHON.match(text):
        raise ValueError(text)
    return text


def _parse_platform(text: str) -> str:
    if text not in PLATFORMS:
        raise ValueError(text)
    return text


def _python_version(python: str) -> str:
    return python.rstrip("t") + ".0"


# --- rows --------------------------------------------------------------------------------------


@dataclass
class _Origin:
    file: _File
    path: Path_

    def where(self) -> str:
        line = self.file.line(self.path)
        return f"{self.file.path.name}:{line}" if line else self.file.path.name

    def problem(self, sub: Path_, message: str, value: object = None, hint: str | None = None) -> None:
        self.file.problem((*self.path, *sub), message, value, hint)


@dataclass
class _Keyed(Generic[_T]):
    """Rows of one kind by key, merged across the base directory and its overlays."""

    label: str
    rows: dict[Any, tuple[_T, _Origin]] = field(default_factory=dict)

    def add(self, key: Any, value: _T, origin: _Origin, replace: bool, shown: str) -> None:
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
        origin.problem((), f"duplicate {self.label} for {shown} (first at {first.where()})", shown, _DUP_HINT)

    def values(self) -> list[_T]:
        return [value for value, _ in self.rows.values()]


@dataclass
class _State:
    """Everything read so far, across layers."""

    files: list[_File] = field(default_factory=list)
    problems: list[MatrixProblem] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    sources: _Keyed[Source] = field(default_factory=lambda: _Keyed("source"))
    releases: _Keyed[TorchRelease] = field(default_factory=lambda: _Keyed("[[release]]"))
    builds: _Keyed[Build] = field(default_factory=lambda: _Keyed("[[build]]"))
    families: _Keyed[CudaFamily] = field(default_factory=lambda: _Keyed("[[family]]"))
    toolkits: _Keyed[CudaToolkit] = field(default_factory=lambda: _Keyed("[[toolkit]]"))
    gpus: _Keyed[GpuArch] = field(default_factory=lambda: _Keyed("[[gpu]]"))
    pairs: _Keyed[CompanionPair] = field(default_factory=lambda: _Keyed("[[pair]]"))
    transformers: _Keyed[TransformersRelease] = field(default_factory=lambda: _Keyed("[[release]]"))
    rocm_platforms: set[str] = field(default_factory=set)
    unlabelled_platforms: set[str] = field(default_factory=set)
    platforms_set: bool = False
    index_bound: list[str] | None = None
    # citations waiting for every sources.toml to be read: (row, cited keys)
    citations: list[tuple[_Row, list[str]]] = field(default_factory=list)


_SOURCE_KEYS = (
    "title",
    "kind",
    "url",
    "repo",
    "path",
    "commit",
    "branch",
    "where",
    "retrieved",
    "note",
    "replace",
)
_RELEASE_KEYS = (
    "version",
    "date",
    "requires_python",
    "variants",
    "glibc_min",
    "macos_min",
    "python",
    "default_variant",
    "source",
    "note",
    "unverified",
    "replace",
)
_BUILD_KEYS = ("series", "variant", "arch", "unverified", "unverified_platforms", "source", "note", "replace")
_FAMILY_KEYS = (
    "major",
    "minor_version_compatibility",
    "min_driver",
    "unverified_os",
    "cc_min",
    "cc_max",
    "source",
    "note",
    "replace",
)
_TOOLKIT_KEYS = ("version", "driver", "unverified", "unverified_os", "source", "note", "replace")
_GPU_KEYS = (
    "cc",
    "architecture",
    "products",
    "tegra",
    "aliases",
    "first_cuda",
    "removed_in_cuda",
    "unverified",
    "source",
    "note",
    "replace",
)
_PAIR_KEYS = ("torch", "torchvision", "torchaudio", "unverified", "source", "note", "replace")
_TRANSFORMERS_KEYS = (
    "version",
    "upload_date",
    "requires_python",
    "torch",
    "runtime_min_torch",
    "yanked",
    "unverified",
    "source",
    "note",
    "replace",
)
_TOP_KEYS = {
    "sources.toml": ("meta", "sources"),
    "torch.toml": ("platforms", "index", "release"),
    "builds.toml": ("build",),
    "cuda.toml": ("family", "toolkit"),
    "gpus.toml": ("gpu",),
    "companions.toml": ("pair",),
    "transformers.toml": ("release",),
}


def _cite(row: _Row, state: _State) -> tuple[str, ...]:
    """Read a row's `source`; the keys are checked once every sources.toml has been read."""
    value = row.raw("source")
    if value is None:
        row.fail((), "row has no source", None, _SOURCE_HINT, key="source")
        return ()
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        row.fail(("source",), "expected a source key, a URL, or a list of these", _short(value), _SOURCE_HINT)
        return ()
    keys = [str(item) for item in items]
    state.citations.append((row, keys))
    return tuple(keys)


def _check_citations(state: _State) -> None:
    known = state.sources.rows
    for row, keys in state.citations:
        for key in keys:
            if key in known:
                continue
            if _URL.match(key):
                known[key] = (Source(key=key, title=key, url=key), _Origin(row.file, row.path))
                continue
            hint = _did_you_mean(key, [k for k in known if not _URL.match(k)])
            row.fail(
                ("source",),
                "unknown source",
                key,
                hint or f"define [sources.{key}] in sources.toml, or cite a URL",
            )


def _read_sources(file: _File, state: _State) -> None:
    meta = file.data.get("meta")
    if meta is not None:
        row = _Row(file, ("meta",), meta, "[meta]", ("version",), ("version",) if file.layer == 0 else ())
        version = row.text("version")
        if version:
            state.versions.append(version)
    elif file.layer == 0:
        file.problem((), "sources.toml has no [meta] table", None, 'add [meta] with version = "YYYY-MM-DD"')
    table = file.data.get("sources", {})
    if not isinstance(table, dict):
        file.problem(("sources",), "expected [sources.<key>] tables", _short(table))
        return
    for key, data in table.items():
        row = _Row(file, ("sources", key), data, f"[sources.{key}]", _SOURCE_KEYS, ("title",))
        title, url, repo, path = row.text("title"), row.text("url"), row.text("repo"), row.text("path")
        commit, where = row.text("commit"), row.text("where")
        row.text("kind")
        row.text("branch")
        retrieved, note = row.text("retrieved"), row.text("note")
        located = [name for name, given in (("url", url), ("repo", repo), ("where", where)) if given]
        if len(located) != 1:
            row.fail(
                (),
                "a source needs exactly one of url, repo + path, or where",
                ", ".join(located) or None,
                "cite a URL, a repository file, or describe where in `where`",
            )
        if url is not None and not _URL.match(url):
            row.fail(("url",), "not an http(s) URL", url, "write the full address, https://...")
        if repo is not None and path is None:
            row.fail((), "a repository source needs a path", None, None, key="path")
        if repo is not None and "/" not in repo:
            row.fail(("repo",), "not a repository name", repo, "write owner/name, e.g. pytorch/pytorch")
        if commit is not None and not _COMMIT.match(commit):
            row.fail(("commit",), "not a full git commit", commit, "write the 40-hex-digit commit id")
        if retrieved is not None:
            row.parse("retrieved", retrieved, _parse_date, "a date", "write YYYY-MM-DD")
        replace = row.flag("replace")
        # A bad source row is reported once; registering its key keeps citations from cascading.
        if title is not None or not row.ok:
            source = Source(key, title or key, url, repo, path, commit, where, retrieved, note)
            state.sources.add(key, source, _Origin(file, ("sources", key)), replace, key)


def _platform_table(row: _Row, key: str, sub_parser: Callable[[str, str], _T | None]) -> dict[str, _T]:
    """A table keyed by platform; values parsed by `sub_parser(platform, value)`."""
    table = row.table(key)
    out: dict[str, _T] = {}
    for platform in table or {}:
        if platform not in PLATFORMS:
            row.fail((key, platform), "unknown platform", platform, _PLATFORM_HINT)
            continue
        value = sub_parser(platform, key)
        if value is not None:
            out[platform] = value
    return out


def _read_release(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("release", index)
    row = _Row(
        file,
        path,
        data,
        "[[release]]",
        _RELEASE_KEYS,
        ("version", "date", "requires_python", "variants", "python", "default_variant"),
    )
    version = row.version("version")
    day = row.date("date")
    requires = row.spec("requires_python")
    variants = row.strings("variants") or []
    seen: set[str] = set()
    for variant in variants:
        if variant_kind(variant) is None:
            row.fail(("variants",), "not a variant name", variant, _VARIANT_HINT)
        elif variant in seen:
            row.fail(("variants",), "variant listed twice", variant, "list each variant once")
        seen.add(variant)

    def pythons(platform: str, key: str) -> tuple[str, ...] | None:
        items = row.strings(key, (platform,))
        if items is None:
            return None
        out = []
        for item in items:
            parsed = row.parse(key, item, _parse_python, "a Python version", _PYTHON_HINT, (platform,))
            if parsed is not None:
                out.append(parsed)
        if len(set(out)) != len(out):
            row.fail((key, platform), "Python version listed twice", items, "list each version once")
        return tuple(out)

    def default(platform: str, key: str) -> str | None:
        value: str | None = row.typed(key, str, "a variant name", (platform,))
        if value is not None and variant_kind(value) is None:
            row.fail((key, platform), "not a variant name", value, _VARIANT_HINT)
            return None
        return value

    python = _platform_table(row, "python", pythons)
    defaults = _platform_table(row, "default_variant", default)
    for platform, variant in defaults.items():
        if platform not in python and row.table("python") is not None:
            row.fail(
                ("default_variant", platform),
                "default_variant names a platform without wheels",
                platform,
                "add its Python list to [release.python], or drop this line",
            )
        elif variant not in variants and variants:
            row.fail(
                ("default_variant", platform),
                "default variant is not one of the release's variants",
                variant,
                "add it to variants, or correct default_variant",
            )
    for platform in python:
        if platform not in defaults and row.table("default_variant") is not None:
            row.fail(
                ("default_variant",),
                f"no default_variant for {platform}, which has wheels",
                None,
                f'add {platform} = "cpu" (or the variant PyPI serves there)',
            )
    glibc = _arch_versions(row, "glibc_min", GLIBC_ARCHES, "glibc")
    linux_arches = {p.split("-", 1)[1] for p in python if p.startswith("linux-")}
    given = _keys_of(row.raw("glibc_min"))
    for arch in sorted(linux_arches - given):
        if isinstance(row.raw("glibc_min"), dict) or "glibc_min" not in row.data:
            row.fail(
                (),
                f"Linux {arch} wheels but no glibc floor for {arch}",
                None,
                f'add glibc_min = {{ {arch} = "2.28" }} (the floor of the wheel tag)',
                key="glibc_min",
            )
    for arch in sorted(set(glibc) - linux_arches):
        row.fail(
            ("glibc_min", arch),
            f"glibc floor for {arch}, which has no Linux wheels",
            arch,
            "drop it, or add the platform to [release.python]",
        )
    macos = _arch_versions(row, "macos_min", MACOS_ARCHES, "macOS")
    mac_arches = {p.split("-", 1)[1] for p in python if p.startswith("macos-")}
    given_mac = _keys_of(row.raw("macos_min"))
    for arch in sorted(mac_arches - given_mac):
        row.fail(
            (),
            f"macOS {arch} wheels but no macos_min for {arch}",
            None,
            f'add macos_min = {{ {arch} = "11.0" }}',
            key="macos_min",
        )
    for arch in sorted(set(macos) - mac_arches):
        row.fail(
            ("macos_min", arch),
            f"macos_min for {arch}, which has no macOS wheels",
            arch,
            "drop it, or add the platform to [release.python]",
        )
    if requires is not None:
        for platform, items in python.items():
            for item in items:
                if not requires.contains(_python_version(item), prereleases=True):
                    row.fail(
                        ("python", platform),
                        f"Python {item} is outside requires_python {requires}",
                        item,
                        "drop the version, or correct requires_python",
                    )
    sources = _cite(row, state)
    note = row.text("note")
    unverified = row.flag("unverified")
    replace = row.flag("replace")
    if row.ok and version is not None and day is not None and requires is not None:
        release = TorchRelease(
            version=version,
            date=day,
            requires_python=requires,
            python=python,
            glibc_min=glibc,
            macos_min=min(macos.values()) if macos else None,
            variants=tuple(variants),
            default_variant=defaults,
            sources=sources,
            unverified=unverified,
            note=note,
            macos_min_arch=macos,
        )
        state.releases.add(version, release, _Origin(file, path), replace, f"torch {version}")


def _keys_of(value: object) -> set[str]:
    return {str(key) for key in value} if isinstance(value, dict) else set()


def _arch_versions(row: _Row, key: str, arches: Sequence[str], what: str) -> dict[str, Version]:
    table = row.table(key)
    out: dict[str, Version] = {}
    for arch, value in (table or {}).items():
        if arch not in arches:
            row.fail((key, arch), f"unknown CPU arch for a {what} floor", arch, "one of " + ", ".join(arches))
            continue
        text: str | None = row.typed(key, str, "a version string", (arch,))
        parsed = row.parse(
            key, text, _parse_version, "a version", f"write the {what} version, e.g. 2.28", (arch,)
        )
        if parsed is not None:
            out[arch] = parsed
        del value
    return out


def _read_build(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("build", index)
    row = _Row(file, path, data, "[[build]]", _BUILD_KEYS, ("series", "variant", "arch"))
    series = row.parse(
        "series", row.text("series"), _series, "a release series", 'write MAJOR.MINOR, e.g. "2.7"'
    )
    variant = row.text("variant")
    kind = variant_kind(variant) if variant is not None else None
    if variant is not None and kind is None:
        row.fail(("variant",), "not a variant name", variant, _VARIANT_HINT)
    elif kind == "cpu":
        row.fail(
            ("variant",),
            "cpu builds are implied by torch.toml and need no [[build]] row",
            variant,
            "drop this row",
        )

    def targets(platform: str, key: str) -> tuple[ArchTarget, ...] | None:
        items = row.strings(key, (platform,))
        if items is None:
            return None
        out = []
        for item in items:
            target = row.parse(key, item, ArchTarget.parse, "an arch target", _ARCH_HINT, (platform,))
            if target is None:
                continue
            if target.ptx and platform.startswith("windows-"):
                row.fail(
                    (key, platform),
                    "Windows wheels carry no PTX",
                    item,
                    f'write "{target.cc}" (PTX is embedded only in Linux builds)',
                )
            out.append(target)
        if len({t.cc for t in out}) != len(out):
            row.fail((key, platform), "arch listed twice", items, "list each compute capability once")
        if kind == "rocm" and out:
            row.fail((key, platform), "a ROCm build has no CUDA arch list", items, "write []")
        return tuple(out)

    arch = _platform_table(row, "arch", targets)
    if kind == "cuda" and row.table("arch") is not None and not arch and row.ok:
        row.fail(
            ("arch",),
            "a CUDA build needs at least one platform with an arch list",
            None,
            'add e.g. linux-x86_64 = ["8.0", "9.0"]',
        )
    unverified_platforms = row.strings("unverified_platforms") or []
    for platform in unverified_platforms:
        if platform not in arch:
            row.fail(
                ("unverified_platforms",),
                "unverified platform has no arch list in this build",
                platform,
                "list only platforms under [build.arch]",
            )
    sources = _cite(row, state)
    note = row.text("note")
    unverified = row.flag("unverified")
    replace = row.flag("replace")
    if row.ok and series is not None and variant is not None and kind is not None:
        build = Build(
            series=series,
            variant=variant,
            kind=kind,
            cuda=variant_cuda(variant),
            arch=arch,
            unverified=unverified,
            unverified_platforms=frozenset(unverified_platforms),
            sources=sources,
            note=note,
        )
        state.builds.add((series, variant), build, _Origin(file, path), replace, f"{series} {variant}")


def _series(text: str) -> str:
    if not _SERIES.match(text):
        raise ValueError(text)
    return text


def _drivers(row: _Row, key: str) -> dict[str, DriverVersion]:
    table = row.table(key)
    out: dict[str, DriverVersion] = {}
    for os_name in table or {}:
        if os_name not in OS_KEYS:
            row.fail((key, os_name), "unknown OS for a driver floor", os_name, "one of linux, windows")
            continue
        text: str | None = row.typed(key, str, "a driver version string", (os_name,))
        parsed = row.parse(
            key, text, DriverVersion.parse, "an NVIDIA driver version", _DRIVER_HINT, (os_name,)
        )
        if parsed is not None:
            out[os_name] = parsed
    return out


def _unverified_os(row: _Row, drivers: Mapping[str, DriverVersion], key: str) -> frozenset[str]:
    listed = row.strings("unverified_os") or []
    for os_name in listed:
        if os_name not in OS_KEYS:
            row.fail(("unverified_os",), "unknown OS", os_name, "one of linux, windows")
        elif os_name in drivers:
            row.fail(
                ("unverified_os",),
                f"{os_name} has a {key} value but is listed as unverified",
                os_name,
                f"drop the {key} value or the unverified_os entry",
            )
    return frozenset(listed)


def _read_family(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("family", index)
    row = _Row(
        file,
        path,
        data,
        "[[family]]",
        _FAMILY_KEYS,
        ("major", "minor_version_compatibility", "min_driver", "cc_min", "cc_max"),
    )
    major: int | None = row.typed("major", int, "an integer")
    mvc = row.flag("minor_version_compatibility")
    if "minor_version_compatibility" in row.data and not isinstance(
        row.raw("minor_version_compatibility"), bool
    ):
        mvc = False
    drivers = _drivers(row, "min_driver")
    unverified_os = _unverified_os(row, drivers, "min_driver")
    if row.table("min_driver") is not None:
        for os_name in OS_KEYS:
            if os_name not in drivers and os_name not in unverified_os and row.ok:
                row.fail(
                    ("min_driver",),
                    f"no {os_name} driver floor",
                    None,
                    f'add {os_name} = "...", or list "{os_name}" in unverified_os if it is unknown',
                )
    cc_min, cc_max = row.cc("cc_min"), row.cc("cc_max")
    if cc_min is not None and cc_max is not None and cc_min > cc_max:
        row.fail(("cc_max",), f"cc_max is below cc_min {cc_min}", str(cc_max), "swap them")
    sources = _cite(row, state)
    note = row.text("note")
    replace = row.flag("replace")
    if row.ok and major is not None and cc_min is not None and cc_max is not None:
        family = CudaFamily(major, mvc, drivers, cc_min, cc_max, unverified_os, sources, note)
        state.families.add(major, family, _Origin(file, path), replace, f"CUDA {major}.x")


def _read_toolkit(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("toolkit", index)
    row = _Row(file, path, data, "[[toolkit]]", _TOOLKIT_KEYS, ("version", "driver"))
    version = row.version("version")
    drivers = _drivers(row, "driver")
    unverified_os = _unverified_os(row, drivers, "driver")
    unverified = row.flag("unverified")
    if row.table("driver") is not None and not unverified:
        for os_name in OS_KEYS:
            if os_name not in drivers and os_name not in unverified_os and row.ok:
                row.fail(
                    ("driver",),
                    f"no {os_name} driver",
                    None,
                    f'add {os_name} = "...", or list "{os_name}" in unverified_os if it is unknown',
                )
    sources = _cite(row, state)
    note = row.text("note")
    replace = row.flag("replace")
    if row.ok and version is not None:
        toolkit = CudaToolkit(version, drivers, unverified, sources, unverified_os, note)
        state.toolkits.add(version, toolkit, _Origin(file, path), replace, f"CUDA {version}")


def _read_gpu(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("gpu", index)
    row = _Row(file, path, data, "[[gpu]]", _GPU_KEYS, ("cc", "architecture", "products"))
    cc = row.cc("cc")
    architecture = row.text("architecture")
    products = row.strings("products") or []
    aliases = []
    for item in row.strings("aliases") or []:
        alias = row.parse("aliases", item, ComputeCapability.parse, "a compute capability", _CC_HINT)
        if alias is not None:
            aliases.append(alias)
    first, removed = row.version("first_cuda"), row.version("removed_in_cuda")
    if first is not None and removed is not None and removed <= first:
        row.fail(
            ("removed_in_cuda",),
            f"removed_in_cuda is not after first_cuda {first}",
            str(removed),
            "removed_in_cuda names the first toolkit that can no longer target it",
        )
    sources = _cite(row, state)
    tegra, unverified, replace = row.flag("tegra"), row.flag("unverified"), row.flag("replace")
    note = row.text("note")
    if row.ok and cc is not None and architecture is not None:
        gpu = GpuArch(
            cc,
            architecture,
            tuple(products),
            tegra,
            tuple(aliases),
            first,
            removed,
            unverified,
            sources,
            note,
        )
        state.gpus.add(cc, gpu, _Origin(file, path), replace, f"compute capability {cc}")


def _read_pair(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("pair", index)
    row = _Row(file, path, data, "[[pair]]", _PAIR_KEYS, ("torch", "torchvision", "torchaudio"))
    torch = row.version("torch")
    companions: dict[str, Version | None] = {}
    for name in ("torchvision", "torchaudio"):
        text = row.text(name)
        if text == "none":
            companions[name] = None
        else:
            companions[name] = row.parse(
                name,
                text,
                _parse_version,
                'a version or "none"',
                f'write the {name} version, or "none" if no release pairs with it',
            )
    sources = _cite(row, state)
    note = row.text("note")
    unverified, replace = row.flag("unverified"), row.flag("replace")
    if row.ok and torch is not None:
        pair = CompanionPair(
            torch, companions["torchvision"], companions["torchaudio"], unverified, sources, note
        )
        state.pairs.add(torch, pair, _Origin(file, path), replace, f"torch {torch}")


def _read_transformers(file: _File, index: int, data: object, state: _State) -> None:
    path: Path_ = ("release", index)
    row = _Row(file, path, data, "[[release]]", _TRANSFORMERS_KEYS, ("version", "requires_python", "torch"))
    version = row.version("version")
    requires = row.spec("requires_python")
    torch = row.spec("torch")
    runtime_min = row.version("runtime_min_torch")
    upload = row.date("upload_date")
    sources = _cite(row, state)
    note = row.text("note")
    yanked, unverified, replace = row.flag("yanked"), row.flag("unverified"), row.flag("replace")
    if row.ok and version is not None and requires is not None and torch is not None:
        release = TransformersRelease(
            version, requires, torch, runtime_min, yanked, upload, unverified, sources, note
        )
        state.transformers.add(version, release, _Origin(file, path), replace, f"transformers {version}")


def _read_platforms(file: _File, state: _State) -> None:
    data = file.data.get("platforms")
    if data is None:
        if file.layer == 0:
            file.problem(
                (),
                "torch.toml has no [platforms] table",
                None,
                'add [platforms] with rocm = ["linux-x86_64"] and unlabelled = [...]',
            )
        return
    row = _Row(file, ("platforms",), data, "[platforms]", ("rocm", "unlabelled"), ("rocm", "unlabelled"))
    for key, target in (("rocm", state.rocm_platforms), ("unlabelled", state.unlabelled_platforms)):
        for item in row.strings(key) or []:
            if row.parse(key, item, _parse_platform, "a platform", _PLATFORM_HINT) is not None:
                target.add(item)
    state.platforms_set = True
    index = file.data.get("index")
    if index is not None:
        row = _Row(file, ("index",), index, "[index]", ("bound_packages",), ("bound_packages",))
        packages = row.strings("bound_packages")
        if packages is not None:
            state.index_bound = [*(state.index_bound or []), *packages]


_ROW_READERS: dict[str, tuple[tuple[str, Callable[[_File, int, object, _State], None]], ...]] = {
    "torch.toml": (("release", _read_release),),
    "builds.toml": (("build", _read_build),),
    "cuda.toml": (("family", _read_family), ("toolkit", _read_toolkit)),
    "gpus.toml": (("gpu", _read_gpu),),
    "companions.toml": (("pair", _read_pair),),
    "transformers.toml": (("release", _read_transformers),),
}


def _parse_file(path: Path, layer: int, state: _State) -> _File | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        state.problems.append(MatrixProblem(Location(str(path)), f"cannot read matrix file: {exc.strerror}"))
        return None
    text = raw.decode("utf-8", errors="replace")
    file = _File(path, layer, text, {}, state.problems)
    try:
        file.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _SYNTAX_AT.search(message)
        line = int(at.group(1)) if at else None
        message = _SYNTAX_AT.sub("", message)
        state.problems.append(
            MatrixProblem(
                Location(str(path), line),
                f"TOML syntax error: {message}",
                None,
                "fix the TOML syntax; every other check waits for it",
            )
        )
        return None
    for key in file.data:
        allowed = _TOP_KEYS[path.name]
        if key not in allowed:
            hint = _did_you_mean(key, allowed) or "allowed: " + ", ".join(allowed)
            file.problem((key,), f"unknown top-level key in {path.name}", key, hint)
    for key, _reader in _ROW_READERS.get(path.name, ()):
        rows = file.data.get(key, [])
        if not isinstance(rows, list):
            file.problem(
                (key,), f"expected [[{key}]] rows", _short(rows), f"write each row under a [[{key}]] header"
            )
            file.data[key] = []
    return file


def _layer_files(directory: Path, layer: int, state: _State) -> list[_File]:
    if not directory.is_dir():
        state.problems.append(
            MatrixProblem(
                Location(str(directory)),
                "matrix directory not found",
                None,
                "point --matrix (or $STACK_RESOLVER_MATRIX) at a directory of *.toml files",
            )
        )
        return []
    files = []
    for name in MATRIX_FILES:
        path = directory / name
        if not path.exists():
            if layer == 0:
                state.problems.append(
                    MatrixProblem(
                        Location(str(path)),
                        "matrix file missing",
                        None,
                        f"a matrix directory holds {', '.join(MATRIX_FILES)}",
                    )
                )
            continue
        parsed = _parse_file(path, layer, state)
        if parsed is not None:
            files.append(parsed)
    for path in sorted(directory.glob("*.toml")):
        if path.name not in MATRIX_FILES and path.name not in AUXILIARY_FILES:
            state.problems.append(
                MatrixProblem(
                    Location(str(path)),
                    "unknown matrix file",
                    path.name,
                    _did_you_mean(path.name, MATRIX_FILES) or f"matrix files are {', '.join(MATRIX_FILES)}",
                )
            )
    return files


def _synthesize_builds(state: _State) -> None:
    """cpu builds for every release listing cpu, ROCm builds on the ROCm platforms."""
    for release, _ in state.releases.rows.values():
        for variant in release.variants:
            kind = variant_kind(variant)
            if kind not in ("cpu", "rocm"):
                continue
            key = (release.series, variant)
            platforms = set(release.python) if kind == "cpu" else set(release.python) & state.rocm_platforms
            existing = state.builds.rows.get(key)
            if existing is not None:
                build, origin = existing
                if kind == "rocm" and not build.arch:
                    continue
                if kind == "rocm":  # an explicit ROCm row: keep its flags, fill in the platforms
                    platforms |= set(build.arch)
                    state.builds.rows[key] = (
                        Build(
                            build.series,
                            variant,
                            "rocm",
                            None,
                            {p: () for p in sorted(platforms)},
                            build.unverified,
                            build.unverified_platforms,
                            build.sources,
                            build.note,
                        ),
                        origin,
                    )
                    continue
                platforms |= set(build.arch)
            build = Build(
                release.series,
                variant,
                kind,
                None,
                {p: () for p in sorted(platforms)},
                sources=release.sources,
            )
            state.builds.rows[key] = (build, existing[1] if existing else _Origin(_NO_FILE, ()))


_NO_FILE = _File(Path("<implied>"), 0, "", {}, [])


def _load(
    directory: Path | None, overlays: Sequence[Path], consistency: bool
) -> tuple[list[MatrixProblem], Matrix | None]:
    base = Path(directory) if directory is not None else default_matrix_dir()
    state = _State()
    layers = [base, *(Path(o) for o in overlays)]
    for layer, root in enumerate(layers):
        for file in _layer_files(root, layer, state):
            state.files.append(file)
    for file in state.files:
        if file.path.name == "sources.toml":
            _read_sources(file, state)
        elif file.path.name == "torch.toml":
            _read_platforms(file, state)
        for key, reader in _ROW_READERS.get(file.path.name, ()):
            for index, data in enumerate(file.data.get(key, [])):
                reader(file, index, data, state)
    _check_citations(state)
    _synthesize_builds(state)
    matrix = Matrix(
        version="+".join(state.versions) or "unknown",
        directories=tuple(layers),
        sources={key: value for key, (value, _) in state.sources.rows.items()},
        torch=tuple(sorted(state.releases.values(), key=lambda r: r.version, reverse=True)),
        builds={key: value for key, (value, _) in state.builds.rows.items()},
        cuda_families={key: value for key, (value, _) in sorted(state.families.rows.items())},
        toolkits=tuple(sorted(state.toolkits.values(), key=lambda t: t.version)),
        gpus={key: value for key, (value, _) in sorted(state.gpus.rows.items())},
        companions={key: value for key, (value, _) in state.pairs.rows.items()},
        transformers=tuple(sorted(state.transformers.values(), key=lambda t: t.version, reverse=True)),
        rocm_platforms=frozenset(state.rocm_platforms)
        if state.platforms_set
        else frozenset({"linux-x86_64"}),
        unlabelled_platforms=frozenset(state.unlabelled_platforms)
        if state.platforms_set
        else frozenset({"macos-arm64", "macos-x86_64"}),
        index_bound_packages=tuple(dict.fromkeys(state.index_bound))
        if state.index_bound is not None
        else ("pytorch-triton-rocm", "pytorch-triton-xpu"),
    )
    if consistency and not state.problems:
        _check_consistency(matrix, state)
    return state.problems, (matrix if not state.problems else None)


def load_matrix(
    directory: Path | None = None, overlays: Sequence[Path] = (), *, consistency: bool = True
) -> Matrix:
    """Load and check a matrix directory (default: `default_matrix_dir()`) plus overlay directories.

    Raises `MatrixError` carrying every problem found. `consistency=False` skips the cross-file
    checks (companions for every release, arch lists within what CUDA can target, ...).
    """
    problems, matrix = _load(directory, overlays, consistency)
    if problems or matrix is None:
        raise MatrixError(problems or [MatrixProblem(Location(str(directory)), "matrix could not be loaded")])
    return matrix


def validate_matrix(directory: Path | None = None, overlays: Sequence[Path] = ()) -> list[MatrixProblem]:
    """Every problem in a matrix directory (and overlays): syntax, rows, and cross-file consistency."""
    problems, _ = _load(directory, overlays, True)
    return problems


# --- consistency -------------------------------------------------------------------------------


def _check_consistency(matrix: Matrix, state: _State) -> None:
    releases = state.releases.rows
    builds = state.builds.rows
    gpu_by_cc: dict[ComputeCapability, GpuArch] = {}
    for cc, (arch_row, origin) in state.gpus.rows.items():
        gpu_by_cc.setdefault(cc, arch_row)
        for alias in arch_row.aliases:
            if alias in state.gpus.rows:
                origin.problem(
                    ("aliases",),
                    f"alias {alias} is also a [[gpu]] row of its own",
                    str(alias),
                    "keep one row per part; list the other number only as an alias",
                )
            gpu_by_cc.setdefault(alias, arch_row)

    for version, (release, origin) in releases.items():
        if version not in state.pairs.rows:
            origin.problem(
                ("version",),
                f"torch {version} has no [[pair]] in companions.toml",
                str(version),
                'add a [[pair]] row (torchvision/torchaudio = "none" where nothing pairs)',
            )
        for variant in release.variants:
            kind = variant_kind(variant)
            if kind == "cuda" and (release.series, variant) not in builds:
                origin.problem(
                    ("variants",),
                    f"no [[build]] row for {release.series} {variant}",
                    variant,
                    f'add a [[build]] with series = "{release.series}", variant = "{variant}" to builds.toml',
                )
        for platform, variant in release.default_variant.items():
            build = matrix.builds.get((release.series, variant))
            if build is not None and platform not in build.platforms:
                origin.problem(
                    ("default_variant", platform),
                    f"default variant {variant} has no {platform} wheels in builds.toml",
                    variant,
                    f"add {platform} to the {release.series} {variant} [build.arch]",
                )

    series_platforms: dict[str, set[str]] = {}
    series_variants: dict[str, set[str]] = {}
    for release, _ in releases.values():
        series_platforms.setdefault(release.series, set()).update(release.python)
        series_variants.setdefault(release.series, set()).update(release.variants)

    for (series, variant), (build, origin) in builds.items():
        if origin.file is _NO_FILE:
            continue
        if variant not in series_variants.get(series, set()):
            origin.problem(
                ("variant",),
                f"no torch {series}.x release lists {variant}",
                variant,
                f"add {variant} to the variants of the {series} releases in torch.toml, or drop this row",
            )
            continue
        for platform in sorted(set(build.arch) - series_platforms.get(series, set())):
            origin.problem(
                ("arch", platform),
                f"torch {series} publishes no {platform} wheels",
                platform,
                "drop the platform, or add it to [release.python] in torch.toml",
            )
        if build.kind != "cuda" or build.cuda is None:
            continue
        cuda = build.cuda
        family = matrix.cuda_families.get(cuda.major)
        if matrix.toolkit(cuda) is None:
            origin.problem(
                ("variant",),
                f"variant {variant} names CUDA {cuda}, which has no [[toolkit]] in cuda.toml",
                variant,
                f'add a [[toolkit]] with version = "{cuda}" (and its driver) to cuda.toml',
            )
        if family is None:
            origin.problem(
                ("variant",),
                f"variant {variant} names CUDA {cuda.major}.x, which has no [[family]]",
                variant,
                f"add a [[family]] with major = {cuda.major} to cuda.toml",
            )
        for platform, targets in build.arch.items():
            for target in targets:
                gpu = gpu_by_cc.get(target.cc)
                if family is not None and not family.can_target(target.cc):
                    origin.problem(
                        ("arch", platform),
                        f"CUDA {cuda.major}.x cannot target {target.cc.sm} "
                        f"(it targets {family.cc_min} to {family.cc_max})",
                        str(target),
                        "drop the target, or correct cc_min/cc_max in cuda.toml",
                    )
                elif gpu is None:
                    origin.problem(
                        ("arch", platform),
                        f"{target.cc.sm} names no GPU in gpus.toml",
                        str(target),
                        f'add a [[gpu]] with cc = "{target.cc}", or correct the target',
                    )
                elif not gpu.targetable_by(cuda) and target.cc not in gpu.aliases:
                    origin.problem(
                        ("arch", platform),
                        f"CUDA {cuda} cannot target {target.cc.sm} ({_cuda_span(gpu)})",
                        str(target),
                        "drop the target, or correct gpus.toml",
                    )

    for version, (_toolkit, origin) in state.toolkits.rows.items():
        if version.major not in matrix.cuda_families:
            origin.problem(
                ("version",),
                f"CUDA {version} has no [[family]] for major {version.major}",
                str(version),
                f"add a [[family]] with major = {version.major}",
            )

    for version, (_pair, origin) in state.pairs.rows.items():
        if version not in releases:
            origin.problem(
                ("torch",),
                f"pairs torch {version}, which has no [[release]] in torch.toml",
                str(version),
                "add the release to torch.toml, or drop this row",
            )


def _cuda_span(gpu: GpuArch) -> str:
    first = f"from CUDA {gpu.first_cuda}" if gpu.first_cuda else ""
    removed = f"removed in CUDA {gpu.removed_in_cuda}" if gpu.removed_in_cuda else ""
    return ", ".join(p for p in (first, removed) if p) or "never targetable"
