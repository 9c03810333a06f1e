"""Turn resolutions and rejections into prose and JSON. The solver decides; this only renders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from resolver.errors import Cause, NoCompatibleCombination
from resolver.solve import Reason, Rejection, Resolution


@dataclass(frozen=True)
class RejectionGroup:
    """Consecutive torch releases rejected for the same set of reasons."""

    first: Version
    last: Version
    variants: tuple[str, ...]
    summaries: tuple[str, ...]

    def render(self) -> str:
        span = f"torch {self.first}" if self.first == self.last else f"torch {self.last} – {self.first}"
        reasons = " or ".join(self.summaries)
        if len(self.variants) > 1:
            return f"{span}: every variant ({', '.join(self.variants)}) {_verb(reasons)}"
        if self.variants and self.variants[0]:
            return f"{span} {self.variants[0]}: {reasons}"
        return f"{span}: {reasons}"


def _verb(reasons: str) -> str:
    # Summaries read as predicates ("lacks sm_37", "needs driver >= ..."); others take "is:".
    first = reasons.split(" ", 1)[0]
    return reasons if first in {"lacks", "needs", "requires"} else f"is rejected: {reasons}"


def group_rejections(rejections: Sequence[Rejection]) -> tuple[RejectionGroup, ...]:
    """Collapse per-candidate rejections into per-release lines, then merge neighbouring releases
    that fail for the same reasons ("torch 2.8.0 – 2.15.0: every variant lacks sm_37 ...")."""
    per_release: dict[Version, tuple[list[str], list[str]]] = {}
    order: list[Version] = []
    for rejection in rejections:
        if rejection.torch not in per_release:
            per_release[rejection.torch] = ([], [])
            order.append(rejection.torch)
        variants, summaries = per_release[rejection.torch]
        if rejection.variant and rejection.variant not in variants:
            variants.append(rejection.variant)
        for reason in rejection.reasons:
            if reason.summary not in summaries:
                summaries.append(reason.summary)
    order.sort(reverse=True)
    groups: list[RejectionGroup] = []
    for version in order:
        variants, summaries = per_release[version]
        key = (tuple(sorted(summaries)), len(variants) > 1)
        if groups:
            last = groups[-1]
            if (tuple(sorted(last.summaries)), len(last.variants) > 1) == key:
                merged_variants = tuple(dict.fromkeys([*last.variants, *variants]))
                groups[-1] = RejectionGroup(last.first, version, merged_variants, last.summaries)
                continue
        groups.append(RejectionGroup(version, version, tuple(variants), tuple(summaries)))
    return tuple(groups)


def resolution_json(resolution: Resolution, index_url: str | None) -> dict[str, Any]:
    return {
        "python": resolution.python,
        "torch": resolution.torch,
        "variant": resolution.variant,
        "torchvision": resolution.pin(resolution.torchvision),
        "torchaudio": resolution.pin(resolution.torchaudio),
        "transformers": str(resolution.transformers.version),
        "index_url": index_url,
        "warnings": list(resolution.warnings),
        "rejected": [
            {"candidate": r.candidate, "reasons": [reason.text for reason in r.reasons]}
            for r in resolution.rejected
        ],
    }


def failure_json(error: NoCompatibleCombination) -> dict[str, Any]:
    return {"error": error.summary, "causes": render_causes(error.causes)}


def render_causes(causes: Sequence[Cause]) -> list[str]:
    """Group causes the same way rejections are grouped, one line each."""
    rejections: dict[str, list[Cause]] = {}
    for cause in causes:
        rejections.setdefault(cause.candidate, []).append(cause)
    rebuilt = []
    for candidate, items in rejections.items():
        name = candidate.removeprefix("torch ")
        version_text, _, variant = name.partition("+")
        try:
            version = Version(version_text)
        except ValueError:
            return [f"{c.candidate}: {c.detail}" for c in causes]
        reasons = tuple(Reason(c.kind, c.detail, dict(c.data).get("summary", c.detail)) for c in items)
        rebuilt.append(Rejection(version, variant or None, reasons))
    return [group.render() for group in group_rejections(rebuilt)]


def render_resolution(resolution: Resolution, index_url: str | None, *, explain: bool = False) -> str:
    lines = [
        f"torch        {resolution.torch}  ({_variant_words(resolution)})",
        f"torchvision  {resolution.pin(resolution.torchvision) or 'none released for this torch'}",
        f"torchaudio   {resolution.pin(resolution.torchaudio) or 'none released for this torch'}",
        f"transformers {resolution.transformers.version}",
        f"python       {resolution.python}",
        f"index        {index_url or 'the default package index'}",
    ]
    for fit in resolution.gpu_fit:
        gpu = fit.gpu
        lines.append(
            f"GPU {gpu.index}: {gpu.name or 'unnamed'} ({gpu.compute_capability.sm}) runs {fit.via} code"
        )
    for warning in resolution.warnings:
        lines.append(f"warning: {warning}")
    if resolution.rejected:
        lines.append("")
        lines.append("Better-looking candidates that were rejected:")
        if explain:
            for rejection in resolution.rejected:
                for reason in rejection.reasons:
                    lines.append(f"  {rejection.candidate}: {reason.text}")
        else:
            for group in group_rejections(resolution.rejected):
                lines.append(f"  {group.render()}")
            lines.append("(--explain lists every candidate with its full reasons)")
    return "\n".join(lines) + "\n"


def render_failure(error: NoCompatibleCombination, *, explain: bool = False) -> str:
    lines = [f"No valid combination: {error.summary}", ""]
    if explain:
        lines.extend(f"  {c.candidate}: {c.detail}" for c in error.causes)
    else:
        lines.extend(f"  {line}" for line in render_causes(error.causes))
    return "\n".join(lines) + "\n"


def _variant_words(resolution: Resolution) -> str:
    if resolution.cuda:
        return f"CUDA {resolution.cuda} build"
    if resolution.variant.startswith("rocm"):
        return f"ROCm {resolution.variant[4:]} build"
    return "CPU build"
