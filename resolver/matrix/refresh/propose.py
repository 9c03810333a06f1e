"""`stack-resolver matrix refresh`: propose matrix rows from what the package indexes publish.

Reads the general index (PEP 691 JSON or PEP 503 HTML listings, PEP 658 metadata) for torch,
torchvision, torchaudio and transformers, and the PyTorch index (one torch listing per variant),
derives the facts a listing can give, compares them with the matrix, and edits the TOML files
with tomlkit: new rows in each file's own style and order, changed flags in place, everything
else byte for byte. The result is a unified diff for review; `write_proposal` applies it, and only
after every file was computed and the edited copy validates.

What an index cannot tell (the GPU architectures a build carries, transformers' import-time torch
gate, a pairing that is not an exact pin) is written with `unverified = true` and a note naming
what to confirm and where.
"""

from __future__ import annotations

import difflib
import email.parser
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import tomlkit
from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from tomlkit.items import AoT, Table

from resolver.config import Indexes
from resolver.errors import ExternalToolError, InputError, Location, MatrixError, MatrixProblem
from resolver.fsutil import atomic_write_text
from resolver.index.client import IndexClient, IndexFile
from resolver.matrix.arch import ArchTarget
from resolver.matrix.load import (
    MATRIX_FILES,
    PLATFORMS,
    Build,
    Matrix,
    TorchRelease,
    TransformersRelease,
    load_matrix,
    validate_matrix,
)
from resolver.matrix.vocab import Variant, python_key, variant_cuda, variant_kind

KINDS = ("torch", "transformers")
COMPANIONS = ("torchvision", "torchaudio")
PYTORCH_INDEX_SOURCE = "pytorch_index"
_NO_GENERAL_HINT = (
    "set STACK_RESOLVER_INDEX_URL, [indexes] general in envs/team.toml, or index-url in pip.conf "
    "to the simple API of the general index (PyPI or your mirror of it)"
)
_PYTORCH_INDEX_TITLE = "PyTorch download index: the torch listing of each variant (wheel file names)"
_PYTORCH_INDEX_NOTE = "added by matrix refresh; the variant replaces {variant} in the URL, or is appended"
_FAULTY_HINT = "the index or a proxy in front of it is faulty; nothing was written"

# Sources the new rows cite, added to sources.toml when the matrix lacks them. The general index
# is named by these keys (never by its host name); the PyTorch index by its configured URL.
_REGISTRY_SOURCES = {
    "pypi_torch": "PyPI project 'torch': file list (wheel tags, requires-python, upload time) and METADATA",
    "pypi_torchvision": "PyPI project 'torchvision': file list and METADATA Requires-Dist",
    "pypi_torchaudio": "PyPI project 'torchaudio': file list and METADATA Requires-Dist",
    "pypi_transformers": "PyPI project 'transformers': file list and METADATA Requires-Python, Requires-Dist",
}


# --- wheel file names -> platforms, Pythons, floors (pure) ---------------------------------------

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


def tag_python(interpreter: str, abi: str) -> str | None:
    """`cp311`/`cp311` -> "3.11"; `cp313`/`cp313t` -> "3.13t"; anything but CPython -> None."""
    match = _CPYTHON.match(interpreter)
    if not match:
        return None
    python = f"{match.group(1)}.{match.group(2)}"
    return python + "t" if abi == f"{interpreter}t" else python


@dataclass(frozen=True)
class Wheel:
    """One listed wheel, its tags read into matrix terms."""

    file: IndexFile
    version: Version
    # platform -> floor of this wheel there (lowest of its tags); None where the tag has none
    platforms: Mapping[str, Version | None]
    pythons: frozenset[str]

    @property
    def public(self) -> Version:
        return Version(self.version.public)

    @property
    def local(self) -> str | None:
        return self.version.local


def read_wheel(file: IndexFile) -> Wheel:
    """Raises InvalidWheelFilename for a name that is not a wheel's."""
    _name, version, _build, tags = parse_wheel_filename(file.filename)
    platforms: dict[str, Version | None] = {}
    pythons: set[str] = set()
    for tag in tags:
        python = tag_python(tag.interpreter, tag.abi)
        if python is not None:
            pythons.add(python)
        for platform, floor in tag_platforms(tag.platform):
            if platform not in platforms:
                platforms[platform] = floor
            else:
                known = platforms[platform]
                platforms[platform] = (
                    floor if known is None or (floor is not None and floor < known) else known
                )
    return Wheel(file, version, platforms, frozenset(pythons))


def variant_sort_key(variant: str) -> tuple[int, Version]:
    """cpu, then CUDA ascending, then ROCm ascending: the order torch.toml lists variants in."""
    parsed = Variant.of(variant)
    return parsed.listing_key if parsed else (0, Version("0"))


@dataclass(frozen=True)
class PlatformFacts:
    python: Mapping[str, tuple[str, ...]]  # platform -> Pythons, in PLATFORMS order
    glibc_min: Mapping[str, Version]  # CPU arch -> highest floor among the wheels
    macos_min: Mapping[str, Version]
    # Linux arches with wheels whose tags give no glibc floor (plain linux_* tags)
    unfloored: frozenset[str] = frozenset()


