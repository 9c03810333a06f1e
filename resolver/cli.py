# PYTHON_ARGCOMPLETE_OK (shell completion: see docs/usage.md)
"""Command line: parse arguments (their grammar: `resolver/arguments.py`), hand them to a command
handler (`resolver/commands/`), and map errors to exit codes.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from resolver.arguments import build_parser as build_parser  # re-exported: callers import it from here
from resolver.errors import ExitCode, NoCompatibleCombination, ResolverError
from resolver.index.credentials import redact


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
    from resolver.sources import default_pip_config_files
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


def _warn_unknown_variables(err: TextIO) -> None:
    """A misspelled STACK_RESOLVER_* variable is named (it would change nothing); any run warns."""
    from resolver.variables import unknown_variables

    for warning in unknown_variables(os.environ):
        err.write(f"warning: {warning}\n")


def _say_configuration(args: argparse.Namespace) -> None:
    """-v: the effective indexes, each with where it came from, before the command runs."""
    from resolver import progress

    if progress.current().verbosity < progress.VERBOSE or args.command in _NO_PROJECT:
        return
    from resolver.config import load_team
    from resolver.sources import default_pip_config_files, effective_indexes

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
            _warn_unknown_variables(err)
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
