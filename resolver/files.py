"""The one path every input file is read, decoded and parsed through.

Any OS error (missing, unreadable, a directory, a bad name) and any decode error becomes the
tool's own `InputError` (or the subclass the caller names) naming the file; every JSON or TOML
syntax error names the file and the line. Text is UTF-8; a UTF-8 byte order mark, and UTF-16 or
UTF-32 with a byte order mark (what PowerShell's `>` writes) or without one (told apart by the
NUL bytes every ASCII character then carries), are accepted too.
"""

from __future__ import annotations

import codecs
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver.errors import InputError, Location

if TYPE_CHECKING:
    import configparser

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def read_bytes(
    path: Path | str, what: str, *, error: type[InputError] = InputError, hint: str | None = None
) -> bytes:
    """The bytes of `path` (a `what`, e.g. "host file"), or `error` naming it."""
    try:
        # A plain unbuffered open (the whole file is read at once): an inventory reads 50,000.
        with open(path, "rb", buffering=0) as file:
            return file.read()
    except FileNotFoundError:
        raise error(
            f"{what} not found", location=Location(str(path)), hint=hint or "check the path"
        ) from None
    except IsADirectoryError:
        raise error(f"{what} is a directory, not a file", location=Location(str(path)), hint=hint) from None
    except PermissionError:
        raise error(
            f"cannot read {what}: permission denied",
            location=Location(str(path)),
            hint="make it readable (chmod u+r), or run as its owner",
        ) from None
    except (OSError, ValueError) as exc:  # ENOTDIR, ELOOP, ENAMETOOLONG, a NUL byte in the name ...
        reason = getattr(exc, "strerror", None) or str(exc)
        raise error(f"cannot read {what}: {reason}", location=Location(str(path)), hint=hint) from None


def decode(data: bytes, origin: str, what: str, *, error: type[InputError] = InputError) -> str:
    """Text from bytes: UTF-8, with or without a byte order mark, or UTF-16/32 (see the module)."""
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding, data = name, data[len(bom) :]
            break
    else:
        # No mark: an ASCII first character in UTF-16 carries a NUL byte beside it (RFC 8259 §3).
        if len(data) >= 4 and data[0] and not data[1] and data[2] and not data[3]:
            encoding = "utf-16-le"
        elif len(data) >= 4 and not data[0] and data[1] and not data[2] and data[3]:
            encoding = "utf-16-be"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1 if encoding == "utf-8" else None
        raise error(
            f"{what} is not {encoding.upper()} text (undecodable byte at offset {exc.start})",
            location=Location(origin, line=line),
            hint="save it as UTF-8",
        ) from None


def read_text(
    path: Path | str, what: str, *, error: type[InputError] = InputError, hint: str | None = None
) -> str:
    return decode(read_bytes(path, what, error=error, hint=hint), str(path), what, error=error)


def parse_json(
    text: str, origin: str, what: str, *, error: type[InputError] = InputError, hint: str | None = None
) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"not valid JSON: {exc.msg}", location=Location(origin, line=exc.lineno), hint=hint
        ) from None
    except RecursionError:
        raise error(f"{what} nests too deeply", location=Location(origin), hint=hint) from None
    except ValueError as exc:  # an integer longer than Python converts (sys.set_int_max_str_digits)
        raise error(f"not valid JSON: {exc}", location=Location(origin), hint=hint) from None


_TOML_HINT = "see https://toml.io for the syntax"


def parse_toml(text: str, origin: str, what: str, *, error: type[InputError] = InputError) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = toml_error_line(exc)
        raise error(
            f"not valid TOML: {message}",
            location=Location(origin, line=line),
            hint=_TOML_HINT,
        ) from None
    except RecursionError:
        raise error(f"{what} nests too deeply", location=Location(origin), hint=_TOML_HINT) from None
    except ValueError as exc:
        raise error(f"not valid TOML: {exc}", location=Location(origin), hint=_TOML_HINT) from None
    return data


def toml_error_line(exc: Exception) -> tuple[str, int | None]:
    """tomllib's message, and the line it names ("... (at line 3, column 1)")."""
    message = str(exc)
    line = getattr(exc, "lineno", None)
    marker = "(at line "
    if line is None and marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0]
        line = int(digits) if digits.isdigit() else None
    return message, line


def load_json(path: Path, what: str, *, error: type[InputError] = InputError, hint: str | None = None) -> Any:
    return parse_json(read_text(path, what, error=error, hint=hint), str(path), what, error=error, hint=hint)


def load_toml(path: Path, what: str, *, error: type[InputError] = InputError) -> dict[str, Any]:
    return parse_toml(read_text(path, what, error=error), str(path), what, error=error)


def load_ini(path: Path, what: str, *, error: type[InputError] = InputError) -> configparser.ConfigParser:
    """An INI file (pip.conf) read the way pip reads it; a syntax error names the file and line."""
    import configparser  # pip's configuration only

    text = read_text(path, what, error=error)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.ParsingError as exc:
        errors = getattr(exc, "errors", None)  # MissingSectionHeaderError has a `lineno` instead
        line = errors[0][0] if errors else getattr(exc, "lineno", None)
        raise error(
            f"not a valid {what}", location=Location(str(path), line=line), hint="fix the INI syntax"
        ) from None
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        message = exc.message.splitlines()[0] if exc.message else type(exc).__name__
        location = Location(str(path), line=line)
        raise error(f"not a valid {what}: {message}", location=location, hint="fix the INI syntax") from None
    return parser
