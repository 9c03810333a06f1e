"""The team's configuration, `envs/team.toml`, and where package indexes come from.

Index URLs are configuration, never code: the PyTorch index (base URL; the variant is appended)
comes from `STACK_RESOLVER_PYTORCH_INDEX`, then `[indexes] pytorch` in the team file, then the
public default below. The general index comes from `STACK_RESOLVER_INDEX_URL`, then
`[indexes] general`, then the user's pip or uv configuration (`PIP_INDEX_URL`, `UV_DEFAULT_INDEX`,
`UV_INDEX_URL`, pip.conf `index-url`, uv.toml's default index; see `resolver.userconfig`);
with none of these, it is left to Poetry's built-in source. Extra indexes, find-links and a CA
bundle come from the same pip/uv configuration.
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
from resolver.index.credentials import Credentials, redact, split_credentials
from resolver.matrix.vocab import Variant
from resolver.solve.request import MANAGED, PREFERENCE_KEYS, merge_constraints

DEFAULT_PYTORCH_INDEX = "https://download.pytorch.org/whl"
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
DEFAULT_CHANNELS = ("conda-forge",)


def load_toml(path: Path, what: str = "team file") -> dict[str, Any]:
    """Read a TOML file (resolver/files.py); a syntax error names the file and line."""
    return files.load_toml(path, what, error=ConfigError)


@dataclass(frozen=True)
class Indexes:
    """Index URLs, never with credentials in them: those are in `credentials` (memory only)."""

    pytorch: str = DEFAULT_PYTORCH_INDEX
    general: str | None = None
    # From the user's pip/uv configuration: more indexes to search, wheel folders/pages, a CA bundle.
    extra: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str | None = None
    # (what, where it came from): ("general", "PIP_INDEX_URL"), ("extra", "/etc/pip.conf ..."), ...
    origins: tuple[tuple[str, str], ...] = ()
    credentials: Credentials = field(default_factory=Credentials, compare=False, repr=False)

    def origin(self, what: str) -> str | None:
        return dict(self.origins).get(what)

    def variant_url(self, variant: str) -> str:
        """The simple-API root for one variant: `{variant}` in the base is replaced (mirrors with
        another layout, e.g. `https://mirror/whl/{variant}/simple`); otherwise it is appended."""
        if "{variant}" in self.pytorch:
            return self.pytorch.replace("{variant}", variant)
        return f"{self.pytorch.rstrip('/')}/{variant}"


@dataclass(frozen=True)
class Channels:
    """Conda channels, by name or URL. A name is resolved against `alias` (a base URL), or against
    rattler's default channel alias when `alias` is None."""

    names: tuple[str, ...] = DEFAULT_CHANNELS
    alias: str | None = None


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


def _url_like(text: str) -> bool:
    return text.startswith(("http://", "https://", "file://"))


# A conda token rides in the path: https://host/t/<token>/channel
_CONDA_TOKEN = re.compile(r"/t/[^/]+/")


def check_channel_url(url: str, origin: str, key: str) -> None:
    """A conda channel URL never carries credentials: it is written into environment.yml and
    conda-lock.yml, and nothing takes them out of the way for conda as for pip indexes."""
    _clean, credential = split_credentials(url)
    if credential is not None or (_url_like(url) and _CONDA_TOKEN.search(url)):
        raise ConfigError(
            "credentials in a conda channel URL would be written into environment.yml and conda-lock.yml",
            location=Location(origin, key=key),
            value=_CONDA_TOKEN.sub("/t/***/", redact(url)),
            hint="use a channel or mirror that needs no credentials in its URL; credentials for conda "
            "channels are not supported yet",
        )


def _channels(data: Mapping[str, Any], origin: str) -> Channels:
    hint = 'e.g. channels = ["conda-forge"] (names or URLs)'
    names = _str_list(data.get("channels", list(DEFAULT_CHANNELS)), origin, "channels", hint)
    for name in names:
        if not name or (not _url_like(name) and ("/" in name.strip("/") or " " in name)):
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
        if not _url_like(alias):
            raise ConfigError(
                "channel alias must be an http(s) or file URL",
                location=Location(origin, key="conda.channel_alias"),
                value=alias,
                hint='e.g. channel_alias = "https://mirror.example.org/conda"',
            )
        check_channel_url(alias, origin, "conda.channel_alias")
    return Channels(names=names, alias=alias)


def effective_channels(team: TeamConfig, environ: Mapping[str, str]) -> Channels:
    """`STACK_RESOLVER_CONDA_CHANNELS` (comma-separated) and `STACK_RESOLVER_CONDA_CHANNEL_ALIAS`
    beat the team file."""
    names = team.channels.names
    text = environ.get("STACK_RESOLVER_CONDA_CHANNELS", "")
    if text.strip():
        names = tuple(n.strip() for n in text.split(",") if n.strip())
    alias = environ.get("STACK_RESOLVER_CONDA_CHANNEL_ALIAS") or team.channels.alias
    for name in names:
        check_channel_url(name, "STACK_RESOLVER_CONDA_CHANNELS", "")
    if alias:
        check_channel_url(alias, "STACK_RESOLVER_CONDA_CHANNEL_ALIAS", "")
    return Channels(names=names, alias=alias)


