"""Why a solve failed, in words: the headline and the grouped causes, from typed data only."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from resolver.errors import NoCompatibleCombination
from resolver.explain.chain import binding_chain
from resolver.explain.fixes import Fix, fixes
from resolver.explain.groups import group_rejections
from resolver.explain.words import candidate, phrase, rejection_sentence, vendor_words
from resolver.solve.reasons import (
    CondaUnsolvable,
    CpuFallback,
    PythonOutsideConstraint,
    Reason,
    Rejection,
    SmallestSplit,
    TargetBound,
    TargetUnsolvable,
    UnverifiedBuild,
    UnverifiedPairing,
    UnverifiedRelease,
)
from resolver.solve.search import verdicts


@functools.lru_cache(maxsize=8)
def verdicts_of(error: NoCompatibleCombination) -> tuple[Rejection, ...]:
    """Every candidate with every reason (no rule skipped), for the chain and the fixes."""
    if error.host is None or error.matrix is None or error.request is None:
        return error.rejections
    try:
        return verdicts(error.host, error.matrix, error.request)
    except NoCompatibleCombination:
        return error.rejections


def headline(error: NoCompatibleCombination) -> str:
    if error.reasons:
        return _reasons_headline(error.reasons)
    if error.host is None or error.matrix is None or error.request is None:
        return "no valid combination"
    if not error.rejections:
        return "no torch release in the matrix matches this host"
    return binding_chain(error.host, error.matrix, error.request, verdicts_of(error))


def fixes_of(error: NoCompatibleCombination) -> list[Fix]:
    return fixes(error, verdicts_of(error))


def causes(error: NoCompatibleCombination) -> list[str]:
    """The grouped rejections, then the reasons not tied to a candidate."""
    lines = grouped(error.rejections)
    lines.extend(reason_line(reason) for reason in error.reasons)
    return lines


def grouped(rejections: Sequence[Rejection]) -> list[str]:
    """One line per group of neighbouring candidates rejected alike (policy reasons left out),
    then each policy said once with the flag that changes it."""
    policy: dict[str, str] = {}
    kept: list[Rejection] = []
    for rejection in rejections:
        reasons = []
        for reason in rejection.reasons:
            line = _policy_line(reason)
            if line is None:
                reasons.append(reason)
            else:
                policy.setdefault(line, line)
        if reasons:
            kept.append(dataclasses.replace(rejection, reasons=tuple(reasons)))
    lines = [group.render() for group in group_rejections(kept)]
    lines.extend(policy)
    return lines


def _policy_line(reason: Reason) -> str | None:
    if isinstance(reason, CpuFallback):
        return (
            f"CPU builds are not chosen on a host with {vendor_words(reason.vendor)} GPU "
            "(pass --variant cpu, or --allow-cpu-fallback to fall back to one)"
        )
    if isinstance(reason, (UnverifiedBuild, UnverifiedRelease, UnverifiedPairing)):
        return "rows marked unverified in the matrix are skipped (pass --allow-unverified to use them)"
    return None


def detailed_causes(error: NoCompatibleCombination) -> list[str]:
    lines = [
        f"{candidate(rejection)}: {rejection_sentence(reason, rejection)}"
        for rejection in error.rejections
        for reason in rejection.reasons
    ]
    lines.extend(reason_line(reason) for reason in error.reasons)
    return lines


def reason_line(reason: Reason) -> str:
    match reason:
        case TargetUnsolvable(target=target):
            return f"{target} has no valid combination at all"
        case TargetBound(target=target, side=side, torch=torch, why=why):
            bound = "<=" if side == "ceiling" else ">="
            return f"{target} needs torch {bound} {torch} ({_why(why)})"
        case SmallestSplit(groups=groups):
            split = "; ".join(f"{{{', '.join(names)}}} at torch {v}" for v, names in groups)
            return f"smallest split: {len(groups)} locks: {split}"
        case PythonOutsideConstraint(spec=spec):
            return f"the team constrains python{spec}"
        case CondaUnsolvable(specs=specs, message=message):
            return f"specs: {'; '.join(specs)}\n{message}"
    return phrase(reason)


def _why(rejections: Sequence[Rejection]) -> str:
    """The two most telling reasons (a CPU build's fallback policy is the least telling)."""
    seen: dict[str, str] = {}
    policy: dict[str, str] = {}
    for rejection in rejections:
        for reason in rejection.reasons:
            into = policy if isinstance(reason, CpuFallback) else seen
            into.setdefault(phrase(reason), rejection_sentence(reason, rejection))
    return "; ".join(list((seen or policy).values())[:2])


def _reasons_headline(reasons: Sequence[Reason]) -> str:
    stranded = [r.target for r in reasons if isinstance(r, TargetUnsolvable)]
    if stranded:
        return f"no common version set: {', '.join(stranded)} cannot be served at all"
    if any(isinstance(r, (TargetBound, SmallestSplit)) for r in reasons):
        return "no torch release is valid on every target"
    return phrase(reasons[0])
