"""The team's configuration, `envs/team.toml`: reading it into a TeamConfig, each field checked and
an error naming the file and key; and the checks of the values it shares with the command line's
flags (a Python version, a variant name, constraints with local labels).

Where the indexes and channels it names are used, and what overrides them: resolver/sources.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from resolver import files
from resolver.errors import ConfigError, ConstraintError, InputError, Location
from resolver.host.spellings import python_series, split_local_label
from resolver.index.credentials import redact
from resolver.matrix.vocab import Variant
from resolver.solve.request import MANAGED, PREFERENCE_KEYS, merge_constraints
from resolver.sources import (
    DEFAULT_CHANNELS,
    DEFAULT_PYTORCH_INDEX,
    Channels,
    Indexes,
    check_channel_url,
    url_like,
)

DEFAULT_TEAM_FILE = Path("envs") / "team.toml"
FORMATS = ("poetry", "conda")

TOP_KEYS = (
    "packages",
    "constraints",
    "formats",
    "variant",
    "python",
    "allow_ptx",
    "allow_unverified",
    "allow_cpu_fallback",
    "prefer",
    "matrix",
    "indexes",
    "channels",
    "conda",
    "requirements",
    "targets",
    "inventory",
)
INDEX_KEYS = ("pytorch", "general")
CONDA_KEYS = ("channel_alias",)


def load_toml(path: Path, what: str = "team file") -> dict[str, Any]:
    """Read a TOML file (resolver/files.py); a syntax error names the file and line."""
    return files.load_toml(path, what, error=ConfigError)


@dataclass(frozen=True)
class TeamConfig:
    path: Path | None = None
    packages: tuple[str, ...] = ()
    constraints: Mapping[str, SpecifierSet] = field(default_factory=dict)
    formats: tuple[str, ...] = ("poetry",)
    variant: str | None = None
    python: str | None = None
    allow_ptx: bool = False
    allow_unverified: bool = False
    allow_cpu_fallback: bool = False
    prefer: tuple[str, ...] = PREFERENCE_KEYS
    matrix_overlays: tuple[Path, ...] = ()
    indexes: Indexes = field(default_factory=Indexes)
    channels: Channels = field(default_factory=Channels)
    raw: Mapping[str, Any] = field(default_factory=dict)


def _expect(value: Any, kind: type | tuple[type, ...], origin: str, key: str, hint: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"'{key}' has the wrong type", location=Location(origin, key=key), value=value, hint=hint
        )
    return value


def _str_list(value: Any, origin: str, key: str, hint: str) -> tuple[str, ...]:
    items = _expect(value, list, origin, key, hint)
    for item in items:
        _expect(item, str, origin, key, hint)
    return tuple(items)


def team_from_mapping(data: Mapping[str, Any], origin: str, base: Path) -> TeamConfig:
    reject_unknown_keys(data, TOP_KEYS, origin, "", f"allowed keys: {', '.join(TOP_KEYS)}")
    packages = _packages(
        _str_list(data.get("packages", []), origin, "packages", 'e.g. packages = ["accelerate"]'), origin
    )
    constraint_texts = _str_list(
        data.get("constraints", []), origin, "constraints", 'e.g. constraints = ["torch>=2.4,<2.7"]'
    )
    constraints, pinned_variant = labelled_constraints(constraint_texts, origin, "constraints")
    formats = _str_list(data.get("formats", ["poetry"]), origin, "formats", 'e.g. formats = ["poetry"]')
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(
                "unknown lock format",
                location=Location(origin, key="formats"),
                value=fmt,
                hint=f"one of {', '.join(FORMATS)}",
            )
    flags = {}
    for flag in ("allow_ptx", "allow_unverified", "allow_cpu_fallback"):
        flags[flag] = _expect(data.get(flag, False), bool, origin, flag, "true or false")
    variant = data.get("variant")
    if variant is not None:
        _expect(variant, str, origin, "variant", 'e.g. variant = "cu126"')
        try:
            variant = check_variant(variant)
        except InputError as exc:
            raise ConfigError(
                exc.message, location=Location(origin, key="variant"), value=variant, hint=exc.hint
            ) from None
    if pinned_variant is not None:
        if variant is not None and variant != pinned_variant:
            raise ConfigError(
                f"the pins choose variant {pinned_variant}, `variant` another",
                location=Location(origin, key="variant"),
                value=variant,
                hint="make them agree, or drop one",
            )
        variant = pinned_variant
    python = data.get("python")
    if python is not None:
        _expect(python, str, origin, "python", 'e.g. python = "3.11"')
        try:
            python = check_python(python)
        except InputError:
            raise ConfigError(
                "not a Python version",
                location=Location(origin, key="python"),
                value=python,
                hint='e.g. "3.11"',
            ) from None
    prefer = _str_list(
        data.get("prefer", list(PREFERENCE_KEYS)),
        origin,
        "prefer",
        'e.g. ["torch", "variant", "transformers"]',
    )
    if sorted(prefer) != sorted(PREFERENCE_KEYS):
        raise ConfigError(
            "preference must order exactly these keys: " + ", ".join(PREFERENCE_KEYS),
            location=Location(origin, key="prefer"),
            value=list(prefer),
            hint='e.g. prefer = ["variant", "torch", "transformers"] to favour the newest CUDA',
        )
    overlays = tuple(
        _directory(base, p, origin, "matrix")
        for p in _str_list(data.get("matrix", []), origin, "matrix", 'e.g. matrix = ["internal-matrix"]')
    )
    raw_indexes = _expect(data.get("indexes", {}), dict, origin, "indexes", "a table: [indexes]")
    reject_unknown_keys(raw_indexes, INDEX_KEYS, origin, "indexes.", f"allowed: {', '.join(INDEX_KEYS)}")
    for key in INDEX_KEYS:
        if key in raw_indexes:
            url = _expect(raw_indexes[key], str, origin, f"indexes.{key}", "a URL string")
            if not url.startswith(("http://", "https://", "file://")):
                raise ConfigError(
                    "index URL must be http(s) or file",
                    location=Location(origin, key=f"indexes.{key}"),
                    value=redact(url),
                    hint="e.g. https://mirror.example.org/simple",
                )
    channels = _channels(data, origin)
    return TeamConfig(
        path=Path(origin),
        packages=packages,
        constraints=constraints,
        formats=formats,
        variant=variant,
        python=python,
        prefer=prefer,
        matrix_overlays=overlays,
        indexes=Indexes(
            pytorch=raw_indexes.get("pytorch", DEFAULT_PYTORCH_INDEX), general=raw_indexes.get("general")
        ),
        channels=channels,
        raw=dict(data),
        **flags,
    )


def _packages(texts: Sequence[str], origin: str) -> tuple[str, ...]:
    """`packages`: requirement strings. A version limit on a package the solver chooses belongs in
    `constraints` (here it would be ignored); a package listed twice would lose one of its lines."""
    seen: dict[str, str] = {}
    for text in texts:
        name = _bare_name(text)
        if name is None:
            name = _requirement_name(text, origin)
        if name in seen:
            raise ConfigError(
                f"{name} is listed twice",
                location=Location(origin, key="packages"),
                value=[seen[name], text],
                hint="keep one line per package (join version limits with a comma)",
            )
        seen[name] = text
    return tuple(texts)


def _bare_name(text: str) -> str | None:
    """The normalized name of `text` when it is a bare PEP 508 name ("torchvision"), else None.
    The usual entry, read without packaging's requirement parser, which loads markers and tags
    (platform, logging, subprocess): tens of milliseconds of every run's start-up."""
    if not (text.isascii() and text[:1].isalnum() and text[-1:].isalnum()):
        return None
    if not all(c.isalnum() or c in "._-" for c in text):
        return None
    return re.sub(r"[-_.]+", "-", text).lower()  # as packaging.utils.canonicalize_name