def platform_facts(wheels: Iterable[Wheel]) -> PlatformFacts:
    """Pythons per platform and floors per CPU arch. A floor is the highest of the wheels' floors:
    the matrix keeps one per arch, and the highest is the one every listed wheel satisfies."""
    python: dict[str, set[str]] = {}
    glibc: dict[str, Version] = {}
    macos: dict[str, Version] = {}
    linux_arches: set[str] = set()
    for wheel in wheels:
        for platform, floor in wheel.platforms.items():
            if platform not in PLATFORMS:
                continue
            python.setdefault(platform, set()).update(wheel.pythons)
            os_name, arch = platform.split("-", 1)
            target = glibc if os_name == "linux" else macos if os_name == "macos" else None
            if os_name == "linux":
                linux_arches.add(arch)
            if target is not None and floor is not None and (arch not in target or floor > target[arch]):
                target[arch] = floor
    ordered = {p: tuple(sorted(python[p], key=python_key)) for p in PLATFORMS if python.get(p)}
    return PlatformFacts(ordered, glibc, macos, frozenset(linux_arches - set(glibc)))


def wheel_variant(wheel: Wheel, unlabelled: frozenset[str]) -> str | None:
    """The variant a PyTorch-index wheel belongs to: its local label (`+cu128`), or cpu for the
    unlabelled wheels of the platforms that carry no label (macOS)."""
    local = wheel.local
    if local is not None:
        return local if variant_kind(local) is not None else None
    if wheel.platforms and set(wheel.platforms) <= unlabelled:
        return "cpu"
    return None


# --- METADATA (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    requires_python: str | None
    requires_dist: tuple[str, ...]


def parse_metadata(text: str) -> Metadata:
    message = email.parser.HeaderParser().parsestr(text)
    requires = tuple(str(v) for v in message.get_all("Requires-Dist") or ())
    python = message.get("Requires-Python")
    return Metadata(str(python).strip() if python else None, requires)


_MARKER_ENV = {
    "linux-x86_64": ("Linux", "x86_64", "linux", "posix"),
    "linux-aarch64": ("Linux", "aarch64", "linux", "posix"),
    "windows-x86_64": ("Windows", "AMD64", "win32", "nt"),
    "macos-arm64": ("Darwin", "arm64", "darwin", "posix"),
    "macos-x86_64": ("Darwin", "x86_64", "darwin", "posix"),
}


def _requirements(lines: Iterable[str]) -> list[Requirement]:
    out = []
    for line in lines:
        try:
            out.append(Requirement(line))
        except InvalidRequirement:
            continue  # one unreadable line does not hide the rest
    return out


def _marker_true(requirement: Requirement, environment: Mapping[str, str]) -> bool:
    if requirement.marker is None:
        return True
    try:
        return bool(requirement.marker.evaluate(dict(environment)))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


# The CUDA runtime a CUDA wheel of torch pins, by the names torch has used for it.
_CUDA_RUNTIME = re.compile(r"^(nvidia-cuda-runtime(-cu\d+)?|cuda-toolkit)$")


