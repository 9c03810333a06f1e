# PYTHON_ARGCOMPLETE_OK (shell completion: see docs/usage.md)
"""Command line: parse arguments, hand them to a command handler (`resolver/commands/`), and map
errors to exit codes.

Exit codes are `resolver.errors.ExitCode`: 0 success; 1 an external tool or index failed; 2 bad
input (files, flags, constraints); 3 no valid combination; 4 an audit found a broken target;
5 a check failed (doctor, verify, check).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from resolver import __version__
from resolver.errors import ExitCode, InputError, NoCompatibleCombination, ResolverError
from resolver.index.credentials import redact


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but bad arguments raise InputError (exit 2, one paragraph) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{self.prog}: {message}", hint=f"run `{self.prog} --help`")


def _positive_int(text: str) -> int:
    """A count of at least 1 (`--jobs`): 0 or -1 would lock nothing, or mean something unstated."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _add_host_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", type=Path, metavar="FILE", help="read the host from a host JSON file")


def _add_solve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matrix", type=Path, metavar="DIR", help="use this matrix directory")
    parser.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    parser.add_argument(
        "--constraint",
        action="append",
        default=[],
        metavar="SPEC",
        help='version constraint on a managed package, e.g. "torch>=2.4,<2.7" (repeatable)',
    )
    parser.add_argument("--variant", help="force a variant: cpu, cu126, cu128, rocm6.3 ...")
    parser.add_argument("--python", help="Python version to resolve for, e.g. 3.11")
    parser.add_argument("--allow-ptx", action="store_true", help="accept GPUs reached only via PTX JIT")
    parser.add_argument("--allow-unverified", action="store_true", help="use matrix rows marked unverified")
    parser.add_argument(
        "--allow-cpu-fallback", action="store_true", help="allow a CPU build on a host with an NVIDIA GPU"
    )


def _add_write_args(parser: argparse.ArgumentParser, what: str) -> None:
    """The flags of a command that writes envs/ (`resolve`, `lock`)."""
    parser.add_argument("--dry-run", action="store_true", help=f"print {what}; write nothing, ask no index")
    parser.add_argument(
        "--check-indexes",
        action="store_true",
        help="with --dry-run: check the indexes and channels as a real run does (same answer)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--offline", action="store_true", help="use only the index cache; no network")
    parser.add_argument(
        "--no-wait", action="store_true", help="fail at once if another run is writing envs/ (default: wait)"
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `command`, only that command's arguments (every command is
    still named, for --help and errors): a run parses one command, and adding the other commands'
    arguments was half of a dry run's time outside imports. See `_named_command`."""
    parser = _ArgumentParser(
        prog="stack-resolver",
        description="Resolve, lock and verify GPU machine-learning stacks.",
    )
    parser.add_argument("--version", action="version", version=f"stack-resolver {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    built: list[argparse.ArgumentParser] = []
    for name, (summary, build) in BUILDERS.items():
        sub = commands.add_parser(name, help=summary)
        if command is None or name == command:
            build(sub)
            built.append(sub)
    _add_global_options(parser, built)
    return parser


def _detect(parser: argparse.ArgumentParser) -> None:
    _add_host_args(parser)
    parser.add_argument("--json", action="store_true", help="print the host JSON")


def _doctor(parser: argparse.ArgumentParser) -> None:
    _add_host_args(parser)
    parser.add_argument("--requirements", type=Path, metavar="FILE", help="TOML file with [requirements]")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def _resolve(parser: argparse.ArgumentParser) -> None:
    _add_host_args(parser)
    _add_solve_args(parser)
    _add_write_args(parser, "the choice")
    parser.add_argument("--explain", action="store_true", help="list every rejected candidate")
    parser.add_argument("--target", help="name of the environment to write (default: derived from the host)")
    parser.add_argument(
        "--format",
        action="append",
        choices=("poetry", "conda"),
        dest="formats",
        help="lock format to write (repeatable; default: `formats` in the team file)",
    )
    parser.add_argument(
        "--engine",
        choices=("rattler", "conda-lock"),
        default="rattler",
        help="conda locks: solve in-process with py-rattler (default), or run real conda-lock",
    )


def _lock(parser: argparse.ArgumentParser) -> None:
    _add_solve_args(parser)
    _add_write_args(parser, "the team's version set")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="targets locked at once (default: 8, or the CPU count if higher)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 5 when any target's lock is stale"
    )