def load_team(path: Path | None) -> TeamConfig:
    """Load the team file. No file (and none asked for) is an empty team, not an error."""
    if path is None:
        if not DEFAULT_TEAM_FILE.exists():
            return TeamConfig()
        path = DEFAULT_TEAM_FILE
    data = load_toml(path)
    return team_from_mapping(data, str(path), Path(path).resolve().parent)


def effective_indexes(
    team: TeamConfig,
    environ: Mapping[str, str],
    pip_config_files: Sequence[Path],
    uv_config_files: Sequence[Path] | None = None,
) -> Indexes:
    """Apply the precedence documented above. The config files are injectable for tests; uv's
    default to `userconfig.uv_config_files` for the working directory (the project root).
    Credentials in a URL (`https://user:token@host/...`) move to `Indexes.credentials`: no URL
    here, nor its origin, carries them."""
    from resolver import userconfig

    pip = userconfig.read_pip_config(environ, pip_config_files)
    if uv_config_files is None:
        uv_config_files = userconfig.uv_config_files(environ, Path.cwd())
    uv = userconfig.read_uv_config(environ, uv_config_files)
    origins: list[tuple[str, str]] = []
    pytorch = environ.get("STACK_RESOLVER_PYTORCH_INDEX")
    origins.append(("pytorch", "STACK_RESOLVER_PYTORCH_INDEX"))
    if not pytorch:
        pytorch = team.indexes.pytorch
        from_team = team.path is not None and "pytorch" in team.raw.get("indexes", {})
        origins[-1] = ("pytorch", f"{team.path} [indexes] pytorch" if from_team else "default")
    candidates = [
        (environ.get("STACK_RESOLVER_INDEX_URL"), "STACK_RESOLVER_INDEX_URL"),
        (team.indexes.general, f"{team.path} [indexes] general"),
        (environ.get("PIP_INDEX_URL"), "PIP_INDEX_URL"),
        (environ.get("UV_DEFAULT_INDEX"), "UV_DEFAULT_INDEX"),
        (environ.get("UV_INDEX_URL"), "UV_INDEX_URL"),
        *((s.value, s.origin) for s in (pip.index, uv.index) if s is not None),
    ]
    general = next(((url.strip(), origin) for url, origin in candidates if url and url.strip()), None)
    _check_index_url(pytorch, origins[0][1])
    credentials = team.indexes.credentials
    pytorch, credentials = credentials.with_url(pytorch)
    general_url = None
    if general is not None:
        _check_index_url(*general)
        general_url, credentials = credentials.with_url(general[0])
        origins.append(("general", general[1]))
    extra: list[str] = []
    for setting in (*pip.extra, *uv.extra):
        _check_index_url(setting.value, setting.origin)
        url, credentials = credentials.with_url(setting.value)
        if url not in extra and url != general_url:
            extra.append(url)
            origins.append((f"extra:{url}", setting.origin))
    links: list[str] = []
    for setting in (*pip.find_links, *uv.find_links):
        url, credentials = credentials.with_url(setting.value)
        if url not in links:
            links.append(url)
            origins.append((f"find-links:{url}", setting.origin))
    if pip.cert is not None:
        origins.append(("cert", pip.cert.origin))
    return Indexes(
        pytorch=pytorch,
        general=general_url,
        extra=tuple(extra),
        find_links=tuple(links),
        cert=pip.cert.value if pip.cert is not None else None,
        origins=tuple(origins),
        credentials=credentials,
    )


def _check_index_url(url: str, origin: str) -> None:
    if not _url_like(url):
        where = f"${origin}" if origin.isupper() else origin
        raise InputError(
            "index URL must be http(s) or file",
            location=Location(where),
            value=redact(url),
            hint="e.g. https://mirror.example.org/simple",
        )


CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def effective_ca_bundle(environ: Mapping[str, str], pip_config_files: Sequence[Path]) -> str | None:
    """The CA certificates to trust for HTTPS: `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` (what
    requests and Poetry read), then pip's `cert` (`PIP_CERT`, then pip's configuration), then
    `SSL_CERT_FILE`; None: the default bundle. A named file that is missing is bad input."""
    from resolver import userconfig

    candidates = [(f"${name}", environ.get(name, "").strip()) for name in CA_VARIABLES]
    cert = userconfig.read_pip_config(environ, pip_config_files).cert
    if cert is not None:
        candidates.append((f"${cert.origin}" if cert.origin.isupper() else cert.origin, cert.value))
    candidates.append(("$SSL_CERT_FILE", environ.get("SSL_CERT_FILE", "").strip()))
    where, path = next(((where, path) for where, path in candidates if path), ("", ""))
    if not path:
        return None
    if not Path(path).expanduser().exists():
        raise InputError(
            "CA certificate file not found",
            location=Location(where),
            value=path,
            hint="point it at a PEM bundle (or a folder of certificates), or unset it",
        )
    return str(Path(path).expanduser())


def default_pip_config_files(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """pip's own lookup order on this OS (site-wide, user, the environment's); later ones
    override earlier ones."""
    from resolver.userconfig import pip_config_files

    return pip_config_files(environ)


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
