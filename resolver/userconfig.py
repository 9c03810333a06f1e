"""The user's pip and uv configuration, read the way pip and uv read it, on every OS.

Only what locating packages needs: the default index, extra indexes, find-links and (pip) a CA
bundle. Every value keeps where it came from (a variable, or a file and key), for `info` and
`-v`. pip: the files of `pip config list` in pip's order (site-wide, user, the environment's, then
`PIP_CONFIG_FILE`), sections `[global]` then `[install]`, and `PIP_*` variables over all files;
`PIP_CONFIG_FILE=os.devnull` turns every file off. uv: `uv.toml` (system, user, the project's),
`UV_CONFIG_FILE` instead of them, `UV_NO_CONFIG` for none, and `UV_*` variables over all files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver import files as input_files
from resolver.dirs import home_text


@dataclass(frozen=True)
class Setting:
    value: str
    origin: str  # "PIP_INDEX_URL", "/etc/pip.conf [global] index-url", ...


@dataclass(frozen=True)
class ToolConfig:
    """What one tool (pip or uv) is configured to use."""

    index: Setting | None = None
    extra: tuple[Setting, ...] = ()
    find_links: tuple[Setting, ...] = ()
    cert: Setting | None = None


def _xdg_config_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path(home_text(environ)) / ".config"


def _xdg_config_dirs(environ: Mapping[str, str]) -> list[Path]:
    dirs = environ.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg"
    return [Path(d) for d in dirs.split(os.pathsep) if d]


def pip_config_files(
    environ: Mapping[str, str], platform: str = sys.platform, prefix: str = sys.prefix
) -> tuple[Path, ...]:
    """pip's configuration files, lowest precedence first (pip's `get_configuration_files`)."""
    home = Path(home_text(environ))
    if platform == "win32":
        program_data = environ.get("ALLUSERSPROFILE") or environ.get("PROGRAMDATA") or r"C:\ProgramData"
        site_wide = [Path(program_data) / "pip" / "pip.ini"]
        appdata = environ.get("APPDATA", "").strip()
        user = [home / "pip" / "pip.ini", *([Path(appdata) / "pip" / "pip.ini"] if appdata else [])]
        own = Path(prefix) / "pip.ini"
    elif platform == "darwin":
        site_wide = [Path("/Library/Application Support/pip/pip.conf")]
        support = home / "Library" / "Application Support" / "pip"
        # pip uses ~/Library/Application Support/pip when it exists, else ~/.config/pip
        user = [
            home / ".pip" / "pip.conf",
            (support if support.is_dir() else home / ".config" / "pip") / "pip.conf",
        ]
        own = Path(prefix) / "pip.conf"
    else:
        site_wide = [d / "pip" / "pip.conf" for d in _xdg_config_dirs(environ)] + [Path("/etc/pip.conf")]
        user = [home / ".pip" / "pip.conf", _xdg_config_home(environ) / "pip" / "pip.conf"]
        own = Path(prefix) / "pip.conf"
    named = environ.get("PIP_CONFIG_FILE", "").strip()
    if named and Path(named).exists():
        user = []  # pip skips the user's files when PIP_CONFIG_FILE names one that exists
    return (*site_wide, *user, own)


def read_pip_config(environ: Mapping[str, str], files: Sequence[Path]) -> ToolConfig:
    """pip's settings from `files` (lowest precedence first), `PIP_CONFIG_FILE` and `PIP_*`."""
    named = environ.get("PIP_CONFIG_FILE", "").strip()
    if named == os.devnull:
        files = ()
    elif named:
        files = (*files, Path(named))
    values: dict[str, Setting] = {}
    for path in files:
        if not path.is_file():
            continue
        # As pip does, a file that cannot be read or parsed stops the run (naming it); a UTF-8
        # byte order mark or UTF-16 (PowerShell's `>`) is read (resolver/files.py).
        parser = input_files.load_ini(path, "pip configuration file")
        for section in ("global", "install"):
            for key in ("index-url", "extra-index-url", "find-links", "cert"):
                if parser.has_option(section, key):
                    values[key] = Setting(parser.get(section, key).strip(), f"{path} [{section}] {key}")
    for key in ("index-url", "extra-index-url", "find-links", "cert"):
        variable = "PIP_" + key.upper().replace("-", "_")
        if environ.get(variable, "").strip():
            values[key] = Setting(environ[variable].strip(), variable)
    return ToolConfig(
        index=values.get("index-url"),
        extra=_split(values.get("extra-index-url")),
        find_links=_split(values.get("find-links")),
        cert=values.get("cert"),
    )