def _audit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="*", metavar="SPEC", help='proposed specs, e.g. "torch==2.9.1"')
    _add_solve_args(parser)
    parser.add_argument(
        "--no-lock", action="store_true", help="matrix-only audit: no scratch lock, no package diff"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="write a Markdown report (for a pull request)"
    )
    parser.add_argument(
        "--grid", type=Path, metavar="FILE", help="write an SVG grid: targets x torch releases"
    )
    parser.add_argument("--offline", action="store_true", help="use only the index cache; no network")


def _verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="target to verify (default: the only one, or this host's)")
    parser.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--python", metavar="EXE", help="interpreter for the venv (default: pythonX.Y)")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="create the venv (conda: the prefix) here and keep it"
    )
    parser.add_argument(
        "--format",
        dest="lock_format",
        choices=("poetry", "conda"),
        help="which lock to install when a target has both (default: poetry.lock when present)",
    )


def _check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--python", metavar="EXE", help="its interpreter (default: $VIRTUAL_ENV, else .venv)")
    parser.add_argument("--target", help="compare with this locked target (default: the one matching)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--smoke", action="store_true", help="also run the smoke tests in that environment")
    parser.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    _add_host_args(parser)


def _matrix(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="matrix_command", metavar="ACTION", parser_class=_ArgumentParser)
    validate = actions.add_parser("validate", help="check every matrix file")
    validate.add_argument("--matrix", type=Path, metavar="DIR")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    show = actions.add_parser("show", help="print what the matrix says about one thing")
    show.add_argument("kind", choices=("torch", "cuda", "gpu", "transformers"))
    show.add_argument("key")
    show.add_argument("--matrix", type=Path, metavar="DIR")
    show.add_argument("--json", action="store_true", help="print JSON")
    refresh = actions.add_parser("refresh", help="propose matrix rows from the package indexes")
    refresh.add_argument("--matrix", type=Path, metavar="DIR", help="matrix to refresh (default: shipped)")
    refresh.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    refresh.add_argument("--write", action="store_true", help="apply the printed diff")
    refresh.add_argument("--json", action="store_true", help="print the proposal as JSON")
    refresh.add_argument("--offline", action="store_true", help="use only the index cache; no network")
    refresh.add_argument("--only", metavar="KINDS", help="torch, transformers or both (comma-separated)")
    refresh.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="also look for this variant on the PyTorch index, e.g. rocm7.3 (repeatable)",
    )


# Commands that hand a target's lock to other tools, or install it here; then `info`.


def _export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="target to export (default: the only one, or this host's)")
    parser.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    parser.add_argument("--format", dest="export_format", required=True, choices=("pylock", "requirements"))
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help=(
            "where to write (default: pylock.toml / requirements.txt in the target's folder; - for stdout)"
        ),
    )
    parser.add_argument("--offline", action="store_true", help="use only the index cache; no network")


def _sync(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="target to install (default: the only one, or this host's)")
    parser.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    parser.add_argument("--venv", type=Path, metavar="DIR", default=None, help="the venv (default: .venv)")
    parser.add_argument("--python", metavar="EXE", help="interpreter for a venv that does not exist yet")
    parser.add_argument("--no-uv", action="store_true", help="install with pip even when uv is available")


def _info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    parser.add_argument("--matrix", type=Path, metavar="DIR", help="matrix directory")
    parser.add_argument("--json", action="store_true", help="print JSON")


# Each command: its line in `--help`, and what adds its arguments. In the order `--help` lists
# them. Every command here has a handler in resolver.commands.COMMANDS and no other (a test checks).
BUILDERS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "detect": ("describe this machine (or a host file)", _detect),
    "doctor": ("check the host against the team's minimum requirements", _doctor),
    "resolve": ("choose torch/variant/transformers for a host", _resolve),
    "lock": ("one version set for every target of the team; lock them all", _lock),
    "audit": ("what a proposed upgrade (or matrix update) does to every target", _audit),
    "verify": ("install a target's lock into a fresh venv and smoke-test it", _verify),
    "check": ("inspect an existing environment (changes nothing)", _check),
    "matrix": ("validate or query the compatibility matrix", _matrix),
    "export": ("write a target's lock as pylock.toml or requirements.txt", _export),
    "sync": ("install a target's lock into a venv exactly (.venv by default)", _sync),
    "info": ("what is in effect: indexes and their origin, cache, matrix, Poetry", _info),
}


