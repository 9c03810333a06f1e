"""The command line's grammar: every command's arguments, one builder function per command
(`BUILDERS`), and `build_parser`, which builds them all or only the one a run names. Running a
command is `resolver/cli.py`'s work."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from resolver import __version__
from resolver.errors import InputError


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
    arguments was half of a dry run's time outside imports. See `resolver.cli._named_command`."""
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
