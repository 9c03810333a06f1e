"""The commands' bodies as plain typed functions: options in, a result out, no printing.

`resolve`: host + team + matrix -> survey -> solve -> stage -> commit into envs/<target>/.
`lock_team`: the team's targets -> survey -> team solve -> stage every target -> one commit.
Both take the same staging path (resolver/lock/target.py) and commit (resolver/lock/commit.py),
under one advisory lock on envs/ (resolver/lock/guard.py): one writing run at a time per checkout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from resolver.config import TeamConfig
from resolver.detection import detect_host as detect_host  # re-exported: commands name it here
from resolver.errors import InputError
from resolver.host.model import Host
from resolver.matrix.model import Matrix
from resolver.matrix.products import gpu_names
from resolver.solve.request import Request
from resolver.solve.search import Resolution
from resolver.sources import Indexes

if TYPE_CHECKING:
    from resolver.explain.fixes import Fix
    from resolver.index.client import IndexClient
    from resolver.lock.check import TargetCheck
    from resolver.lock.conda import CondaSettings
    from resolver.lock.target import Lockers
    from resolver.team.lock import TeamLockOutcome
    from resolver.team.solve import TeamResolution
    from resolver.team.targets import Target

Notify = Callable[[str], None]


def envs_dir_for(team: TeamConfig) -> Path:
    return team.path.parent if team.path is not None else Path("envs")


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolveOptions:
    """What to solve for, beyond the team file: the flags `resolve`, `lock` and `audit` share."""

    matrix_dir: Path | None = None
    team_file: Path | None = None
    constraints: tuple[str, ...] = ()
    variant: str | None = None
    python: str | None = None
    allow_ptx: bool = False
    allow_unverified: bool = False
    allow_cpu_fallback: bool = False


@dataclass(frozen=True)
class RunOptions:
    """How a writing command runs."""

    dry_run: bool = False
    check_indexes: bool = False  # with dry_run: run the real run's survey (network)
    offline: bool = False
    wait: bool = True  # for another run holding envs/ (False: fail at once)


@dataclass(frozen=True)
class ResolveOptions:
    solve: SolveOptions = SolveOptions()
    run: RunOptions = RunOptions()
    host_file: Path | None = None
    target: str | None = None
    formats: tuple[str, ...] = ()  # () = the team file's
    engine: str = "rattler"


@dataclass(frozen=True)
class LockOptions:
    solve: SolveOptions = SolveOptions()
    run: RunOptions = RunOptions()
    jobs: int | None = None


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    target: str
    directory: Path
    reused: bool
    changed: tuple[str, ...]


@dataclass(frozen=True)
class Chosen:
    """`resolve` for one host: the choice, and (unless a dry run) what was written."""

    resolution: Resolution
    index_url: str | None
    warnings: tuple[str, ...]  # from detecting the host
    indexes_checked: bool
    written: Written | None
    upgrades: tuple[Fix, ...] = ()  # host changes that would give a better build
    unchanged: bool = False  # decided from the inputs alone: nothing asked, nothing written


@dataclass(frozen=True)
class TeamLocked:
    """`lock` (and `resolve` on a team machine whose target was not locked yet)."""

    resolution: TeamResolution
    targets: tuple[Target, ...]
    indexes: Indexes
    indexes_checked: bool
    outcome: TeamLockOutcome | None  # None for a dry run


@dataclass(frozen=True)
class TeamMachine:
    """`resolve` on a machine of the team: its target, and the team lock if one was made now."""

    target: str
    why: str
    directory: Path
    locked: TeamLocked | None


# --- shared steps ----------------------------------------------------------------------------


def load_matrix_for(options: SolveOptions, team: TeamConfig) -> Matrix:
    from resolver.matrix.load import load_matrix

    return load_matrix(options.matrix_dir, overlays=() if options.matrix_dir else team.matrix_overlays)


def build_request(options: SolveOptions, team: TeamConfig) -> Request:
    from resolver.config import check_python, check_variant, labelled_constraints
    from resolver.solve.request import tighten

    # A pin with a local label (`torch==2.8.0+cpu`, the tool's own output) chooses that variant.
    flagged, pinned_variant = labelled_constraints(options.constraints, "--constraint")
    variant = check_variant(options.variant, "--variant") if options.variant else None
    if pinned_variant is not None and variant not in (None, pinned_variant):
        raise InputError(
            f"--constraint pins variant {pinned_variant}, --variant asks for {variant}",
            hint="make them agree, or drop one",
        )
    request = Request(
        constraints=team.constraints,
        variant=variant or pinned_variant or team.variant,
        python=check_python(options.python) if options.python else team.python,
        allow_ptx=options.allow_ptx or team.allow_ptx,
        allow_unverified=options.allow_unverified or team.allow_unverified,
        allow_cpu_fallback=options.allow_cpu_fallback or team.allow_cpu_fallback,
        packages=team.packages,
        prefer=team.prefer,
    )
    return tighten(request, flagged)


def rocm_on_nvidia(host: Host, request: Request, options: SolveOptions, team: TeamConfig) -> tuple[str, ...]:
    """A ROCm build runs on AMD GPUs only: on a host with NVIDIA GPUs it is refused unless the
    user forced it with --variant (then it is a warning)."""
    from resolver.errors import Location
    from resolver.matrix.vocab import ROCM, variant_kind

    variant = request.variant or ""
    if variant_kind(variant) != ROCM or not host.nvidia_gpus:
        return ()
    message = f"variant {variant} is a ROCm (AMD) build, and this host has NVIDIA GPUs it will not use"
    if not options.variant:
        raise InputError(
            message,
            location=Location(str(options.team_file or team.path or "envs/team.toml"), key="variant"),
            hint=f"choose a CUDA variant, or force it with --variant {variant}",
        )
    return (message,)


def declares_targets(team: TeamConfig) -> bool:
    return bool(team.raw.get("targets") or team.raw.get("inventory"))


def _indexes(team: TeamConfig, environ: Mapping[str, str]) -> Indexes:
    from resolver.sources import default_pip_config_files, effective_indexes

    return effective_indexes(team, environ, default_pip_config_files(environ))


# --- resolve ---------------------------------------------------------------------------------


def resolve(options: ResolveOptions, environ: Mapping[str, str], notify: Notify) -> Chosen | TeamMachine:
    from resolver.config import load_team

    team = load_team(options.solve.team_file)
    matrix = load_matrix_for(options.solve, team)
    request = build_request(options.solve, team)
    if options.target is not None:
        from resolver.lock.names import check_target_name

        check_target_name(options.target)
    if declares_targets(team):
        from resolver.team.targets import load_targets

        targets = load_targets(team, matrix)
        forced = [t for t in targets if t.name == options.target]
        if forced or (options.host_file is None and not options.run.dry_run):
            return _team_machine(options, team, matrix, targets, forced, environ, notify)
    host, warnings = detect_host(options.host_file, gpu_names(matrix))
    return resolve_host(host, warnings, matrix, request, team, options, environ, notify)


def resolve_host(
    host: Host,
    warnings: Sequence[str],
    matrix: Matrix,
    request: Request,
    team: TeamConfig,
    options: ResolveOptions,
    environ: Mapping[str, str],
    notify: Notify,
) -> Chosen:
    """Survey (unless a plain dry run), solve once, and (unless a dry run) stage and commit."""
    from resolver.explain.fixes import upgrades as host_upgrades
    from resolver.lock import names as lock_names
    from resolver.solve.search import solve

    def upgrades(resolution: Resolution) -> tuple[Fix, ...]:
        return tuple(host_upgrades(host, matrix, request, resolution))

    formats = lock_names.check_formats(options.formats or team.formats)
    warnings = (*warnings, *rocm_on_nvidia(host, request, options.solve, team))
    indexes = _indexes(team, environ)
    run = options.run
    if run.dry_run and not run.check_indexes:
        resolution = solve(host, matrix, request)
        index_url = indexes.variant_url(resolution.variant) if resolution.local_label else None
        return Chosen(resolution, index_url, tuple(warnings), False, None, upgrades(resolution))
    from resolver.index.availability import Availability, note_skipped_transformers
    from resolver.lock import fresh
    from resolver.lock.guard import envs_locked, settle

    def choose(found: Availability) -> tuple[Resolution, str | None]:
        chosen = note_skipped_transformers(
            solve(host, matrix, found.applied_to(request)), matrix, request, found.transformers
        )
        return chosen, indexes.variant_url(chosen.variant) if chosen.local_label else None

    envs = envs_dir_for(team)
    if not run.dry_run:
        digest = fresh.request_hash(
            subject=host, matrix=matrix, request=request, team=team, indexes=indexes, formats=formats,
            target=options.target, settings=_lock_settings(options.engine),
        )  # fmt: skip
        settle(envs, notify)
        committed = fresh.find_committed(envs, options.target, digest)
        if committed is not None:  # nothing changed since that commit: no index is asked
            resolution, index_url = choose(committed.availability)
            if fresh.same_choice(committed, resolution, index_url):
                written = Written(committed.name, committed.directory, True, ())
                return Chosen(
                    resolution,
                    index_url,
                    tuple(warnings),
                    True,
                    written,
                    upgrades(resolution),
                    unchanged=True,
                )
    from resolver.clients import conda_settings, make_client
    from resolver.lock import target as stage
    from resolver.lock.commit import commit
    from resolver.lock.survey import survey

    client = make_client(environ, offline=run.offline, indexes=indexes)
    conda = conda_settings(team, environ, options.engine, run.offline) if "conda" in formats else None
    if run.dry_run:
        resolution, index_url = choose(survey(host, matrix, request, formats, indexes, client, conda))
        return Chosen(resolution, index_url, tuple(warnings), True, None, upgrades(resolution))
    with envs_locked(envs, wait=run.wait, notify=notify):
        found = survey(host, matrix, request, formats, indexes, client, conda)
        resolution, index_url = choose(found)
        name = options.target or stage.target_name_for(host, resolution.variant, resolution.python)
        plan = stage.LockPlan(
            name,
            stage.target_directory(envs, name),
            host,
            resolution,
            index_url,
            fresh.fresh_section(digest, found),
        )
        with _lockers(formats, client, environ, run.offline, conda) as lockers:
            staged = stage.stage_target(plan, matrix, formats, team.packages, indexes, client, lockers)
        changed = commit(envs, {plan.directory / n: data for n, data in staged.files.items()})
    names = tuple(n for n in staged.files if plan.directory / n in changed)
    written = Written(name, plan.directory, staged.reused, names)
    return Chosen(resolution, index_url, tuple(warnings), True, written, upgrades(resolution))


def _lock_settings(engine: str) -> dict[str, str]:
    """What shapes a target's files beside the request and the tool's version (which pins Poetry):
    the conda engine. Which Poetry executable runs is left out: a lock it made stays valid."""
    return {"engine": engine}


@contextlib.contextmanager
def _lockers(
    formats: Sequence[str],
    client: IndexClient,
    environ: Mapping[str, str],
    offline: bool,
    conda: CondaSettings | None,
) -> Iterator[Lockers]:
    from resolver.lock.poetry.mirror import poetry_tool
    from resolver.lock.target import Lockers, poetry_lockers

    if "poetry" not in formats:
        yield Lockers(conda=conda)
        return
    with poetry_tool(client, environ, offline=offline) as tool:
        yield poetry_lockers(tool, conda)


def _team_machine(
    options: ResolveOptions,
    team: TeamConfig,
    matrix: Matrix,
    targets: Sequence[Target],
    forced: Sequence[Target],
    environ: Mapping[str, str],
    notify: Notify,
) -> TeamMachine:
    """On a machine of the team: find its target and use the team's lock for it."""
    from resolver.lock.poetry.tool import LOCKFILE
    from resolver.lock.target import CONDA_LOCKFILE, target_directory
    from resolver.team.targets import match_target

    if forced:
        target, why = forced[0], "chosen with --target"
    else:
        host, warnings = detect_host(options.host_file, gpu_names(matrix))
        for warning in warnings:
            notify(f"warning: {warning}")
        match = match_target(host, targets, matrix)
        if match.target is None:
            lines = [f"{name}: differs in {'; '.join(diff)}" for name, diff in match.nearest]
            raise InputError(
                match.why + (". Nearest targets: " + " | ".join(lines) if lines else ""),
                hint="declare this machine in envs/team.toml (host = a file from `stack-resolver detect "
                "--json`), or pick one with --target NAME, or resolve it alone with --host FILE",
            )
        target, why = match.target, match.why
    directory = target_directory(envs_dir_for(team), target.name)
    locked = None
    if not (directory / LOCKFILE).exists() and not (directory / CONDA_LOCKFILE).exists():
        locked = lock(LockOptions(solve=options.solve, run=options.run), environ, notify)
    return TeamMachine(target.name, why, directory, locked)