def _add_global_options(parser: argparse.ArgumentParser, built: list[argparse.ArgumentParser]) -> None:
    """Options every command takes, before or after the command's name (`--project DIR resolve`
    or `resolve --project DIR`); on a subcommand (the `built` ones and their own subcommands)
    they default to SUPPRESS so they never reset a value given before it."""

    def nested(sub: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [sub]
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found.extend(nested(child))
        return found

    everyone = [parser, *(p for sub in built for p in nested(sub))]
    for index, target in enumerate(everyone):
        default = None if index == 0 else argparse.SUPPRESS
        target.add_argument(
            "--project",
            type=Path,
            metavar="DIR",
            default=default,
            help="the project folder (holding envs/team.toml); default: found from the working directory up",
        )
        target.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=False if index == 0 else argparse.SUPPRESS,
            help="print no progress on stderr",
        )
        target.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0 if index == 0 else argparse.SUPPRESS,
            help="-v: also the effective configuration; -vv: also each external command",
        )


# --- commands --------------------------------------------------------------------------------


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every staging folder and child goes with it."""


def _stop(signum: int, frame: FrameType | None) -> None:
    from resolver.lock.runner import CHILDREN

    CHILDREN.terminate_all()
    raise _Stopped(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP handled like SIGINT (exit 130). Only the main thread can set handlers."""
    wanted = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    try:
        previous = {s: signal.signal(s, _stop) for s in wanted}
    except ValueError:  # not the main thread (an embedding application's worker)
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# Commands that read no project (a host is described wherever it is run).
_NO_PROJECT = frozenset({"detect"})


@contextlib.contextmanager
def _in_project(args: argparse.Namespace, err: TextIO) -> Iterator[None]:
    """Run a command in its project's root, as git runs in its top-level folder: paths given on
    the command line are made absolute first (they mean what they meant where the user typed
    them), the project in use is named on stderr, and the working directory is restored after."""
    from resolver import progress
    from resolver.project import find_project

    if args.command in _NO_PROJECT:
        yield
        return
    cwd = Path.cwd()
    project = find_project(cwd, getattr(args, "project", None))
    args.found_project = project  # for `info`
    if project.team_file is not None or getattr(args, "project", None) is not None:
        progress.say(project.describe())
    if project.root == cwd.resolve():
        yield  # paths stay as typed, and messages name them so
        return
    for name, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, name, cwd / value)
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            setattr(args, name, [cwd / v for v in value])
    os.chdir(project.root)
    try:
        yield
    finally:
        os.chdir(cwd)


def _uses_network(args: argparse.Namespace) -> bool:
    """Whether the command may reach an index (and so needs the user's certificates)."""
    if args.command in ("detect", "doctor"):
        return False
    if args.command == "matrix":
        return getattr(args, "matrix_command", None) == "refresh"
    if args.command == "resolve":
        return not args.dry_run or bool(getattr(args, "check_indexes", False))
    return True


@contextlib.contextmanager
def _user_certificates(args: argparse.Namespace) -> Iterator[None]:
    """pip's `cert` setting, for the duration of a command that may reach an index (see
    `certificate_environment`)."""
    if not _uses_network(args):
        yield
        return
    from resolver.config import default_pip_config_files
    from resolver.userconfig import certificate_environment

    added = certificate_environment(os.environ, default_pip_config_files(os.environ))
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _reporter(args: argparse.Namespace, err: TextIO) -> contextlib.AbstractContextManager[object]:
    from resolver import progress

    verbosity = progress.QUIET if getattr(args, "quiet", False) else min(getattr(args, "verbose", 0) or 0, 2)
    interactive = err.isatty() and os.environ.get("TERM", "") != "dumb"
    return progress.reporting(progress.Reporter(stream=err, verbosity=verbosity, interactive=interactive))


def _say_configuration(args: argparse.Namespace) -> None:
    """-v: the effective indexes, each with where it came from, before the command runs."""
    from resolver import progress

    if progress.current().verbosity < progress.VERBOSE or args.command in _NO_PROJECT:
        return
    from resolver.config import default_pip_config_files, effective_indexes, load_team

    try:
        indexes = effective_indexes(load_team(getattr(args, "team", None)), os.environ,
                                    default_pip_config_files(os.environ))  # fmt: skip
    except ResolverError:
        return  # the command itself reports a bad team file
    progress.say(f"index pytorch: {indexes.pytorch} (from {indexes.origin('pytorch')})", progress.VERBOSE)
    if indexes.general:
        progress.say(f"index general: {indexes.general} (from {indexes.origin('general')})", progress.VERBOSE)
    for url in indexes.extra:
        progress.say(f"index extra: {url} (from {indexes.origin('extra:' + url)})", progress.VERBOSE)


