"""The team solve: one (torch, torchvision, torchaudio, transformers) set valid on every target,
newest first, each target keeping its own best variant; else why the targets pull apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.errors import InputError, NoCompatibleCombination
from resolver.matrix.model import Matrix
from resolver.solve.reasons import Reason, Rejection, SmallestSplit, TargetBound, TargetUnsolvable
from resolver.solve.request import Request, tighten
from resolver.solve.search import Resolution, explore, solve
from resolver.solve.transformers import TransformersFit
from resolver.team.targets import Target


@dataclass(frozen=True)
class TeamResolution:
    versions: Mapping[str, str | None]
    targets: Mapping[str, Resolution]


def target_request(base: Request, target: Target) -> Request:
    return dataclasses.replace(
        tighten(base, target.constraints),
        variant=target.variant or base.variant,
        python=target.python or base.python,
    )


def _pin(request: Request, name: str, version: Version) -> Request:
    return tighten(request, {name: SpecifierSet(f"=={version}")})


def _feasible(target: Target, matrix: Matrix, request: Request) -> tuple[list[Resolution], list[Rejection]]:
    found = explore(target.host, matrix, request, exhaustive=True)
    return list(found.best_first()), list(found.rejected_best_first())


def solve_team(
    targets: Sequence[Target],
    matrix: Matrix,
    base: Request,
    unavailable: Mapping[str, Mapping[tuple[str, str], Reason]] | None = None,
) -> TeamResolution:
    """`unavailable`: per target name, the (torch version, variant) builds its index lacks."""
    if not targets:
        raise InputError(
            "the team declares no targets",
            hint='add [targets.NAME] tables with host = "hosts/NAME.json", or inventory = "hosts/*.json"',
        )
    requests = {t.name: target_request(base, t) for t in targets}
    for name, missing in (unavailable or {}).items():
        if name in requests:
            merged = {**requests[name].unavailable, **missing}
            requests[name] = dataclasses.replace(requests[name], unavailable=merged)
    feasible: dict[str, list[Resolution]] = {}
    rejected: dict[str, list[Rejection]] = {}
    for target in targets:
        feasible[target.name], rejected[target.name] = _feasible(target, matrix, requests[target.name])
    versions_by_target = {name: {r.release.version for r in res} for name, res in feasible.items()}
    common = set.intersection(*versions_by_target.values()) if versions_by_target else set()
    for torch_version in sorted(common, reverse=True):
        # The transformers every target can take with this torch; the newest of them for all.
        shared: set[Version] | None = None
        for target in targets:
            rows = {
                row.version for row in _transformers_for(target, matrix, requests[target.name], torch_version)
            }
            shared = rows if shared is None else shared & rows
        if not shared:
            continue
        transformers = max(shared)
        chosen: dict[str, Resolution] = {}
        for target in targets:
            pinned = _pin(_pin(requests[target.name], "torch", torch_version), "transformers", transformers)
            chosen[target.name] = solve(target.host, matrix, pinned)
        first = next(iter(chosen.values()))
        versions: dict[str, str | None] = {
            "torch": str(torch_version),
            "torchvision": str(first.torchvision) if first.torchvision else None,
            "torchaudio": str(first.torchaudio) if first.torchaudio else None,
            "transformers": str(transformers),
        }
        if base.python:
            versions["python"] = base.python
        return TeamResolution(versions, chosen)
    raise NoCompatibleCombination(
        reasons=_pull_apart(targets, feasible, rejected), matrix=matrix, request=base
    )


def _transformers_for(target: Target, matrix: Matrix, request: Request, torch_version: Version) -> list[Any]:
    """Transformers rows valid for this target's Python with this torch (the solver's own rule)."""
    try:
        best = solve(target.host, matrix, _pin(request, "torch", torch_version))
    except NoCompatibleCombination:
        return []
    return TransformersFit(matrix.transformers, request, best.python).fitting(torch_version)


def _pull_apart(
    targets: Sequence[Target],
    feasible: Mapping[str, list[Resolution]],
    rejected: Mapping[str, list[Rejection]],
) -> tuple[Reason, ...]:
    """Which targets pull apart and why (as data), and the smallest split."""
    causes: list[Reason] = [TargetUnsolvable(t.name) for t in targets if not feasible[t.name]]
    ranges: dict[str, tuple[Version, Version]] = {}
    for target in targets:
        versions = sorted({r.release.version for r in feasible[target.name]})
        if versions:
            ranges[target.name] = (versions[0], versions[-1])
    # Only the binding bounds pull the team apart: ceilings below the highest floor, floors above
    # the lowest ceiling.
    highest_floor = max((low for low, _ in ranges.values()), default=None)
    lowest_ceiling = min((high for _, high in ranges.values()), default=None)
    for target in targets:
        if target.name not in ranges or highest_floor is None or lowest_ceiling is None:
            continue
        low, high = ranges[target.name]
        above = [r for r in rejected[target.name] if r.torch > high]
        below = [r for r in rejected[target.name] if r.torch < low]
        if above and high < highest_floor:
            beyond = min(r.torch for r in above)
            why = tuple(r for r in rejected[target.name] if r.torch == beyond)
            causes.append(TargetBound(target.name, "ceiling", high, why))
        if below and low > lowest_ceiling:
            beyond = max(r.torch for r in below)
            why = tuple(r for r in rejected[target.name] if r.torch == beyond)
            causes.append(TargetBound(target.name, "floor", low, why))
    # Smallest split: greedy stabbing of the feasible sets, lowest ceiling first (optimal for
    # intervals, which these nearly always are).
    remaining = {name: {r.release.version for r in feasible[name]} for name in ranges}
    groups: list[tuple[Version, tuple[str, ...]]] = []
    while remaining:
        name = min(remaining, key=lambda n: max(remaining[n]))
        pick = max(remaining[name])
        members = tuple(sorted(n for n, vs in remaining.items() if pick in vs))
        groups.append((pick, members))
        for member in members:
            del remaining[member]
    if len(groups) > 1:
        causes.append(SmallestSplit(tuple(groups)))
    return tuple(causes)