def _requirement_name(text: str, origin: str) -> str:
    """The normalized name of requirement `text` (anything but a bare name): a limit on a managed
    package is refused here, as `_packages` says."""
    from packaging.requirements import InvalidRequirement, Requirement  # a heavy parser: on use
    from packaging.utils import canonicalize_name  # loads packaging.tags: on use

    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        raise ConfigError(
            "not a valid requirement",
            location=Location(origin, key="packages"),
            value=text,
            hint='e.g. packages = ["accelerate", "datasets>=2"]',
        ) from None
    name = canonicalize_name(requirement.name)
    limited = requirement.specifier or requirement.extras or requirement.marker or requirement.url
    if name in MANAGED and limited:
        raise ConfigError(
            f"the solver chooses {name}'s version: a limit on it goes in `constraints`",
            location=Location(origin, key="packages"),
            value=text,
            hint=f'list "{name}" in packages and put constraints = ["{text}"]',
        )
    return name


def _directory(base: Path, text: str, origin: str, key: str) -> Path:
    try:
        return (base / text).resolve()
    except (OSError, ValueError):  # a NUL byte ("\u0000" in TOML), a name too long
        raise ConfigError(
            "not a usable directory path",
            location=Location(origin, key=key),
            value=text,
            hint='a path relative to the team file, e.g. matrix = ["internal-matrix"]',
        ) from None