# --- lock ------------------------------------------------------------------------------------


def lock(options: LockOptions, environ: Mapping[str, str], notify: Notify) -> TeamLocked:
    """One version set for every target of the team; (unless a dry run) lock them all."""
    from resolver.clients import conda_settings, make_client
    from resolver.config import load_team
    from resolver.lock.guard import envs_locked, settle
    from resolver.lock.names import check_target_name
    from resolver.team.lock import lock_team, solve_team_available
    from resolver.team.solve import solve_team
    from resolver.team.targets import load_targets

    team = load_team(options.solve.team_file)
    matrix = load_matrix_for(options.solve, team)
    request = build_request(options.solve, team)
    targets = tuple(load_targets(team, matrix))
    for target in targets:
        check_target_name(target.name, "team target")
        for warning in rocm_on_nvidia(target.host, request, options.solve, team):
            notify(f"warning: {target.name}: {warning}")
    indexes = _indexes(team, environ)
    run = options.run
    if run.dry_run and not run.check_indexes:
        return TeamLocked(solve_team(targets, matrix, request), targets, indexes, False, None)
    client = make_client(environ, offline=run.offline, indexes=indexes)
    conda = conda_settings(team, environ, "rattler", run.offline) if "conda" in team.formats else None
    if run.dry_run:
        resolution = solve_team_available(targets, matrix, request, team.formats, indexes, client, conda)
        return TeamLocked(resolution, targets, indexes, True, None)
    envs = envs_dir_for(team)
    from resolver.lock import fresh
    from resolver.team.lock import unchanged_team

    digest = fresh.request_hash(
        subject=targets, matrix=matrix, request=request, team=team, indexes=indexes, formats=team.formats,
        target=None, settings=_lock_settings("rattler"),
    )  # fmt: skip
    settle(envs, notify)
    unchanged = unchanged_team(envs, digest, targets, matrix, request, indexes)
    if unchanged is not None:  # nothing changed since that commit: no index is asked
        return TeamLocked(unchanged.resolution, targets, indexes, True, unchanged)
    from resolver.lock.poetry.mirror import poetry_tool

    with (
        envs_locked(envs, wait=run.wait, notify=notify),
        poetry_tool(client, environ, offline=run.offline) as tool,
    ):
        outcome = lock_team(
            targets,
            matrix,
            request,
            team.packages,
            team.formats,
            envs,
            indexes,
            client,
            tool=tool,
            conda=conda,
            jobs=options.jobs,
            request_hash=digest,
        )
    return TeamLocked(outcome.resolution, targets, indexes, True, outcome)


