"""Why a solve failed, in words: the headline and the grouped causes, from typed data only."""

from __future__ import annotations

from collections.abc import Sequence

from resolver.errors import NoCompatibleCombination
from resolver.explain.groups import group_rejections
from resolver.explain.words import candidate, phrase, rejection_sentence
from resolver.host.model import DriverVersion, Host
from resolver.solve.reasons import (
    ArchMissing,
    CompanionOutside,
    CondaUnsolvable,
    ConstraintExcludes,
    CpuFallback,
    DriverBelowFloor,
    NoBuildData,
    NoCondaMapping,
    NotRequestedVariant,
    NoWheelsForPlatform,
    PythonOutsideConstraint,
    Reason,
    Rejection,
    RocmNotRequested,
    SmallestSplit,
    TargetBound,
    TargetUnsolvable,
    Unavailable,
)
from resolver.solve.request import Request


def headline(error: NoCompatibleCombination) -> str:
    if error.reasons:
        return _reasons_headline(error.reasons)
    if error.host is None or error.request is None:
        return "no valid combination"
    return binding_summary(error.host, error.request, error.rejections)


def causes(error: NoCompatibleCombination) -> list[str]:
    """One line per group of neighbouring candidates rejected alike, then the other reasons."""
    lines = [group.render() for group in group_rejections(error.rejections)]
    lines.extend(reason_line(reason) for reason in error.reasons)
    return lines


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


_REQUEST_CHOICES = (NotRequestedVariant, RocmNotRequested, ConstraintExcludes, CompanionOutside)
_NOT_BUILT = (NoWheelsForPlatform, NoBuildData, Unavailable, NoCondaMapping)


def binding_summary(host: Host, request: Request, rejections: Sequence[Rejection]) -> str:
    """Name the constraint that binds: the one that rejected every candidate, if any."""
    if not rejections:
        return "no torch release in the matrix matches this host"
    # Candidates excluded only by the request's own variant choice say nothing about the host.
    # Nor do those the user's own constraints excluded: the binding reason lies elsewhere.
    relevant = [
        rej
        for rej in rejections
        if not all(
            isinstance(r, (NotRequestedVariant, RocmNotRequested, ConstraintExcludes, CompanionOutside))
            for r in rej.reasons
        )
    ]
    rejections = relevant or list(rejections)
    kinds_everywhere = set.intersection(*({r.kind for r in rej.reasons} for rej in rejections))
    cuda = [
        rej
        for rej in rejections
        if rej.stage == "variant"
        and rej.variant
        and rej.variant.startswith("cu")
        and not any(
            isinstance(r, (NoWheelsForPlatform, NoBuildData, Unavailable, NoCondaMapping))
            for r in rej.reasons
        )
    ]
    if (
        cuda
        and all(any(isinstance(r, DriverBelowFloor) for r in rej.reasons) for rej in cuda)
        and host.driver
    ):
        floors = {r.cuda: r.floor for rej in cuda for r in rej.reasons if isinstance(r, DriverBelowFloor)}
        ordered = sorted(floors.items(), key=lambda item: DriverVersion.parse(item[1]))
        listed = ", ".join(f"{floor} ({family})" for family, floor in ordered)
        return f"driver {host.nvidia_driver} is below every CUDA floor: {listed}"
    if cuda and all(any(isinstance(r, ArchMissing) for r in rej.reasons) for rej in cuda):
        sms = sorted({gpu.compute_capability.sm for gpu in host.gpus})
        which = f"{request.variant} build" if request.variant else "CUDA build"
        scope = f"all of {', '.join(sms)}" if len(sms) > 1 else sms[0]
        return f"no {which} in the matrix carries kernels for {scope}"
    if "platform" in kinds_everywhere:
        return f"no torch release publishes wheels for {host.platform}"
    if "python" in kinds_everywhere:
        wanted = request.python or host.python
        which = f"Python {wanted}" if wanted else f"a Python within python{request.spec('python')}"
        return f"no torch release has wheels for {which} on {host.platform}"
    if "constraint" in kinds_everywhere:
        specs = ", ".join(f"{name}{spec}" for name, spec in request.constraints.items())
        return f"the constraints ({specs}) exclude every candidate"
    if "libc" in kinds_everywhere:
        return "this host uses musl libc; torch publishes only manylinux (glibc) wheels for Linux"
    if "glibc" in kinds_everywhere:
        return f"glibc {host.libc_version} is below the floor of every torch wheel for {host.platform}"
    judged = [rej for rej in rejections if rej.stage == "variant"] or list(rejections)
    counts: dict[str, int] = {}
    for rej in judged:
        for reason in rej.reasons:
            if not isinstance(reason, (ConstraintExcludes, CompanionOutside)):
                text = phrase(reason)
                counts[text] = counts.get(text, 0) + 1
    top = sorted(counts, key=lambda s: -counts[s])[:3]
    return "no valid combination for this host: " + "; ".join(top)