def cuda_variant(requires_dist: Sequence[str], platform: str, python: str) -> str | None:
    """The cuXY variant of a torch wheel from its pinned CUDA runtime (None: a CPU wheel)."""
    system, machine, sys_platform, os_name = _MARKER_ENV.get(platform, _MARKER_ENV["linux-x86_64"])
    bare = python.rstrip("t")
    environment = {
        "platform_system": system,
        "platform_machine": machine,
        "sys_platform": sys_platform,
        "os_name": os_name,
        "python_version": bare,
        "python_full_version": f"{bare}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    for requirement in _requirements(requires_dist):
        if not _CUDA_RUNTIME.match(canonicalize_name(requirement.name)):
            continue
        if not _marker_true(requirement, environment):
            continue
        for spec in requirement.specifier:
            if spec.operator in ("==", "==="):
                try:
                    version = Version(spec.version.removesuffix(".*"))
                except InvalidVersion:
                    continue
                return f"cu{version.major}{version.minor}"
    return None


def torch_extra(requires_dist: Sequence[str]) -> str:
    """The specifier transformers' `torch` extra puts on torch ("" = any torch)."""
    spec = SpecifierSet()
    for requirement in _requirements(requires_dist):
        if canonicalize_name(requirement.name) != "torch" or requirement.marker is None:
            continue
        if "extra" not in str(requirement.marker):
            continue
        if _marker_true(requirement, {"extra": "torch"}):
            spec &= requirement.specifier
    return str(spec)


def torch_pin(requires_dist: Sequence[str]) -> SpecifierSet | None:
    """A companion's own requirement on torch (not one behind an extra); None if it has none."""
    found: SpecifierSet | None = None
    for requirement in _requirements(requires_dist):
        if canonicalize_name(requirement.name) != "torch":
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        found = requirement.specifier if found is None else found & requirement.specifier
    return found


def exact_pin(spec: SpecifierSet | None) -> Version | None:
    """`==2.7.1` (or `==2.7.1+cu126`) -> 2.7.1; any other specifier -> None."""
    if spec is None:
        return None
    items = list(spec)
    if len(items) != 1 or items[0].operator not in ("==", "===") or "*" in items[0].version:
        return None
    try:
        return Version(Version(items[0].version).public)
    except InvalidVersion:
        return None


# --- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchFacts:
    version: Version
    date: str
    requires_python: str
    platforms: PlatformFacts
    glibc_min: Mapping[str, Version]
    variants: tuple[str, ...]
    default_variant: Mapping[str, str]
    # variant -> platforms with wheels of that variant
    variant_platforms: Mapping[str, frozenset[str]]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransformersFacts:
    version: Version
    upload_date: str | None
    requires_python: str
    torch: str
    yanked: bool


@dataclass(frozen=True)
class CompanionRelease:
    name: str
    version: Version
    torch: SpecifierSet | None


@dataclass(frozen=True)
class Proposal:
    """What a refresh would change: old and new text of each changed file, and a summary."""

    directory: Path
    old: Mapping[str, str]
    new: Mapping[str, str]
    summary: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(name for name in MATRIX_FILES if name in self.new and self.new[name] != self.old[name])

    def diff(self) -> str:
        chunks: list[str] = []
        for name in self.changed:
            label = _diff_label(self.directory / name)
            chunks.extend(
                difflib.unified_diff(
                    self.old[name].splitlines(keepends=True),
                    self.new[name].splitlines(keepends=True),
                    fromfile=f"a/{label}" if not label.startswith("/") else label,
                    tofile=f"b/{label}" if not label.startswith("/") else label,
                )
            )
        return "".join(chunks)


def _diff_label(path: Path) -> str:
    """The path relative to the working directory (git-style a/ b/ headers), else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


# --- reading the indexes -----------------------------------------------------------------------


@dataclass
class _Reader:
    client: IndexClient
    indexes: Indexes
    general: str
    warnings: list[str] = field(default_factory=list)

    def wheels(self, index_url: str, project: str) -> list[Wheel]:
        url = self.client.project_url(index_url, project)
        out = []
        for file in self.client.files(index_url, project):
            if not file.filename.endswith(".whl"):
                continue
            try:
                out.append(read_wheel(file))
            except (InvalidWheelFilename, InvalidVersion):
                raise ExternalToolError(
                    f"{url} lists a wheel whose file name cannot be read: {file.filename!r}",
                    hint=_FAULTY_HINT,
                ) from None
        return out

    def releases(self, project: str) -> dict[Version, list[IndexFile]]:
        """Files of a project on the general index by public version (wheels and sdists)."""
        url = self.client.project_url(self.general, project)
        out: dict[Version, list[IndexFile]] = {}
        for file in self.client.files(self.general, project):
            try:
                if file.filename.endswith(".whl"):
                    version = parse_wheel_filename(file.filename)[1]
                else:
                    version = parse_sdist_filename(file.filename)[1]
            except (InvalidWheelFilename, InvalidVersion):
                raise ExternalToolError(
                    f"{url} lists a wheel whose file name cannot be read: {file.filename!r}",
                    hint=_FAULTY_HINT,
                ) from None
            except InvalidSdistFilename:
                continue  # installers and odd legacy archives carry no facts for the matrix
            out.setdefault(Version(version.public), []).append(file)
        return out

    def metadata(self, files: Sequence[IndexFile], prefer: str = "linux-x86_64") -> Metadata | None:
        """METADATA of one file (a `prefer` platform wheel first); None where none is served."""
        candidates = [f for f in files if f.has_metadata]
        if not candidates:
            return None

        def rank(file: IndexFile) -> tuple[int, str]:
            platform_tags = file.filename.removesuffix(".whl").rsplit("-", 1)[-1]
            platforms = [p for p, _ in tag_platforms_all(platform_tags)]
            return (0 if prefer in platforms else 1, file.filename)

        chosen = min(candidates, key=rank)
        return parse_metadata(self.client.metadata(chosen))


def tag_platforms_all(compressed: str) -> list[tuple[str, Version | None]]:
    """tag_platforms over a compressed platform tag set (`manylinux_2_27_x86_64.manylinux_2_28_x86_64`)."""
    return [item for part in compressed.split(".") for item in tag_platforms(part)]


def _upload_day(files: Iterable[IndexFile]) -> str | None:
    times = sorted(f.upload_time for f in files if f.upload_time)
    day = times[0][:10] if times else None
    try:
        return date.fromisoformat(day).isoformat() if day else None
    except ValueError:
        return None


def _all_yanked(files: Sequence[IndexFile]) -> bool:
    return bool(files) and all(f.yanked for f in files)


def candidate_variants(matrix: Matrix, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Variants to look for on the PyTorch index: every variant the matrix names, one per CUDA
    toolkit in cuda.toml (a variant without a toolkit could not validate anyway), and `extra`."""
    names = {v for release in matrix.torch for v in release.variants}
    for toolkit in matrix.toolkits:
        names.add(f"cu{toolkit.version.major}{toolkit.version.minor}")
    names.update(extra)
    return tuple(sorted((n for n in names if variant_kind(n) is not None), key=variant_sort_key))


# --- the proposal ------------------------------------------------------------------------------


def propose(
    directory: Path,
    indexes: Indexes,
    client: IndexClient,
    *,
    today: date,
    only: Iterable[str] = KINDS,
    extra_variants: Iterable[str] = (),
) -> Proposal:
    """Compare the indexes with the matrix in `directory` and edit copies of its files.

    Raises InputError when no general index is configured or the proposal does not validate,
    ExternalToolError when an index fails or sends a listing that cannot be read. Writes nothing.
    """
    kinds = set(only)
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise InputError("unknown refresh kind", value=unknown[0], hint="use " + ", ".join(KINDS))
    if not indexes.general:
        raise InputError("matrix refresh needs a general package index to read", hint=_NO_GENERAL_HINT)
    matrix = load_matrix(directory)
    files = _Files.read(directory)
    reader = _Reader(client, indexes, indexes.general)
    summary: list[str] = []
    if "torch" in kinds:
        summary += _refresh_torch(matrix, files, reader, today, tuple(extra_variants))
    if "transformers" in kinds:
        summary += _refresh_transformers(matrix, files, reader, today)
    if files.changed():  # the matrix version names the day its facts were last brought in
        files.set_meta_version(today.isoformat())
    proposal = Proposal(directory, files.old, files.render(), tuple(summary), tuple(reader.warnings))
    if proposal.changed:
        _validate(proposal)
    return proposal


def write_proposal(proposal: Proposal) -> tuple[Path, ...]:
    """Write the changed files, each atomically; refuses if a file changed since it was read."""
    for name in proposal.changed:
        path = proposal.directory / name
        if path.read_text(encoding="utf-8") != proposal.old[name]:
            raise ExternalToolError(
                f"{path} changed while the refresh ran; nothing was written",
                hint="run `stack-resolver matrix refresh` again",
            )
    written = []
    for name in proposal.changed:
        path = proposal.directory / name
        atomic_write_text(path, proposal.new[name])
        written.append(path)
    return tuple(written)


def _validate(proposal: Proposal) -> None:
    """Load the edited files from a scratch copy; report problems against the real paths."""
    with tempfile.TemporaryDirectory(prefix="stack-resolver-refresh-") as scratch:
        root = Path(scratch)
        for path in sorted(proposal.directory.glob("*.toml")):
            text = proposal.new.get(path.name, path.read_text(encoding="utf-8"))
            atomic_write_text(root / path.name, text)
        problems = validate_matrix(root)
    if problems:
        raise MatrixError(
            [
                MatrixProblem(
                    Location(
                        str(proposal.directory / Path(p.location.file).name) + " (as refreshed)",
                        p.location.line,
                        p.location.key,
                    ),
                    p.message,
                    p.value,
                    (p.hint or "") + " (the refresh would make the matrix invalid; nothing was written)",
                )
                for p in problems
            ]
        )


# --- torch, torchvision, torchaudio ------------------------------------------------------------


def _refresh_torch(
    matrix: Matrix, files: _Files, reader: _Reader, today: date, extra_variants: tuple[str, ...]
) -> list[str]:
    summary: list[str] = []
    general = reader.wheels(reader.general, "torch")
    by_version: dict[Version, list[Wheel]] = {}
    for wheel in general:
        by_version.setdefault(wheel.public, []).append(wheel)
    known = {r.version for r in matrix.torch}
    oldest = min(known) if known else None
    new_versions = []
    for version, wheels in sorted(by_version.items(), reverse=True):
        yanked = _all_yanked([w.file for w in wheels])
        if version in known:
            if yanked:
                reader.warnings.append(
                    f"torch {version} is yanked on the general index; torch.toml has no yanked flag: "
                    "review whether to drop the release or mark it unverified"
                )
            continue
        if version.is_prerelease or version.is_devrelease or (oldest is not None and version < oldest):
            continue
        if yanked:
            reader.warnings.append(f"torch {version} is yanked on the general index; not added")
            continue
        new_versions.append(version)

    variant_wheels: dict[str, list[Wheel]] = {}
    if new_versions:
        for variant in candidate_variants(matrix, extra_variants):
            variant_wheels[variant] = reader.wheels(reader.indexes.variant_url(variant), "torch")

    companions = _companion_releases(matrix, reader)
    for version in new_versions:
        facts = _torch_facts(matrix, reader, version, by_version[version], variant_wheels, today)
        files.ensure_sources(["pypi_torch", PYTORCH_INDEX_SOURCE], reader, today)
        files.insert("torch.toml", "release", _release_key, _release_snippet(facts, today), (facts.version,))
        pythons = sorted({p for ps in facts.platforms.python.values() for p in ps}, key=python_key)
        summary.append(
            f"torch {version}: new release ({', '.join(facts.variants)}; Python {', '.join(pythons)})"
        )
        for variant in facts.variants:
            if variant_kind(variant) != "cuda":
                continue
            series = f"{version.major}.{version.minor}"
            existing = matrix.builds.get((series, variant))
            if existing is not None:
                for platform in sorted(
                    facts.variant_platforms.get(variant, frozenset()) - existing.platforms
                ):
                    reader.warnings.append(
                        f"torch {version} has {variant} wheels for {platform}, which the {series} "
                        f"{variant} build in builds.toml does not list: add its arch list"
                    )
                continue
            if files.has_build(series, variant):
                continue
            snippet, reference = _build_snippet(matrix, series, variant, facts, today)
            files.insert("builds.toml", "build", _build_key, snippet, _build_sort(series, variant))
            files.note_build(series, variant)
            summary.append(
                f"torch {series} {variant}: new build, unverified (arch list from {reference}; confirm it)"
            )

    summary += _refresh_pairs(matrix, files, reader, companions, new_versions, today)
    return summary


def _torch_facts(
    matrix: Matrix,
    reader: _Reader,
    version: Version,
    general: list[Wheel],
    variant_wheels: Mapping[str, list[Wheel]],
    today: date,
) -> TorchFacts:
    notes: list[str] = []
    unlabelled = matrix.unlabelled_platforms
    variant_platforms: dict[str, set[str]] = {}
    release_wheels = list(general)
    for variant, wheels in variant_wheels.items():
        for wheel in wheels:
            if wheel.public != version or wheel_variant(wheel, unlabelled) != variant:
                continue
            release_wheels.append(wheel)
            variant_platforms.setdefault(variant, set()).update(p for p in wheel.platforms if p in PLATFORMS)
    facts = platform_facts(release_wheels)
    general_facts = platform_facts(general)

    defaults: dict[str, str] = {}
    requires_python = next((w.file.requires_python for w in general if w.file.requires_python), None)
    for platform, pythons in general_facts.python.items():
        on_platform = [w.file for w in general if platform in w.platforms]
        metadata = reader.metadata(on_platform, prefer=platform)
        if metadata is None:
            defaults[platform] = "cpu"
            notes.append(f"no METADATA served for the {platform} wheels: default_variant cpu assumed")
            continue
        requires_python = requires_python or metadata.requires_python
        defaults[platform] = cuda_variant(metadata.requires_dist, platform, pythons[-1]) or "cpu"
    for platform in facts.python:
        if platform not in defaults:
            served = sorted(v for v, ps in variant_platforms.items() if platform in ps)
            defaults[platform] = "cpu" if "cpu" in served else served[0]
            notes.append(
                f"{platform}: wheels only on the PyTorch index, "
                f"default_variant {defaults[platform]} is a placeholder"
            )
    for platform, variant in defaults.items():
        variant_platforms.setdefault(variant, set()).add(platform)
    variants = tuple(sorted(variant_platforms, key=variant_sort_key))

    previous = _previous_release(matrix, version)
    glibc = dict(facts.glibc_min)
    for arch in sorted(facts.unfloored):
        if previous is not None and arch in previous.glibc_min:
            glibc[arch] = previous.glibc_min[arch]
            notes.append(
                f"the {arch} wheel tags give no glibc floor, {glibc[arch]} copied from {previous.version}"
            )
    if requires_python is None:
        requires_python = str(previous.requires_python) if previous is not None else ">=3"
        notes.append("requires-python not published; copied from the previous release")
    day = _upload_day(w.file for w in general)
    if day is None:
        day = today.isoformat()
        notes.append("the listing gives no upload time; date is the day of the refresh")
    return TorchFacts(
        version=version,
        date=day,
        requires_python=requires_python,
        platforms=facts,
        glibc_min=glibc,
        variants=variants,
        default_variant=defaults,
        variant_platforms={v: frozenset(ps) for v, ps in variant_platforms.items()},
        notes=tuple(notes),
    )


def _previous_release(matrix: Matrix, version: Version) -> TorchRelease | None:
    older = [r for r in matrix.torch if r.version < version]
    return max(older, key=lambda r: r.version) if older else None


def _reference_build(matrix: Matrix, series: str, variant: str) -> Build | None:
    """The build whose arch list a new build starts from: the same variant in the newest series
    that has it, else the newest build of the same CUDA major, else the newest CUDA build."""
    cuda = variant_cuda(variant)
    cuda_builds = [b for b in matrix.builds.values() if b.kind == "cuda" and b.cuda is not None]

    def newest(builds: list[Build]) -> Build | None:
        return max(builds, key=lambda b: (Version(b.series), b.cuda or Version("0")), default=None)

    same = newest([b for b in cuda_builds if b.variant == variant and b.series != series])
    if same is not None or cuda is None:
        return same
    major = newest([b for b in cuda_builds if b.cuda is not None and b.cuda.major == cuda.major])
    return major or newest(cuda_builds)


def _copied_arch(
    matrix: Matrix, reference: Build | None, variant: str, platform: str
) -> tuple[list[str], list[str]]:
    """(targets, dropped) for one platform: the reference list (Windows lists carry no PTX),
    without the targets this CUDA version cannot compile for."""
    if reference is None:
        return [], []
    source = reference.arch.get(platform)
    if source is None:
        source = reference.arch.get("linux-x86_64", ())
    cuda = variant_cuda(variant)
    family = matrix.cuda_families.get(cuda.major) if cuda is not None else None
    kept: list[str] = []
    dropped: list[str] = []
    for target in source:
        gpu = matrix.gpu(target.cc)
        ok = family is None or family.can_target(target.cc)
        if ok and gpu is not None and cuda is not None and target.cc not in gpu.aliases:
            ok = gpu.targetable_by(cuda)
        text = str(ArchTarget(target.cc, False)) if platform.startswith("windows-") else str(target)
        (kept if ok else dropped).append(text)
    return kept, dropped


def _build_snippet(
    matrix: Matrix, series: str, variant: str, facts: TorchFacts, today: date
) -> tuple[str, str]:
    reference = _reference_build(matrix, series, variant)
    platforms = [p for p in PLATFORMS if p in facts.variant_platforms.get(variant, frozenset())]
    arch: dict[str, list[str]] = {}
    dropped: set[str] = set()
    for platform in platforms:
        kept, lost = _copied_arch(matrix, reference, variant, platform)
        arch[platform] = kept
        dropped.update(lost)
    where = (
        f"the {reference.series} {reference.variant} build"
        if reference
        else "nothing (no CUDA build in the matrix)"
    )
    note = (
        f"arch list not derivable from the index: copied from {where}"
        + (
            f", without {', '.join(sorted(dropped))} (CUDA {variant_cuda(variant)} cannot target it)"
            if dropped
            else ""
        )
        + "; confirm TORCH_CUDA_ARCH_LIST in pytorch/pytorch .ci/manywheel/build_cuda.sh on "
        f"release/{series} and RELEASE.md, then drop unverified "
        f"(wheels seen on the PyTorch index by matrix refresh {today})"
    )
    sources = [PYTORCH_INDEX_SOURCE]
    if variant in facts.default_variant.values():
        sources.insert(0, "pypi_torch")
    lines = [
        "[[build]]",
        f"series = {_q(series)}",
        f"variant = {_q(variant)}",
        "unverified = true",
        f"source = {_list(sources)}",
        f"note = {_q(note)}",
        "",
        "[build.arch]",
        *(f"{platform} = {_list(targets)}" for platform, targets in arch.items()),
    ]
    ref_text = f"{reference.series} {reference.variant}" if reference else "nothing"
    return "\n".join(lines) + "\n\n", ref_text


def _release_snippet(facts: TorchFacts, today: date) -> str:
    note = f"from the index listings by matrix refresh {today}"
    if facts.notes:
        note += "; " + "; ".join(facts.notes)
    lines = [
        "[[release]]",
        f"version = {_q(str(facts.version))}",
        f"date = {_q(facts.date)}",
        f"requires_python = {_q(facts.requires_python)}",
        f"variants = {_list(facts.variants)}",
    ]
    glibc = {
        a: str(v)
        for a, v in sorted(facts.glibc_min.items(), key=lambda kv: ("x86_64", "aarch64").index(kv[0]))
    }
    if glibc:
        lines.append(f"glibc_min = {_inline(glibc)}")
    macos = {
        a: str(v)
        for a, v in sorted(facts.platforms.macos_min.items(), key=lambda kv: ("arm64", "x86_64").index(kv[0]))
    }
    if macos:
        lines.append(f"macos_min = {_inline(macos)}")
    lines += [
        f"source = {_list(['pypi_torch', PYTORCH_INDEX_SOURCE])}",
        f"note = {_q(note)}",
        "",
        "[release.python]",
        *(f"{p} = {_list(pythons)}" for p, pythons in facts.platforms.python.items()),
        "",
        "[release.default_variant]",
        *(f"{p} = {_q(facts.default_variant[p])}" for p in facts.platforms.python),
    ]
    return "\n".join(lines) + "\n\n"


def _companion_releases(matrix: Matrix, reader: _Reader) -> dict[str, list[CompanionRelease]]:
    """Companion releases the matrix pairs with nothing yet, newest first, with their torch pin."""
    out: dict[str, list[CompanionRelease]] = {}
    for name in COMPANIONS:
        known = {getattr(p, name) for p in matrix.companions.values()} - {None}
        oldest = min(known) if known else None
        found = []
        for version, files in sorted(reader.releases(name).items(), reverse=True):
            if version in known or version.is_prerelease or version.is_devrelease:
                continue
            if oldest is not None and version < oldest:
                continue
            if _all_yanked(files):
                reader.warnings.append(f"{name} {version} is yanked on the general index; not paired")
                continue
            metadata = reader.metadata([f for f in files if f.filename.endswith(".whl")])
            if metadata is None:
                reader.warnings.append(f"{name} {version}: no METADATA served; its torch pin is unknown")
                continue
            found.append(CompanionRelease(name, version, torch_pin(metadata.requires_dist)))
        out[name] = found
    return out


def _refresh_pairs(
    matrix: Matrix,
    files: _Files,
    reader: _Reader,
    companions: Mapping[str, list[CompanionRelease]],
    new_versions: Sequence[Version],
    today: date,
) -> list[str]:
    summary: list[str] = []
    # Existing pairs: a new companion release pinning exactly that torch replaces the value.
    for torch, pair in sorted(matrix.companions.items(), reverse=True):
        for name in COMPANIONS:
            exact = next((c for c in companions[name] if exact_pin(c.torch) == torch), None)
            if exact is not None and getattr(pair, name) != exact.version:
                files.set_value("companions.toml", "pair", "torch", torch, name, str(exact.version))
                summary.append(f"torch {torch}: {name} {exact.version} (pins torch=={torch})")
    for version in new_versions:
        values: dict[str, str] = {}
        notes: list[str] = []
        inferred = False
        for name in COMPANIONS:
            releases = companions[name]
            exact = next((c for c in releases if exact_pin(c.torch) == version), None)
            ranged = next(
                (
                    c
                    for c in releases
                    if c.torch and exact_pin(c.torch) is None and c.torch.contains(version, prereleases=True)
                ),
                None,
            )
            if exact is not None:
                values[name] = str(exact.version)
            elif ranged is not None:
                values[name] = str(ranged.version)
                inferred = True
                notes.append(
                    f"{name} {ranged.version} pins torch{ranged.torch}, not =={version}: pairing inferred"
                )
            else:
                values[name] = "none"
                inferred = True
                notes.append(f"no {name} release on the index pins torch {version} (yet): re-run the refresh")
        files.ensure_sources([f"pypi_{n}" for n in COMPANIONS], reader, today)
        note = f"from the companions' METADATA Requires-Dist by matrix refresh {today}"
        if notes:
            note += "; " + "; ".join(notes)
        lines = [
            "[[pair]]",
            f"torch = {_q(str(version))}",
            *(f"{name} = {_q(values[name])}" for name in COMPANIONS),
            *(["unverified = true"] if inferred else []),
            f"source = {_list([f'pypi_{n}' for n in COMPANIONS])}",
            f"note = {_q(note)}",
        ]
        files.insert("companions.toml", "pair", _pair_key, "\n".join(lines) + "\n\n", (version,))
        status = ", unverified" if inferred else ""
        summary.append(
            f"torch {version}: pairs with torchvision {values['torchvision']}, "
            f"torchaudio {values['torchaudio']}{status}"
        )
    return summary


# --- transformers ------------------------------------------------------------------------------


def _refresh_transformers(matrix: Matrix, files: _Files, reader: _Reader, today: date) -> list[str]:
    summary: list[str] = []
    releases = reader.releases("transformers")
    known = {r.version: r for r in matrix.transformers}
    oldest = min(known) if known else None
    for version, row in sorted(known.items(), reverse=True):
        listed = releases.get(version)
        if not listed:
            continue
        yanked = _all_yanked(listed)
        if row.yanked and not yanked:
            # Un-yanking is rare; a mirror that drops PEP 592 data looks the same. A person decides.
            reader.warnings.append(
                f"transformers {version} is yanked in the matrix but not on the index "
                "(un-yanked, or a mirror without yank data): review by hand"
            )
        elif yanked and not row.yanked:
            files.set_flag(
                "transformers.toml", "release", "version", version, "yanked", after="runtime_min_torch"
            )
            summary.append(f"transformers {version}: yanked on the index")
    for version, listed in sorted(releases.items(), reverse=True):
        if version in known or version.is_devrelease or (oldest is not None and version < oldest):
            continue
        metadata = reader.metadata([f for f in listed if f.filename.endswith(".whl")] or listed)
        if metadata is None:
            reader.warnings.append(f"transformers {version}: no METADATA served; not added")
            continue
        requires_python = next((f.requires_python for f in listed if f.requires_python), None)
        facts = TransformersFacts(
            version=version,
            upload_date=_upload_day(listed),
            requires_python=requires_python or metadata.requires_python or "",
            torch=torch_extra(metadata.requires_dist),
            yanked=_all_yanked(listed),
        )
        previous = max(
            (r for r in matrix.transformers if r.version < version), key=lambda r: r.version, default=None
        )
        files.ensure_sources(["pypi_transformers"], reader, today)
        files.insert(
            "transformers.toml",
            "release",
            _release_key,
            _transformers_snippet(facts, previous, today),
            (version,),
        )
        floor = f"torch{facts.torch}" if facts.torch else "any torch"
        summary.append(
            f"transformers {version}: new release ({floor}, Python {facts.requires_python or 'any'})"
        )
    return summary


def _transformers_snippet(facts: TransformersFacts, previous: TransformersRelease | None, today: date) -> str:
    runtime = previous.runtime_min_torch if previous is not None else None
    where = f"carried over from {previous.version}" if previous is not None and runtime else "left unset"
    note = (
        f"from the index listing and METADATA by matrix refresh {today}; runtime_min_torch is not derivable "
        f"from the index ({where}): confirm the minimum torch in transformers/utils/import_utils.py of the "
        f"{facts.version} wheel, then drop unverified"
    )
    lines = [
        "[[release]]",
        f"version = {_q(str(facts.version))}",
        *([f"upload_date = {_q(facts.upload_date)}"] if facts.upload_date else []),
        f"requires_python = {_q(facts.requires_python)}",
        f"torch = {_q(facts.torch)}",
        *([f"runtime_min_torch = {_q(str(runtime))}"] if runtime is not None else []),
        *(["yanked = true"] if facts.yanked else []),
        "unverified = true",
        f"source = {_list(['pypi_transformers'])}",
        f"note = {_q(note)}",
    ]
    return "\n".join(lines) + "\n\n"


# --- editing the TOML files --------------------------------------------------------------------


def _q(text: str) -> str:
    return tomlkit.string(text).as_string()


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _inline(table: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {_q(v)}" for k, v in table.items()) + " }"


def _release_key(row: Table) -> tuple[Any, ...]:
    return (Version(str(row["version"])),)


def _pair_key(row: Table) -> tuple[Any, ...]:
    return (Version(str(row["torch"])),)


def _build_sort(series: str, variant: str) -> tuple[Any, ...]:
    # builds.toml: CUDA rows newest series first, newest CUDA first within one; ROCm rows last.
    kind = variant_kind(variant)
    return (1 if kind == "cuda" else 0, Version(series), variant_sort_key(variant)[1])


def _build_key(row: Table) -> tuple[Any, ...]:
    return _build_sort(str(row["series"]), str(row["variant"]))


@dataclass
class _Files:
    """The matrix files as text and tomlkit documents, edited in memory."""

    directory: Path
    old: dict[str, str]
    docs: dict[str, tomlkit.TOMLDocument] = field(default_factory=dict)
    appended: dict[str, list[str]] = field(default_factory=dict)
    edited: set[str] = field(default_factory=set)
    new_builds: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def read(cls, directory: Path) -> _Files:
        old = {name: (directory / name).read_text(encoding="utf-8") for name in MATRIX_FILES}
        return cls(directory, old)

    def doc(self, name: str) -> tomlkit.TOMLDocument:
        if name not in self.docs:
            self.docs[name] = tomlkit.parse(self.old[name])
        return self.docs[name]

    def changed(self) -> bool:
        return bool(self.edited or self.appended)

    def render(self) -> dict[str, str]:
        out = {}
        for name in MATRIX_FILES:
            text = tomlkit.dumps(self.docs[name]) if name in self.edited else self.old[name]
            for snippet in self.appended.get(name, []):
                text = text.rstrip("\n") + "\n\n" + snippet.rstrip("\n") + "\n"
            out[name] = text
        return out

    def has_build(self, series: str, variant: str) -> bool:
        return (series, variant) in self.new_builds

    def note_build(self, series: str, variant: str) -> None:
        self.new_builds.add((series, variant))

    def insert(
        self,
        name: str,
        key: str,
        row_key: Callable[[Table], tuple[Any, ...]],
        snippet: str,
        new_key: tuple[Any, ...],
    ) -> None:
        """Insert a row (TOML text in the file's style) before the first older row."""
        rows = self.doc(name).get(key)
        if not isinstance(rows, AoT):  # the file has no such rows yet: the first goes at the end
            self.appended.setdefault(name, []).append(snippet)
            return
        self.edited.add(name)
        row = tomlkit.parse(snippet)[key][0]
        for position, existing in enumerate(rows):
            if row_key(existing) < new_key:
                rows.insert(position, row)
                return
        _end_with_blank_line(rows[-1])
        rows.append(row)

    def set_meta_version(self, version: str) -> None:
        meta: Any = self.doc("sources.toml").get("meta")
        if meta is not None:
            meta["version"] = version
            self.edited.add("sources.toml")

    def _row(self, name: str, key: str, field_name: str, value: Version) -> Table:
        for row in self.doc(name)[key]:
            if Version(str(row[field_name])) == value:
                return row  # type: ignore[no-any-return]
        raise KeyError(value)  # pragma: no cover - rows come from the loaded matrix

    def set_value(self, name: str, key: str, field_name: str, value: Version, target: str, text: str) -> None:
        self._row(name, key, field_name, value)[target] = text
        self.edited.add(name)

    def set_flag(self, name: str, key: str, field_name: str, value: Version, flag: str, after: str) -> None:
        """Set `flag = true` right after the key `after` (else after the row's facts), as the
        file writes it by hand."""
        row = self._row(name, key, field_name, value)
        self.edited.add(name)
        keys = list(row.keys())
        anchor = (
            after if after in keys else next((k for k in ("torch", "requires_python") if k in keys), keys[0])
        )
        tail = [(k, row.item(k)) for k in keys[keys.index(anchor) + 1 :] if k != flag]
        for k, _ in tail:
            del row[k]
        row[flag] = True
        for k, item in tail:
            row[k] = item

    def ensure_sources(self, keys: Iterable[str], reader: _Reader, today: date) -> None:
        doc = self.doc("sources.toml")
        present = set(doc.get("sources", {}))
        pending = {s for snippet in self.appended.get("sources.toml", []) for s in _snippet_keys(snippet)}
        for key in keys:
            if key in present or key in pending:
                continue
            if key == PYTORCH_INDEX_SOURCE:
                lines = [
                    f"[sources.{key}]",
                    f"title = {_q(_PYTORCH_INDEX_TITLE)}",
                    'kind = "registry"',
                    f"url = {_q(reader.indexes.pytorch)}",
                    f"retrieved = {_q(today.isoformat())}",
                    f"note = {_q(_PYTORCH_INDEX_NOTE)}",
                ]
            else:
                what = _REGISTRY_SOURCES[key]
                lines = [
                    f"[sources.{key}]",
                    f"title = {_q(what)}",
                    'kind = "registry"',
                    f"where = {_q(what)}",
                    f"retrieved = {_q(today.isoformat())}",
                    'note = "added by matrix refresh"',
                ]
            self.appended.setdefault("sources.toml", []).append("\n".join(lines) + "\n")
            pending.add(key)


def _snippet_keys(snippet: str) -> set[str]:
    return set(tomlkit.parse(snippet).get("sources", {}))


def _end_with_blank_line(row: Table) -> None:
    """A row appended after `row` needs the blank line the file puts between rows."""
    target = row
    while True:
        body = target.value.body
        if body and isinstance(body[-1][1], Table):
            target = body[-1][1]
            continue
        break
    target.add(tomlkit.nl())
