# PYTHON_ARGCOMPLETE_OK (shell completion: see docs/usage.md)
"""Command line: parse arguments, call plain functions, print, and map errors to exit codes.

Exit codes are `resolver.errors.ExitCode`: 0 success; 1 an external tool or index failed; 2 bad
input (files, flags, constraints); 3 no valid combination; 4 an audit found a broken target;
5 a check failed (doctor, verify, check).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TextIO

from resolver import __version__
from resolver.errors import ExitCode, InputError, NoCompatibleCombination, ResolverError
from resolver.index.credentials import redact

if TYPE_CHECKING:
    from typing import TypeAlias

    # what `add_subparsers` returns: where commands are added
    Subcommands: TypeAlias = "argparse._SubParsersAction[_ArgumentParser]"
    from resolver.workflows import Chosen, RunOptions, SolveOptions, TeamLocked, TeamMachine


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


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="stack-resolver",
        description="Resolve, lock and verify GPU machine-learning stacks.",
    )
    parser.add_argument("--version", action="version", version=f"stack-resolver {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)

    detect = commands.add_parser("detect", help="describe this machine (or a host file)")
    _add_host_args(detect)
    detect.add_argument("--json", action="store_true", help="print the host JSON")

    doctor = commands.add_parser("doctor", help="check the host against the team's minimum requirements")
    _add_host_args(doctor)
    doctor.add_argument("--requirements", type=Path, metavar="FILE", help="TOML file with [requirements]")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")

    resolve = commands.add_parser("resolve", help="choose torch/variant/transformers for a host")
    _add_host_args(resolve)
    _add_solve_args(resolve)
    _add_write_args(resolve, "the choice")
    resolve.add_argument("--explain", action="store_true", help="list every rejected candidate")
    resolve.add_argument("--target", help="name of the environment to write (default: derived from the host)")
    resolve.add_argument(
        "--format",
        action="append",
        choices=("poetry", "conda"),
        dest="formats",
        help="lock format to write (repeatable; default: `formats` in the team file)",
    )
    resolve.add_argument(
        "--engine",
        choices=("rattler", "conda-lock"),
        default="rattler",
        help="conda locks: solve in-process with py-rattler (default), or run real conda-lock",
    )

    lock = commands.add_parser("lock", help="one version set for every target of the team; lock them all")
    _add_solve_args(lock)
    _add_write_args(lock, "the team's version set")
    lock.add_argument(
        "--jobs", type=_positive_int, metavar="N", help="targets locked at once (default: CPU count)"
    )
    lock.add_argument(
        "--check", action="store_true", help="write nothing; exit 5 when any target's lock is stale"
    )

    audit = commands.add_parser(
        "audit", help="what a proposed upgrade (or matrix update) does to every target"
    )
    audit.add_argument("specs", nargs="*", metavar="SPEC", help='proposed specs, e.g. "torch==2.9.1"')
    _add_solve_args(audit)
    audit.add_argument(
        "--no-lock", action="store_true", help="matrix-only audit: no scratch lock, no package diff"
    )
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.add_argument(
        "--report", type=Path, metavar="FILE", help="write a Markdown report (for a pull request)"
    )
    audit.add_argument(
        "--grid", type=Path, metavar="FILE", help="write an SVG grid: targets x torch releases"
    )
    audit.add_argument("--offline", action="store_true", help="use only the index cache; no network")

    verify = commands.add_parser("verify", help="install a target's lock into a fresh venv and smoke-test it")
    verify.add_argument("--target", help="target to verify (default: the only one, or this host's)")
    verify.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--python", metavar="EXE", help="interpreter for the venv (default: pythonX.Y)")
    verify.add_argument(
        "--keep", type=Path, metavar="DIR", help="create the venv (conda: the prefix) here and keep it"
    )
    verify.add_argument(
        "--format",
        dest="lock_format",
        choices=("poetry", "conda"),
        help="which lock to install when a target has both (default: poetry.lock when present)",
    )

    check = commands.add_parser("check", help="inspect an existing environment (changes nothing)")
    check.add_argument("--python", metavar="EXE", help="its interpreter (default: $VIRTUAL_ENV, else .venv)")
    check.add_argument("--target", help="compare with this locked target (default: the one matching)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--smoke", action="store_true", help="also run the smoke tests in that environment")
    check.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    _add_host_args(check)

    matrix = commands.add_parser("matrix", help="validate or query the compatibility matrix")
    matrix_commands = matrix.add_subparsers(
        dest="matrix_command", metavar="ACTION", parser_class=_ArgumentParser
    )
    validate = matrix_commands.add_parser("validate", help="check every matrix file")
    validate.add_argument("--matrix", type=Path, metavar="DIR")
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    show = matrix_commands.add_parser("show", help="print what the matrix says about one thing")
    show.add_argument("kind", choices=("torch", "cuda", "gpu", "transformers"))
    show.add_argument("key")
    show.add_argument("--matrix", type=Path, metavar="DIR")
    show.add_argument("--json", action="store_true", help="print JSON")
    refresh = matrix_commands.add_parser("refresh", help="propose matrix rows from the package indexes")
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
    _add_handoff_commands(commands)
    _add_global_options(parser, commands)
    return parser


def _add_handoff_commands(commands: Subcommands) -> None:
    """Commands that hand a target's lock to other tools, or install it here."""
    export = commands.add_parser("export", help="write a target's lock as pylock.toml or requirements.txt")
    export.add_argument("--target", help="target to export (default: the only one, or this host's)")
    export.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    export.add_argument("--format", dest="export_format", required=True, choices=("pylock", "requirements"))
    export.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="where to write (default: pylock.toml / requirements.txt in the target's folder; - for stdout)",
    )
    export.add_argument("--offline", action="store_true", help="use only the index cache; no network")
    sync = commands.add_parser("sync", help="install a target's lock into a venv exactly (.venv by default)")
    sync.add_argument("--target", help="target to install (default: the only one, or this host's)")
    sync.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    sync.add_argument("--venv", type=Path, metavar="DIR", default=None, help="the venv (default: .venv)")
    sync.add_argument("--python", metavar="EXE", help="interpreter for a venv that does not exist yet")
    sync.add_argument("--no-uv", action="store_true", help="install with pip even when uv is available")
    info = commands.add_parser(
        "info", help="what is in effect: indexes and their origin, cache, matrix, Poetry"
    )
    info.add_argument("--team", type=Path, metavar="FILE", help="team file (default envs/team.toml)")
    info.add_argument("--matrix", type=Path, metavar="DIR", help="matrix directory")
    info.add_argument("--json", action="store_true", help="print JSON")


