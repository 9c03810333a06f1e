"""Replaying an unchanged `resolve`: the same output and exit code, without loading the solver,
the matrix model, packaging or the HTTP stack.

An unchanged re-run of `resolve` already asks no index and writes nothing (resolver/lock/fresh.py),
but it still imports all of that and solves. So when a `resolve --host FILE` run ends on that path,
what it printed (stdout and stderr, in order) and its exit code are kept in the user cache
(`<cache>/replay/<key>`), and the next run with the same inputs prints them back. Sound because
the entry is found only when nothing that run depended on differs:

- The key: this format's version; the tool's version and the size and mtime of each of its
  modules (an edited checkout misses); the Python executable, version and prefix; the arguments
  after the program name; the working directory; and the whole environment except a few
  variables shells change on their own (`VOLATILE`). Any variable that differs misses, on purpose:
  no list of the variables that matter can go stale. The environment is stored as this digest only.
- The entry's inputs, each with its state: every file the full path reads, named by the full path
  itself with the tool's own functions (`record_inputs`), so no second copy of that logic lives
  here: each folder searched for `envs/team.toml`, the team file, the host file, each matrix layer
  (every *.toml in it), pip's and uv's configuration files and the netrc files (absent ones as
  absent: creating one misses), the target's committed files (a hand edit misses), and the commit
  journal's folder, which must be absent: an unfinished commit makes the full path complete it.
  The states are taken before the full run and again after it; the entry is written only when
  they agree, so a file edited during that run is never vouched for.

`lookup` runs first in every process (resolver/__main__.py) with only `os`, `sys` and sha256:
the key, the entry, each input's state. Anything else (no entry, a damaged or unreadable one, a
changed input) is a miss, and the full path, which is still correct, runs. Runs that take part:
`resolve --host FILE`, without -v, --dry-run or --check-indexes, whose team declares no targets
(a detected host or a team machine is never replayed: probing the machine is the full path's
work). The envs/ lock: the full no-op path takes it only when a commit journal exists (`settle`),
and then the replay misses, so another run holding the lock delays both alike.
`STACK_RESOLVER_NO_REPLAY=1` turns the lookup and the recording off.
"""

from __future__ import annotations

import os
import sys

from resolver.codestamp import code_stamp
from resolver.dirs import cache_root_text

TYPE_CHECKING = False  # typing, like pathlib and json, costs more than the whole lookup
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from hashlib import sha256
    from typing import Any, TextIO

if not TYPE_CHECKING:  # CPython's own sha256: hashlib loads OpenSSL first (5 ms, a tenth of the budget)
    try:
        from _sha256 import sha256  # Python 3.10, 3.11
    except ImportError:  # pragma: no cover
        try:
            from _sha2 import sha256  # Python 3.12+
        except ImportError:  # another interpreter
            from hashlib import sha256

FORMAT = b"stack-resolver replay 1"
DISABLE_VAR = "STACK_RESOLVER_NO_REPLAY"
# Variables a shell changes between two identical commands (PWD: the working directory is hashed).
VOLATILE = frozenset({"_", "OLDPWD", "SHLVL", "PWD"})
FOLDER = "replay"
KEEP = 64  # entries kept (one per distinct command line, environment and project)
# A target's committed files: those the no-op path checks, and the conda environment beside them.
TARGET_FILES = ("pyproject.toml", "poetry.lock", "resolution.json", "environment.yml", "conda-lock.yml")
# Input kinds: a file's bytes; a matrix layer (its *.toml files); a folder's subfolder names; the
# commit journal's folder (present or not).
FILE, LAYER, FOLDERS, JOURNAL = "f", "m", "s", "j"
_ABSENT = "-"


class Miss:
    """No replay: where this run's entry would go, for the full path to record it."""

    def __init__(self, key: str, path: str, cwd: str) -> None:
        self.key, self.path, self.cwd = key, path, cwd


class Hit:
    """A stored run: its output, in the order it was written, and its exit code."""

    def __init__(self, chunks: list[tuple[str, str]], code: int) -> None:
        self.chunks, self.code = chunks, code

    def play(self, out: TextIO, err: TextIO) -> int:
        last = None
        for name, text in self.chunks:
            stream = out if name == "out" else err
            if last is not None and stream is not last:
                last.flush()  # keep the order on a terminal that shows both
            stream.write(text)
            last = stream
        out.flush()
        err.flush()
        return self.code