def _complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion through argcomplete: answers and exits when the shell asks (it sets
    `_ARGCOMPLETE`), and does nothing otherwise."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


def _named_command(argv: Sequence[str] | None) -> str | None:
    """The command to build the parser for (`build_parser`): the one command name on the command
    line; None (every command) when there is none or more than one (a value may be spelled like
    a command: `--project lock resolve`), or when the shell asks for completions. Whichever
    command argparse then takes, it is either fully built or the run fails as before."""
    if "_ARGCOMPLETE" in os.environ:
        return None
    words = sys.argv[1:] if argv is None else argv
    from resolver.commands import COMMANDS  # the handler table: one entry per command

    named = {word for word in words if word in COMMANDS}
    return named.pop() if len(named) == 1 else None


def _wants_json(argv: Sequence[str] | None) -> bool:
    """`--json` anywhere on the command line: errors are then JSON on stdout too, even one found
    while the arguments were parsed."""
    words = sys.argv[1:] if argv is None else argv
    return "--json" in words


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    replay_miss: object = None,
) -> int:
    """Run one command. `replay_miss`: what `resolver.replay.lookup` found for this process's
    command line (its own, not `argv`'s), for an unchanged `resolve` to be recorded."""
    out = out or sys.stdout
    err = err or sys.stderr
    recorder = None
    if replay_miss is not None:
        from resolver import replay

        recorder = replay.Recorder(replay_miss) if isinstance(replay_miss, replay.Miss) else None
        if recorder is not None:
            out, err = recorder.streams(out, err)
    try:
        with _stop_on_signals():
            parser = build_parser(_named_command(argv))
            _complete(parser)
            args = parser.parse_args(argv)
            if args.command is None:
                build_parser().print_help(out)
                return ExitCode.BAD_INPUT
            if recorder is not None and not replay.recording(args, replay_miss):
                recorder = None
            with _reporter(args, err), _in_project(args, err), _user_certificates(args):
                _say_configuration(args)
                from resolver.commands import handler

                if recorder is not None:
                    recorder.begin(args)
                code = handler(args.command)(args, out, err)
                if recorder is not None:
                    recorder.finish(args, code)
                return code
    except NoCompatibleCombination as exc:
        # a command that does not report a failed solve itself: the explain layer still does
        from resolver.explain import render as explain

        if _wants_json(argv):
            out.write(json.dumps(explain.failure_json(exc), indent=2) + "\n")
        else:
            err.write(explain.render_failure(exc))
        return exc.exit_code
    except ResolverError as exc:
        # Credentials never reach a message, whatever a tool or an index echoed back.
        err.write(f"error: {redact(exc.render())}\n")
        if _wants_json(argv):
            kind = exc.exit_code.name.lower()
            out.write(
                json.dumps({"error": redact(exc.render()), "kind": kind, "exit_code": int(exc.exit_code)})
                + "\n"
            )
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`stack-resolver ... | head`): nobody is left to tell, so end
        # quietly, as a tool killed by SIGPIPE would. A pipe to a child is not this: subprocess
        # absorbs those.
        return output_closed(out)
    except OSError as exc:
        # A file operation outside the one read and write paths (a folder the run creates):
        # still one line naming the file, never a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        err.write(f"error: {where}{exc.strerror or exc}; nothing was half-written.\n")
        return ExitCode.EXTERNAL_FAILURE
    except KeyboardInterrupt:
        from resolver.lock.runner import CHILDREN

        CHILDREN.terminate_all()
        err.write("interrupted\n")
        return ExitCode.INTERRUPTED


def output_closed(out: TextIO) -> ExitCode:
    """Point `out`'s descriptor at the null device, so that the interpreter's last flush of what
    is still buffered fails no more (Python's documented way: the signal module's note on
    SIGPIPE); the exit status says what happened."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a file (a test's StringIO), or closed
        pass
    return ExitCode.OUTPUT_CLOSED


def run(replay_miss: object = None) -> NoReturn:
    """`python -m resolver` and the `stack-resolver` script (through resolver/__main__.py)."""
    sys.exit(main(replay_miss=replay_miss))
