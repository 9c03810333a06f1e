"""Turn resolutions and rejections into prose and JSON. The solver decides; this only renders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from resolver.errors import Cause, NoCompatibleCombination
from resolver.solve.search import Reason, Rejection, Resolution


@dataclass(frozen=True)
class RejectionGroup:
    """Neighbouring torch releases rejected for the same reasons, at the same stage."""

    first: Version
    last: Version
    variants: tuple[str, ...]
    summaries: tuple[str, ...]
    stage: str

    def render(self) -> str:
        span = f"torch {self.first}" if self.first == self.last else f"torch {self.last} – {self.first}"
        reasons = " or ".join(self.summaries)
        if self.stage == "release":
            return f"{span} {reasons}"
        if len(self.variants) > 1:
            return f"{span}: every variant ({', '.join(self.variants)}) {reasons}"
        if self.variants and self.first == self.last:
            return f"{span}+{self.variants[0]} {reasons}"
        if self.variants:
            return f"{span}: {self.variants[0]} {reasons}"
        return f"{span} {reasons}"


def group_rejections(rejections: Sequence[Rejection]) -> tuple[RejectionGroup, ...]:
    """Collapse per-candidate rejections into per-release lines, then merge neighbouring releases
    that fail for the same reasons ("torch 2.8.0 – 2.15.0: every variant lacks sm_37 ...")."""
    per_release: dict[Version, tuple[list[str], list[str], str]] = {}
    for rejection in rejections:
        variants, summaries, _ = per_release.setdefault(rejection.torch, ([], [], rejection.stage))
        if rejection.variant and rejection.variant not in variants:
            variants.append(rejection.variant)
        for reason in rejection.reasons:
            if reason.summary not in summaries:
                summaries.append(reason.summary)
    groups: list[RejectionGroup] = []
    for version in sorted(per_release, reverse=True):
        variants, summaries, stage = per_release[version]
        key = (tuple(sorted(summaries)), stage, len(variants) > 1 or stage == "release")
        if groups:
            last = groups[-1]
            last_key = (
                tuple(sorted(last.summaries)),
                last.stage,
                len(last.variants) > 1 or last.stage == "release",
            )
            if last_key == key and (
                len(variants) > 1 or stage == "release" or variants == list(last.variants)
            ):
                merged = tuple(dict.fromkeys([*last.variants, *variants]))
                groups[-1] = RejectionGroup(last.first, version, merged, last.summaries, stage)
                continue
        groups.append(RejectionGroup(version, version, tuple(variants), tuple(summaries), stage))
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
    """Group causes the way rejections are grouped, one line each."""
    by_candidate: dict[str, list[Cause]] = {}
    for cause in causes:
        by_candidate.setdefault(cause.candidate, []).append(cause)
    rebuilt = []
    for candidate, items in by_candidate.items():
        version_text, _, variant = candidate.removeprefix("torch ").partition("+")
        try:
            version = Version(version_text)
        except ValueError:  # not a torch candidate (a team target, a Python constraint): as is
            return [c.detail for c in causes]
        facts = dict(items[0].data)
        reasons = tuple(Reason(c.kind, c.detail, dict(c.data).get("summary", c.detail)) for c in items)
        rebuilt.append(Rejection(version, variant or None, reasons, stage=facts.get("stage", "variant")))
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
            f"GPU {gpu.index}: {gpu.name or 'unnamed'} ({gpu.gfx_target or gpu.cc.sm}) runs {fit.via} code"
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
    if resolution.variant == "xpu":
        return "Intel XPU build"
    return "CPU build"