def check_locks(options: SolveOptions, environ: Mapping[str, str], *, offline: bool) -> list[TargetCheck]:
    """`lock --check`: every target prepared as `lock` prepares it; nothing written, no Poetry run."""
    from resolver.clients import conda_settings, make_client
    from resolver.config import load_team
    from resolver.lock.check import check_targets
    from resolver.lock.poetry.tool import PoetryTool
    from resolver.lock.target import Lockers, check_target_name
    from resolver.team.lock import solve_team_available
    from resolver.team.targets import load_targets

    team = load_team(options.team_file)
    matrix = load_matrix_for(options, team)
    request = build_request(options, team)
    targets = tuple(load_targets(team, matrix))
    for target in targets:
        check_target_name(target.name, "team target")
    indexes = _indexes(team, environ)
    client = make_client(environ, offline=offline, indexes=indexes)
    conda = conda_settings(team, environ, "rattler", offline) if "conda" in team.formats else None
    resolution = solve_team_available(targets, matrix, request, team.formats, indexes, client, conda)
    version = PoetryTool(environ=dict(environ)).version() if "poetry" in team.formats else None
    lockers = Lockers(poetry_version=version, conda=conda)
    return check_targets(
        targets, resolution, matrix, team.packages, team.formats, envs_dir_for(team), indexes, client, lockers
    )