def lookup(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Hit | Miss | None:
    """The stored run for this command, a Miss (where to record it), or None: not a `resolve`,
    replay turned off, or no cache folder known without platformdirs."""
    if "resolve" not in argv or _off(environ) or "_ARGCOMPLETE" in environ:
        return None
    root = cache_root_text(environ)
    if root is None:
        return None
    cwd = os.getcwd()
    key = run_key(argv, environ, cwd)
    path = os.path.join(root, FOLDER, key)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return Miss(key, path, cwd)
    entry = parse(data, key)
    if entry is None or any(state(kind, where) != want for kind, where, want in entry[0]):
        return Miss(key, path, cwd)
    return Hit(entry[1], entry[2])


def _off(environ: Mapping[str, str]) -> bool:
    return environ.get(DISABLE_VAR, "").strip() not in ("", "0")


def run_key(argv: Sequence[str], environ: Mapping[str, str], cwd: str) -> str:
    digest = sha256(FORMAT)
    fields = [code_stamp(), sys.executable, sys.version, sys.prefix, cwd, *argv]
    digest.update(repr(fields).encode("utf-8", "surrogatepass"))
    names = sorted(name for name in environ if name not in VOLATILE)
    digest.update(repr([(name, environ[name]) for name in names]).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def state(kind: str, path: str) -> str:
    """What an input is now: a digest of its content, `-` when absent, `d`/`?` for a folder or
    an unreadable file where a file was expected."""
    if kind == FOLDERS:
        try:
            names = sorted(e.name for e in os.scandir(path) if e.is_dir())
        except OSError:
            return _ABSENT
        return sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()
    if kind == JOURNAL:
        return "present" if os.path.lexists(path) else _ABSENT
    if kind == LAYER:  # as resolver/matrix/cache.py `matrix_digest` reads a layer
        try:
            names = sorted(e.name for e in os.scandir(path) if e.name.endswith(".toml"))
        except OSError:
            return _ABSENT
        digest = sha256()
        for name in names:
            digest.update(
                f"{name}\0{state(FILE, os.path.join(path, name))}\0".encode("utf-8", "surrogateescape")
            )
        return digest.hexdigest()
    try:
        with open(path, "rb") as handle:
            return sha256(handle.read()).hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return _ABSENT
    except IsADirectoryError:
        return "d"
    except OSError:
        return "?"


# --- the entry: length-prefixed fields after a header and the body's sha256 --------------------


def _field(tag: bytes, data: bytes) -> bytes:
    return tag + b" " + str(len(data)).encode() + b"\n" + data


def dump(
    key: str, inputs: Sequence[tuple[str, str, str]], chunks: Sequence[tuple[str, str]], code: int
) -> bytes:
    body = [_field(b"K", key.encode()), _field(b"C", str(code).encode())]
    for kind, path, want in inputs:
        body.append(_field(b"I", kind.encode() + b"\0" + want.encode() + b"\0" + os.fsencode(path)))
    for name, text in chunks:
        body.append(_field(b"O" if name == "out" else b"E", text.encode("utf-8", "surrogatepass")))
    joined = b"".join(body)
    return FORMAT + b"\n" + sha256(joined).hexdigest().encode() + b"\n" + joined


def parse(data: bytes, key: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], int] | None:
    """(inputs, chunks, exit code) of an entry; None for anything damaged or not this key's."""
    header, _, rest = data.partition(b"\n")
    checksum, _, body = rest.partition(b"\n")
    if header != FORMAT or sha256(body).hexdigest().encode() != checksum:
        return None
    inputs: list[tuple[str, str, str]] = []
    chunks: list[tuple[str, str]] = []
    found_key, code, position = None, None, 0
    try:
        while position < len(body):
            newline = body.index(b"\n", position)
            tag, size = body[position:newline].split(b" ")
            start, position = newline + 1, newline + 1 + int(size)
            value = body[start:position]
            if tag == b"K":
                found_key = value.decode()
            elif tag == b"C":
                code = int(value)
            elif tag == b"I":
                kind, want, path = value.split(b"\0", 2)
                inputs.append((kind.decode(), os.fsdecode(path), want.decode()))
            elif tag in (b"O", b"E"):
                chunks.append(("out" if tag == b"O" else "err", value.decode("utf-8", "surrogatepass")))
            else:
                return None
    except ValueError:  # a bad length, a field cut short, undecodable text
        return None
    if found_key != key or code is None:
        return None
    return inputs, chunks, code


# --- recording: the full path, after an unchanged run --------------------------------------------


class _Tee:
    """A text stream that also keeps what is written to it, in order with its sibling's."""

    def __init__(self, target: TextIO, name: str, chunks: list[tuple[str, str]]) -> None:
        self._target, self._name, self._chunks = target, name, chunks

    def write(self, text: str) -> int:
        self._chunks.append((self._name, text))
        return self._target.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class Recorder:
    """Records one full `resolve` run for `miss`; stores it when it ended unchanged."""

    def __init__(self, miss: Miss) -> None:
        self.miss = miss
        self.chunks: list[tuple[str, str]] = []
        self.inputs: list[tuple[str, str]] | None = None
        self.before: list[str] = []

    def streams(self, out: TextIO, err: TextIO) -> tuple[TextIO, TextIO]:
        from typing import cast

        return cast("TextIO", _Tee(out, "out", self.chunks)), cast("TextIO", _Tee(err, "err", self.chunks))

    def begin(self, args: argparse.Namespace) -> None:
        """Before the command runs (in the project's root): which inputs, and their states."""
        from resolver.errors import ResolverError

        try:
            self.inputs = record_inputs(args, os.environ, self.miss.cwd)
        except (ResolverError, OSError):
            self.inputs = None  # the command reports it (and is not recorded)
        if self.inputs is not None:
            self.before = [state(kind, path) for kind, path in self.inputs]

    def finish(self, args: argparse.Namespace, code: int) -> None:
        """Store the run when it ended unchanged and no input changed while it ran."""
        if self.inputs is None or code != 0 or getattr(args, "unchanged", False) is not True:
            return
        after = [state(kind, path) for kind, path in self.inputs]
        journal = any(k == JOURNAL and w != _ABSENT for (k, _), w in zip(self.inputs, after, strict=True))
        if after != self.before or journal:  # changed while it ran, or a commit is unfinished
            return
        inputs = [(kind, path, want) for (kind, path), want in zip(self.inputs, after, strict=True)]
        from pathlib import Path

        from resolver.errors import ResolverError
        from resolver.fsutil import atomic_write_bytes

        try:
            atomic_write_bytes(
                Path(self.miss.path), dump(self.miss.key, inputs, self.chunks, code), durable=False
            )
            _prune(os.path.dirname(self.miss.path))
        except (ResolverError, OSError, UnicodeError):
            pass  # a cache that cannot be written is a cache that misses


def _prune(folder: str) -> None:
    entries = sorted(os.scandir(folder), key=lambda e: e.stat().st_mtime_ns, reverse=True)
    for entry in entries[KEEP:]:
        if not entry.name.startswith("."):  # another writer's temporary file
            os.unlink(entry.path)


def recording(args: argparse.Namespace, miss: object) -> bool:
    """Whether this parsed command line can be recorded (see the module's docstring)."""
    return (
        isinstance(miss, Miss)
        and args.command == "resolve"
        and args.host is not None
        and not args.dry_run
        and not args.check_indexes
        and not getattr(args, "verbose", 0)
    )


def record_inputs(
    args: argparse.Namespace, environ: Mapping[str, str], cwd: str
) -> list[tuple[str, str]] | None:
    """Every input of an unchanged `resolve` run, as (kind, absolute path); None when the run
    reads more than this can name (a team that declares targets). Call it in the project root."""
    from pathlib import Path

    from resolver.config import DEFAULT_TEAM_FILE, load_team
    from resolver.lock.commit import TXN_DIR
    from resolver.matrix.load import default_matrix_dir
    from resolver.sources import default_pip_config_files
    from resolver.userconfig import uv_config_files
    from resolver.workflows import declares_targets, envs_dir_for

    team = load_team(args.team)
    if declares_targets(team):
        return None
    inputs: list[tuple[str, str]] = []
    # the project (resolver/project.py): each folder searched for envs/team.toml, nearest first
    if getattr(args, "project", None) is not None:
        inputs.append((FILE, os.path.join(os.getcwd(), DEFAULT_TEAM_FILE)))
    else:
        here = Path(os.path.realpath(cwd))
        for folder in (here, *here.parents):
            inputs.append((FILE, str(folder / DEFAULT_TEAM_FILE)))
            if (folder / DEFAULT_TEAM_FILE).is_file():
                break
    inputs.append((FILE, os.path.abspath(args.team or DEFAULT_TEAM_FILE)))
    inputs.append((FILE, os.path.abspath(args.host)))
    layers = [args.matrix] if args.matrix is not None else [default_matrix_dir(), *team.matrix_overlays]
    inputs += [(LAYER, os.path.abspath(layer)) for layer in layers]
    pip = [str(p) for p in default_pip_config_files(environ)]
    named = environ.get("PIP_CONFIG_FILE", "").strip()
    if named and named != os.devnull:
        pip.append(named)
    if sys.platform == "darwin":  # which user file pip reads depends on this folder existing
        pip.append(os.path.expanduser("~/Library/Application Support/pip"))
    netrc = environ.get("NETRC", "").strip()
    netrcs = [netrc] if netrc else [os.path.expanduser(f"~/{n}") for n in (".netrc", "_netrc")]
    configs = [*pip, *(str(p) for p in uv_config_files(environ, Path.cwd())), *netrcs]
    inputs += [(FILE, os.path.abspath(path)) for path in configs]
    envs = os.path.abspath(envs_dir_for(team))
    inputs.append((JOURNAL, os.path.join(envs, TXN_DIR)))  # recorded only while absent
    if args.target is not None:
        targets = [os.path.join(envs, args.target)]
    else:  # the no-op path looks through every target's record
        inputs.append((FOLDERS, envs))
        targets = sorted(e.path for e in os.scandir(envs) if e.is_dir()) if os.path.isdir(envs) else []
    inputs += [(FILE, os.path.join(target, name)) for target in targets for name in TARGET_FILES]
    return inputs