def _add_global_options(parser: argparse.ArgumentParser, commands: Subcommands) -> None:
    """Options every command takes, before or after the command's name (`--project DIR resolve`
    or `resolve --project DIR`); on a subcommand they default to SUPPRESS so they never reset a
    value given before it."""

    def nested(sub: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [sub]
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found.extend(nested(child))
        return found

    everyone = [parser, *(p for sub in commands.choices.values() for p in nested(sub))]
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


def cmd_detect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.host import probes
    from resolver.host.model import read_host_file
    from resolver.host.render import render_host

    if args.host is not None:
        host = probes.with_overrides(read_host_file(args.host), os.environ)
        detection = probes.Detection(host=host, warnings=())
    else:
        detection = probes.detect(probes.Probes.system(Path.cwd()))
    if args.json:
        out.write(detection.host.dumps())
        for warning in detection.warnings:
            err.write(f"warning: {warning}\n")
    else:
        out.write(render_host(detection))
    return 0


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.config import DEFAULT_TEAM_FILE
    from resolver.host import doctor
    from resolver.workflows import detect_host

    host, warnings = detect_host(args.host)
    for warning in warnings:
        err.write(f"warning: {warning}\n")
    path = args.requirements
    if path is None and DEFAULT_TEAM_FILE.exists():
        path = DEFAULT_TEAM_FILE
    requirements = doctor.read_requirements(path) if path is not None else doctor.Requirements()
    checks = doctor.check(host, requirements)
    if args.json:
        payload = {
            "ok": not any(c.status == "fail" for c in checks),
            "checks": [dataclasses.asdict(c) for c in checks],
            "warnings": list(warnings),
        }
        # what this process may use beside the machine's totals (cgroups, affinity)
        limits = doctor.checks_json(host, checks)
        payload.update({k: v for k, v in limits.items() if k not in payload})
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        out.write(doctor.render_limits(host) + doctor.render_checks(checks))
    return ExitCode.CHECK_FAILED if any(c.status == "fail" for c in checks) else ExitCode.OK


def _solve_options(args: argparse.Namespace) -> SolveOptions:
    from resolver.workflows import SolveOptions

    return SolveOptions(
        matrix_dir=args.matrix,
        team_file=args.team,
        constraints=tuple(args.constraint),
        variant=args.variant,
        python=args.python,
        allow_ptx=args.allow_ptx,
        allow_unverified=args.allow_unverified,
        allow_cpu_fallback=args.allow_cpu_fallback,
    )


def _run_options(args: argparse.Namespace) -> RunOptions:
    from resolver.workflows import RunOptions

    if args.check_indexes and not args.dry_run:
        raise InputError("--check-indexes goes with --dry-run (a real run always checks the indexes)")
    return RunOptions(
        dry_run=args.dry_run, check_indexes=args.check_indexes, offline=args.offline, wait=not args.no_wait
    )


def _notifier(err: TextIO) -> Callable[[str], None]:
    def notify(line: str) -> None:
        err.write(line + "\n")
        err.flush()

    return notify


def cmd_resolve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.workflows import ResolveOptions, TeamMachine, resolve

    options = ResolveOptions(
        solve=_solve_options(args),
        run=_run_options(args),
        host_file=args.host,
        target=args.target,
        formats=tuple(args.formats or ()),
        engine=args.engine,
    )
    try:
        result = resolve(options, os.environ, _notifier(err))
    except NoCompatibleCombination as exc:
        return _report_failure(exc, args.json, args.explain, out, err)
    if isinstance(result, TeamMachine):
        return _report_team_machine(result, args.json, out)
    return _report_chosen(result, args.json, args.explain, out, err)


def _report_team_machine(result: TeamMachine, as_json: bool, out: TextIO) -> int:
    out.write(f"This machine is target '{result.target}' ({result.why}).\n")
    if result.locked is not None:
        out.write("Its environment is not locked yet: locking the team now.\n")
        return _report_team(result.locked, as_json, out)
    out.write(f"Using the team's locked environment {result.directory}/ (no fresh solve).\n")
    out.write(f"Install it with: cd {result.directory} && poetry install --sync --no-root\n")
    return 0


def cmd_lock(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.explain import render as explain
    from resolver.workflows import LockOptions, lock

    if args.check:
        return cmd_lock_check(args, out, err)
    if args.jobs is not None and args.jobs < 1:
        raise InputError("--jobs must be at least 1", value=str(args.jobs), hint="e.g. --jobs 4")
    options = LockOptions(solve=_solve_options(args), run=_run_options(args), jobs=args.jobs)
    try:
        result = lock(options, os.environ, _notifier(err))
    except NoCompatibleCombination as exc:
        if args.json:
            out.write(json.dumps(explain.team_failure_json(exc), indent=2) + "\n")
        else:
            err.write(explain.render_team_failure(exc))
        return exc.exit_code
    return _report_team(result, args.json, out)


def _report_team(result: TeamLocked, as_json: bool, out: TextIO) -> int:
    from resolver.team.lock import render_team, team_json

    outcome = result.outcome
    if as_json:
        payload = team_json(result.resolution, result.indexes)
        payload["indexes_checked"] = result.indexes_checked
        if outcome is not None:
            payload["written"] = {str(w.directory): list(w.changed) for w in outcome.written}
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    out.write(render_team(result.resolution, result.targets))
    if not result.indexes_checked:
        out.write(NOT_CHECKED + "\n")
    if outcome is None:
        return 0
    for item in outcome.written:
        state = (
            "lock reused"
            if item.reused
            else ("wrote " + ", ".join(item.changed) if item.changed else "up to date")
        )
        out.write(f"{item.directory}: {state}\n")
    out.write("team.lock.json: " + ("written" if outcome.team_file_changed else "unchanged") + "\n")
    return 0


NOT_CHECKED = "Indexes not checked (--dry-run): add --check-indexes to check that the builds exist."


def cmd_lock_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`lock --check`: exit 5 when any target's lock is stale against its inputs or the matrix."""
    from resolver.workflows import check_locks

    try:
        checks = check_locks(_solve_options(args), os.environ, offline=args.offline)
    except NoCompatibleCombination as exc:
        from resolver.explain import render as explain

        if args.json:
            out.write(json.dumps(explain.team_failure_json(exc), indent=2) + "\n")
        else:
            err.write(explain.render_team_failure(exc))
        return exc.exit_code
    stale = [c for c in checks if not c.fresh]
    if args.json:
        payload = {
            "stale": [c.name for c in stale],
            "targets": {
                c.name: {"fresh": c.fresh, "why": c.why, "directory": str(c.directory)} for c in checks
            },
        }
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        for check in checks:
            out.write(f"{check.directory}: {'up to date' if check.fresh else 'STALE: ' + check.why}\n")
    return ExitCode.CHECK_FAILED if stale else ExitCode.OK


def cmd_audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.config import default_pip_config_files, effective_indexes, load_team
    from resolver.fsutil import atomic_write_text
    from resolver.matrix.load import load_matrix
    from resolver.team import audit
    from resolver.team.lock import read_team_lock
    from resolver.team.solve import load_targets
    from resolver.workflows import build_request, envs_dir_for, make_client

    team = load_team(args.team)
    # --matrix here is the matrix to audit (a refreshed one); the team's overlays still apply.
    matrix = load_matrix(args.matrix, overlays=team.matrix_overlays)
    request = build_request(_solve_options(args), team)
    targets = load_targets(team, matrix)
    envs = envs_dir_for(team)
    current = read_team_lock(envs)
    if current is None:
        err.write(f"warning: {envs / 'team.lock.json'} not found: auditing without a current lock\n")
    result = audit.audit_team(targets, matrix, request, args.specs, current)
    if not args.no_lock:
        indexes = effective_indexes(team, os.environ, default_pip_config_files(os.environ))
        client = make_client(os.environ, offline=args.offline, indexes=indexes)
        from resolver import progress

        with progress.step("audit: scratch locks of the proposal"):
            result = audit.with_package_diffs(result, targets, matrix, request, team, indexes, client, envs)
    if args.report is not None:
        atomic_write_text(args.report, audit.render_markdown(result))
    if args.grid is not None:
        atomic_write_text(args.grid, audit.render_svg(result))
    if args.json:
        out.write(json.dumps(audit.audit_json(result), indent=2) + "\n")
    else:
        out.write(audit.render_table(result))
    return result.exit_code


def _report_failure(
    exc: NoCompatibleCombination, as_json: bool, explain_all: bool, out: TextIO, err: TextIO
) -> int:
    from resolver.explain import render as explain

    if as_json:
        out.write(json.dumps(explain.failure_json(exc), indent=2) + "\n")
    else:
        err.write(explain.render_failure(exc, explain=explain_all))
    return exc.exit_code


def _report_chosen(result: Chosen, as_json: bool, explain_all: bool, out: TextIO, err: TextIO) -> int:
    from resolver.explain import render as explain

    written = result.written
    if as_json:
        payload = explain.resolution_json(result.resolution, result.index_url)
        payload["warnings"] = [*result.warnings, *payload["warnings"]]
        payload["indexes_checked"] = result.indexes_checked
        payload["upgrades"] = explain.upgrades_json(result.upgrades)
        if written is not None:
            payload["environment"] = {
                "target": written.target,
                "directory": str(written.directory),
                "reused": written.reused,
                "written": list(written.changed),
            }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    for warning in result.warnings:
        err.write(f"warning: {warning}\n")
    out.write(explain.render_resolution(result.resolution, result.index_url, explain=explain_all))
    out.write(explain.render_upgrades(result.upgrades))
    if not result.indexes_checked:
        out.write(NOT_CHECKED + "\n")
    if written is None:
        return 0
    if written.reused:
        out.write(f"{written.directory}: inputs unchanged, lock reused (nothing written)\n")
    elif written.changed:
        out.write(f"{written.directory}: wrote {', '.join(written.changed)}\n")
    else:
        out.write(f"{written.directory}: up to date\n")
    return 0


def cmd_matrix(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.matrix.load import default_matrix_dir, validate_matrix
    from resolver.matrix.show import show

    if args.matrix_command == "validate":
        directory = args.matrix or default_matrix_dir()
        problems = validate_matrix(directory)
        if args.json:
            payload = {
                "ok": not problems,
                "directory": str(directory),
                "problems": [{"problem": p.render(), "file": p.location.file, "line": p.location.line,
                              "key": p.location.key} for p in problems],
            }  # fmt: skip
            out.write(json.dumps(payload, indent=2) + "\n")
            return ExitCode.BAD_INPUT if problems else ExitCode.OK
        if problems:
            for problem in problems:
                err.write(problem.render() + "\n")
            err.write(f"{len(problems)} problem(s) in {directory}\n")
            return ExitCode.BAD_INPUT
        out.write(f"matrix OK: {directory}\n")
        return 0
    if args.matrix_command == "show":
        from resolver.matrix.load import load_matrix

        text = show(load_matrix(args.matrix), args.kind, args.key)
        if args.json:
            out.write(
                json.dumps({"kind": args.kind, "key": args.key, "lines": text.splitlines()}, indent=2) + "\n"
            )
        else:
            out.write(text)
        return 0
    if args.matrix_command == "refresh":
        return _matrix_refresh(args, out, err)
    raise InputError("stack-resolver matrix: choose an action", hint="validate, show or refresh")


def _matrix_refresh(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import date

    from resolver.config import check_variant, default_pip_config_files, effective_indexes, load_team
    from resolver.matrix.load import default_matrix_dir
    from resolver.matrix.refresh import propose as refresh
    from resolver.workflows import make_client

    team = load_team(args.team)
    indexes = effective_indexes(team, os.environ, default_pip_config_files(os.environ))
    only = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else refresh.KINDS
    from resolver import progress

    extra_variants = [check_variant(v, "--variant") for v in args.variant]
    with progress.step("matrix refresh: reading the indexes"):
        proposal = refresh.propose(
            args.matrix or default_matrix_dir(),
            indexes,
            make_client(os.environ, offline=args.offline, indexes=indexes),
            today=date.today(),
            only=only,
            extra_variants=extra_variants,
        )
    if args.json:
        written = (
            [str(p) for p in refresh.write_proposal(proposal)] if args.write and proposal.changed else []
        )
        payload = {
            "directory": str(proposal.directory),
            "changed": bool(proposal.changed),
            "diff": proposal.diff(),
            "summary": list(proposal.summary),
            "warnings": list(proposal.warnings),
            "written": written,
        }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    out.write(proposal.diff())
    for line in proposal.summary:
        err.write(f"refresh: {line}\n")
    for warning in proposal.warnings:
        err.write(f"warning: {warning}\n")
    if not proposal.changed:
        err.write(f"{proposal.directory}: up to date with the indexes (nothing to change)\n")
    elif args.write:
        for path in refresh.write_proposal(proposal):
            err.write(f"wrote {path}\n")
    else:
        err.write("nothing written; review the diff and run again with --write to apply it\n")
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.config import load_team
    from resolver.verify import poetry as verify
    from resolver.workflows import detect_host, envs_dir_for, settle

    host, warnings = detect_host(None)
    for warning in warnings:
        err.write(f"warning: {warning}\n")
    team = load_team(args.team)
    name = args.target
    if name is None and (team.raw.get("targets") or team.raw.get("inventory")):
        from resolver.matrix.load import load_matrix
        from resolver.team.solve import load_targets, match_target

        matrix = load_matrix(None, overlays=team.matrix_overlays)
        match = match_target(host, load_targets(team, matrix), matrix)
        name = match.target.name if match.target is not None else None
    settle(envs_dir_for(team), _notifier(err))
    directory = verify.find_target(envs_dir_for(team), name, host)
    uv = shutil.which("uv")
    from resolver import progress

    with progress.step(f"verify {directory.name}: install into a fresh venv and smoke-test"):
        report = verify.verify_target(
            directory, host, interpreter=args.python, uv=uv, keep=args.keep, lock_format=args.lock_format
        )
    if args.json:
        out.write(json.dumps(verify.report_json(report), indent=2) + "\n")
    else:
        out.write(verify.render_report(report))
    return ExitCode.OK if report.ok else ExitCode.CHECK_FAILED


def _target_directory(args: argparse.Namespace, err: TextIO) -> Path:
    """The locked target folder a command names (`--target`), or the one for this machine."""
    from resolver.config import load_team
    from resolver.verify.poetry import find_target
    from resolver.workflows import detect_host, envs_dir_for, settle

    team = load_team(args.team)
    name = args.target
    host, warnings = detect_host(None)
    if name is None and (team.raw.get("targets") or team.raw.get("inventory")):
        from resolver.matrix.load import load_matrix
        from resolver.team.solve import load_targets, match_target

        for warning in warnings:
            err.write(f"warning: {warning}\n")
        matrix = load_matrix(None, overlays=team.matrix_overlays)
        match = match_target(host, load_targets(team, matrix), matrix)
        name = match.target.name if match.target is not None else None
    settle(envs_dir_for(team), _notifier(err))
    directory: Path = find_target(envs_dir_for(team), name, host)
    return directory


def cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.config import default_pip_config_files, effective_indexes, load_team
    from resolver.fsutil import atomic_write_text
    from resolver.lock import export
    from resolver.workflows import make_client

    directory = _target_directory(args, err)
    target = export.read_locked_target(directory)
    if args.export_format == "requirements":
        text = export.render_requirements(target)
    else:
        indexes = effective_indexes(load_team(args.team), os.environ, default_pip_config_files(os.environ))
        text = export.render_pylock(target, make_client(os.environ, offline=args.offline), indexes.general)
    if args.output == "-":
        out.write(text)
        return 0
    path = Path(args.output) if args.output else directory / export.FORMATS[args.export_format]
    atomic_write_text(path, text)
    out.write(f"wrote {path}\n")
    return 0


def cmd_sync(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.lock.sync import sync_target

    directory = _target_directory(args, err)
    venv = args.venv or Path(".venv")

    def notify(line: str) -> None:
        err.write(line + "\n")

    outcome = sync_target(
        directory, venv, os.environ, python=args.python, use_uv=not args.no_uv, notify=notify
    )
    removed = f"; removed {', '.join(outcome.removed)}" if outcome.removed else ""
    out.write(f"{outcome.venv}: holds exactly {directory}/poetry.lock ({outcome.installer}{removed})\n")
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.config import load_team
    from resolver.host import visible
    from resolver.host.model import read_host_file
    from resolver.matrix.load import load_matrix
    from resolver.verify import check, environment
    from resolver.workflows import detect_host, envs_dir_for

    python = environment.find_interpreter(args.python, os.environ, Path.cwd())
    if args.host is not None:
        host, notes = visible.with_visibility(read_host_file(args.host), os.environ)
    else:
        host, notes = detect_host(None)
    team = load_team(args.team)
    matrix = load_matrix(None, overlays=team.matrix_overlays)
    name = args.target
    if name is None and (team.raw.get("targets") or team.raw.get("inventory")):
        from resolver.team.solve import load_targets, match_target

        match = match_target(host, load_targets(team, matrix), matrix)
        matched = match.target.name if match.target is not None else None
        # the team target this machine is, once locked
        if matched is not None and (envs_dir_for(team) / matched / "poetry.lock").is_file():
            name = matched
    target = check.locked_target(envs_dir_for(team), name, host)
    installed = environment.probe_environment(python)
    findings = check.check_environment(installed, host, matrix, target)
    if args.smoke:
        findings.extend(check.run_smoke(python, installed, host))
    report = check.CheckReport(
        installed, host, target[0].target if target else None, tuple(findings), tuple(notes)
    )
    if args.json:
        out.write(json.dumps(check.report_json(report), indent=2) + "\n")
    else:
        out.write(check.render_report(report))
    return ExitCode.OK if report.ok else ExitCode.CHECK_FAILED


def cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver import info
    from resolver.config import default_pip_config_files, effective_indexes, load_team
    from resolver.project import find_project

    team = load_team(args.team)
    indexes = effective_indexes(team, os.environ, default_pip_config_files(os.environ))
    project = getattr(args, "found_project", None) or find_project(Path.cwd())
    gathered = info.gather(os.environ, project, team, indexes, args.matrix)
    out.write(json.dumps(gathered, indent=2) + "\n" if args.json else info.render(gathered))
    return 0


COMMANDS = {
    "detect": cmd_detect,
    "doctor": cmd_doctor,
    "resolve": cmd_resolve,
    "lock": cmd_lock,
    "audit": cmd_audit,
    "matrix": cmd_matrix,
    "verify": cmd_verify,
    "check": cmd_check,
    "export": cmd_export,
    "sync": cmd_sync,
    "info": cmd_info,
}


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


@contextlib.contextmanager
def _user_certificates() -> Iterator[None]:
    """pip's `cert` setting, for the duration of the command (see `certificate_environment`)."""
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


def _wants_json(argv: Sequence[str] | None) -> bool:
    """`--json` anywhere on the command line: errors are then JSON on stdout too, even one found
    while the arguments were parsed."""
    words = sys.argv[1:] if argv is None else argv
    return "--json" in words


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        with _stop_on_signals():
            parser = build_parser()
            _complete(parser)
            args = parser.parse_args(argv)
            if args.command is None:
                build_parser().print_help(out)
                return ExitCode.BAD_INPUT
            with _reporter(args, err), _in_project(args, err), _user_certificates():
                _say_configuration(args)
                return COMMANDS[args.command](args, out, err)
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


def run() -> NoReturn:
    """`python -m resolver` and the `stack-resolver` script."""
    sys.exit(main())