def _split(setting: Setting | None) -> tuple[Setting, ...]:
    """pip's list options are whitespace-separated."""
    if setting is None:
        return ()
    return tuple(Setting(part, setting.origin) for part in setting.value.split())


def uv_config_files(
    environ: Mapping[str, str], project: Path, platform: str = sys.platform
) -> tuple[Path, ...]:
    """uv.toml files, lowest precedence first: system, user, the project's."""
    if environ.get("UV_NO_CONFIG", "").strip() not in ("", "0", "false"):
        return ()
    named = environ.get("UV_CONFIG_FILE", "").strip()
    if named:
        return (Path(named),)
    if platform == "win32":
        program_data = environ.get("PROGRAMDATA") or r"C:\ProgramData"
        system = [Path(program_data) / "uv" / "uv.toml"]
        appdata = environ.get("APPDATA", "").strip()
        user = [Path(appdata) / "uv" / "uv.toml"] if appdata else []
    else:
        system = [d / "uv" / "uv.toml" for d in reversed(_xdg_config_dirs(environ))] + [
            Path("/etc/uv/uv.toml")
        ]
        user = [_xdg_config_home(environ) / "uv" / "uv.toml"]
    return (*system, *user, project / "uv.toml")


def read_uv_config(environ: Mapping[str, str], files: Sequence[Path]) -> ToolConfig:
    """uv's settings from `files` (lowest precedence first) and `UV_*` variables."""
    index: Setting | None = None
    extra: list[Setting] = []
    find_links: list[Setting] = []
    for path in files:
        data = _toml(path)
        if data is None:
            continue
        file_extra: list[Setting] = []
        if isinstance(data.get("index-url"), str):
            index = Setting(data["index-url"], f"{path} index-url")
        for url in _strings(data.get("extra-index-url")):
            file_extra.append(Setting(url, f"{path} extra-index-url"))
        for entry in data.get("index", []) if isinstance(data.get("index"), list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                continue
            if entry.get("default") is True:
                index = Setting(entry["url"], f"{path} [[index]] {entry.get('name', '')}".rstrip())
            elif entry.get("explicit") is not True:  # an explicit index serves only what names it
                file_extra.append(Setting(entry["url"], f"{path} [[index]] {entry.get('name', '')}".rstrip()))
        if file_extra:
            extra = file_extra  # a nearer file's list replaces a farther one's, as uv merges
        links = [Setting(u, f"{path} find-links") for u in _strings(data.get("find-links"))]
        if links:
            find_links = links
    for variable in ("UV_INDEX_URL", "UV_DEFAULT_INDEX"):  # the second, uv's current name, wins
        if environ.get(variable, "").strip():
            index = Setting(environ[variable].strip(), variable)
    from_env = [
        Setting(_index_url(part), variable)
        for variable in ("UV_INDEX", "UV_EXTRA_INDEX_URL")
        for part in environ.get(variable, "").split()
    ]
    if from_env:
        extra = from_env
    if environ.get("UV_FIND_LINKS", "").strip():
        find_links = [Setting(u, "UV_FIND_LINKS") for u in environ["UV_FIND_LINKS"].replace(",", " ").split()]
    return ToolConfig(index=index, extra=tuple(extra), find_links=tuple(find_links))


def _index_url(text: str) -> str:
    """`UV_INDEX` entries may be `name=url`."""
    name, sep, url = text.partition("=")
    return url if sep and "://" not in name else text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _toml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    # As uv does, a broken uv.toml stops the run, naming the file and line.
    return input_files.load_toml(path, "uv configuration file")


def certificate_environment(environ: Mapping[str, str], pip_files: Sequence[Path]) -> dict[str, str]:
    """Variables that hand pip's configured CA bundle (`cert`) to requests (the tool's own index
    client) and to Poetry, which both read `REQUESTS_CA_BUNDLE`. One the user set wins."""
    if environ.get("REQUESTS_CA_BUNDLE", "").strip():
        return {}
    cert = read_pip_config(environ, pip_files).cert
    return {"REQUESTS_CA_BUNDLE": cert.value} if cert is not None else {}