def reject_unknown_keys(
    table: Mapping[str, Any], allowed: Sequence[str], origin: str, prefix: str, hint: str
) -> None:
    """A team-file table may hold only `allowed` keys; name the first stranger as `prefix + key`."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            "unknown key", location=Location(origin, key=f"{prefix}{unknown[0]}"), value=unknown[0], hint=hint
        )


def constraint_table(texts: Sequence[str], origin: str, key: str) -> dict[str, SpecifierSet]:
    """Constraint strings from the team file, with errors located at `key`."""
    return labelled_constraints(texts, origin, key)[0]


def labelled_constraints(
    texts: Sequence[str], origin: str, key: str | None = None
) -> tuple[dict[str, SpecifierSet], str | None]:
    """Constraints, and the variant their local labels name (`torch==2.8.0+cpu`, what the tool
    prints, pins 2.8.0 and chooses cpu). `origin` is a file (with `key`) or a flag."""
    plain: list[str] = []
    variants: set[str] = set()
    try:
        for text in texts:
            try:
                stripped, label = split_local_label(text)
                if label is not None:
                    variants.add(check_variant(label))
            except (ValueError, InputError):
                raise ConstraintError(
                    "a local label must name a variant, the same one in every pin",
                    value=text,
                    hint='e.g. "torch==2.8.0+cpu" or "torch==2.8.0+cu128"',
                ) from None
            plain.append(stripped)
        if len(variants) > 1:
            raise ConstraintError(
                "pins name different variants",
                value=sorted(variants),
                hint="pin one variant (the part after '+'), or drop the labels and use --variant",
            )
        table = merge_constraints(plain, origin=f"{origin} [{key}]" if key else origin)
    except ConstraintError as exc:
        location = Location(origin, key=key) if key else Location(origin)
        error = ConfigError if key else ConstraintError
        raise error(exc.message, location=location, value=exc.value, hint=exc.hint) from None
    return table, (variants.pop() if variants else None)


def _channels(data: Mapping[str, Any], origin: str) -> Channels:
    hint = 'e.g. channels = ["conda-forge"] (names or URLs)'
    names = _str_list(data.get("channels", list(DEFAULT_CHANNELS)), origin, "channels", hint)
    for name in names:
        if not name or (not url_like(name) and ("/" in name.strip("/") or " " in name)):
            raise ConfigError(
                "not a channel name or URL", location=Location(origin, key="channels"), value=name, hint=hint
            )
    if not names:
        raise ConfigError("no conda channel", location=Location(origin, key="channels"), value=[], hint=hint)
    for name in names:
        check_channel_url(name, origin, "channels")
    conda = _expect(data.get("conda", {}), dict, origin, "conda", "a table: [conda]")
    reject_unknown_keys(conda, CONDA_KEYS, origin, "conda.", f"allowed: {', '.join(CONDA_KEYS)}")
    alias = conda.get("channel_alias")
    if alias is not None:
        _expect(alias, str, origin, "conda.channel_alias", "a URL string")
        if not url_like(alias):
            raise ConfigError(
                "channel alias must be an http(s) or file URL",
                location=Location(origin, key="conda.channel_alias"),
                value=alias,
                hint='e.g. channel_alias = "https://mirror.example.org/conda"',
            )
        check_channel_url(alias, origin, "conda.channel_alias")
    return Channels(names=names, alias=alias)


def load_team(path: Path | None) -> TeamConfig:
    """Load the team file. No file (and none asked for) is an empty team, not an error."""
    if path is None:
        if not DEFAULT_TEAM_FILE.exists():
            return TeamConfig()
        path = DEFAULT_TEAM_FILE
    data = load_toml(path)
    return team_from_mapping(data, str(path), Path(path).resolve().parent)


def check_python(text: str, origin: str = "--python") -> str:
    """A Python version in any spelling `host/spellings.py` accepts ("3.11", "3.11.9", "3.13t"),
    as the series the matrix and wheels are keyed by ("3.11", "3.13t")."""
    try:
        return python_series(text)
    except ValueError:
        raise InputError(
            f"{origin}: not a Python 3 version",
            value=text,
            hint='write MAJOR.MINOR, e.g. "3.11" (or "3.11.9")',
        ) from None


def check_variant(text: str, origin: str | None = None) -> str:
    """A variant name: cpu, cuXYZ, rocmX.Y, xpu (any case). `origin` (a flag, or a file and key)
    is named on error."""
    normal = text.strip().lower()
    if Variant.of(normal) is not None:
        return normal
    raise InputError(
        "not a variant name",
        location=Location(origin) if origin else None,
        value=text,
        hint="e.g. cpu, cu126, cu128, rocm6.3",
    )
