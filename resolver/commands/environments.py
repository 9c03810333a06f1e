"""The commands about the matrix and the environments: matrix, verify, export, sync, check, info.
Each calls plain functions and renders the result."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from resolver.errors import ExitCode, InputError

if TYPE_CHECKING:
    pass

from resolver.commands.solving import _notifier


def cmd_matrix(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.matrix.load import default_matrix_dir, validate_matrix
    from resolver.matrix.show import show, show_data

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

        matrix = load_matrix(args.matrix)
        if args.json:
            out.write(json.dumps(show_data(matrix, args.kind, args.key), indent=2) + "\n")
        else:
            out.write(show(matrix, args.kind, args.key))
        return 0
    if args.matrix_command == "refresh":
        return _matrix_refresh(args, out, err)
    raise InputError("stack-resolver matrix: choose an action", hint="validate, show or refresh")


def _matrix_refresh(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from datetime import date

    from resolver.clients import make_client
    from resolver.config import check_variant, load_team
    from resolver.matrix.load import default_matrix_dir
    from resolver.matrix.refresh import propose as refresh
    from resolver.sources import default_pip_config_files, effective_indexes

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
    from resolver.lock.guard import settle
    from resolver.verify import poetry as verify
    from resolver.verify.target import verify_target
    from resolver.workflows import detect_host, envs_dir_for

    host, warnings = detect_host(None)
    for warning in warnings:
        err.write(f"warning: {warning}\n")
    team = load_team(args.team)
    name = args.target
    if name is None and (team.raw.get("targets") or team.raw.get("inventory")):
        from resolver.matrix.load import load_matrix
        from resolver.team.targets import load_targets, match_target

        matrix = load_matrix(None, overlays=team.matrix_overlays)
        match = match_target(host, load_targets(team, matrix), matrix)
        name = match.target.name if match.target is not None else None
    settle(envs_dir_for(team), _notifier(err))
    directory = verify.find_target(envs_dir_for(team), name, host)
    uv = shutil.which("uv")
    from resolver import progress

    with progress.step(f"verify {directory.name}: install into a fresh venv and smoke-test"):
        report = verify_target(
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
    from resolver.lock.guard import settle
    from resolver.verify.poetry import find_target
    from resolver.workflows import detect_host, envs_dir_for

    team = load_team(args.team)
    name = args.target
    host, warnings = detect_host(None)
    if name is None and (team.raw.get("targets") or team.raw.get("inventory")):
        from resolver.matrix.load import load_matrix
        from resolver.team.targets import load_targets, match_target

        for warning in warnings:
            err.write(f"warning: {warning}\n")
        matrix = load_matrix(None, overlays=team.matrix_overlays)
        match = match_target(host, load_targets(team, matrix), matrix)
        name = match.target.name if match.target is not None else None
    settle(envs_dir_for(team), _notifier(err))
    directory: Path = find_target(envs_dir_for(team), name, host)
    return directory


def cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.clients import make_client
    from resolver.config import load_team
    from resolver.fsutil import atomic_write_text
    from resolver.lock import export
    from resolver.sources import default_pip_config_files, effective_indexes

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
    from resolver.host.hostfile import read_host_file
    from resolver.matrix.load import load_matrix
    from resolver.matrix.products import gpu_names
    from resolver.verify import check, environment
    from resolver.workflows import detect_host, envs_dir_for

    python = environment.find_interpreter(args.python, os.environ, Path.cwd())
    team = load_team(args.team)
    matrix = load_matrix(None, overlays=team.matrix_overlays)
    if args.host is not None:
        host_file = read_host_file(args.host, gpu_names=gpu_names(matrix))
        host, notes = visible.with_visibility(host_file, os.environ)
    else:
        host, notes = detect_host(None, gpu_names(matrix))
    name = args.target
    if name is None and (team.raw.get("targets") or team.raw.get("inventory")):
        from resolver.team.targets import load_targets, match_target

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
    from resolver.config import load_team
    from resolver.project import find_project
    from resolver.sources import default_pip_config_files, effective_indexes

    team = load_team(args.team)
    indexes = effective_indexes(team, os.environ, default_pip_config_files(os.environ))
    project = getattr(args, "found_project", None) or find_project(Path.cwd())
    gathered = info.gather(os.environ, project, team, indexes, args.matrix)
    out.write(json.dumps(gathered, indent=2) + "\n" if args.json else info.render(gathered))
    return 0
