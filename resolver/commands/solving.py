"""The commands that describe a host and choose for it: detect, doctor, resolve, lock, audit.
Each parses nothing and decides nothing: it calls a workflow and renders the result."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from resolver.errors import ExitCode, InputError, NoCompatibleCombination

if TYPE_CHECKING:
    from resolver.workflows import Chosen, RunOptions, SolveOptions, TeamLocked, TeamMachine


def cmd_detect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.detection import detect_host
    from resolver.host import probes
    from resolver.host.render import render_host

    host, warnings = detect_host(args.host)
    detection = probes.Detection(host=host, warnings=warnings)
    if args.json:
        out.write(detection.host.dumps())
        for warning in detection.warnings:
            err.write(f"warning: {warning}\n")
    else:
        out.write(render_host(detection))
    return 0


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resolver.config import DEFAULT_TEAM_FILE
    from resolver.detection import detect_host
    from resolver.host import doctor
    from resolver.matrix.products import shipped_gpu_names

    names = shipped_gpu_names()
    host, warnings = detect_host(args.host, names)
    for warning in warnings:
        err.write(f"warning: {warning}\n")
    path = args.requirements
    if path is None and DEFAULT_TEAM_FILE.exists():
        path = DEFAULT_TEAM_FILE
    requirements = doctor.read_requirements(path, names) if path is not None else doctor.Requirements()
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
    # an unchanged run's output may be replayed (resolver/replay.py); only this path's
    args.unchanged = getattr(result, "unchanged", False) is True
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
    from resolver.workflows import LockOptions, lock

    if args.check:
        return cmd_lock_check(args, out, err)
    # --jobs below 1 never gets here: the parser's `_positive_int` refuses it (exit 2).
    options = LockOptions(solve=_solve_options(args), run=_run_options(args), jobs=args.jobs)
    try:
        result = lock(options, os.environ, _notifier(err))
    except NoCompatibleCombination as exc:
        return _report_team_failure(exc, args.json, out, err)
    return _report_team(result, args.json, out)


def _report_team_failure(exc: NoCompatibleCombination, as_json: bool, out: TextIO, err: TextIO) -> int:
    """No version set fits every target: the causes as JSON on stdout, or as text on stderr."""
    from resolver.explain import render as explain

    if as_json:
        out.write(json.dumps(explain.team_failure_json(exc), indent=2) + "\n")
    else:
        err.write(explain.render_team_failure(exc))
    return exc.exit_code


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
        return _report_team_failure(exc, args.json, out, err)
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
    from resolver.clients import make_client
    from resolver.config import load_team
    from resolver.fsutil import atomic_write_text
    from resolver.matrix.load import load_matrix
    from resolver.sources import default_pip_config_files, effective_indexes
    from resolver.team import audit
    from resolver.team.lock import read_team_lock
    from resolver.team.targets import load_targets
    from resolver.workflows import build_request, envs_dir_for

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
