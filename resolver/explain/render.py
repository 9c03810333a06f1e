"""Turn resolutions and failures into text and JSON. The solver decides; this only renders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resolver.errors import NoCompatibleCombination
from resolver.explain.failure import causes, detailed_causes, fixes_of, grouped, headline
from resolver.explain.fixes import Fix, upgrades
from resolver.explain.groups import RejectionGroup, group_rejections
from resolver.explain.words import candidate, gfx_unknown, note, passed_over_lines, rejection_sentence
from resolver.matrix.vocab import CUDA, ROCM, XPU, Variant
from resolver.solve.reasons import GfxUnchecked
from resolver.solve.search import Resolution

__all__ = [
    "RejectionGroup",
    "failure_json",
    "group_rejections",
    "render_failure",
    "render_resolution",
    "render_team_failure",
    "render_upgrades",
    "resolution_json",
    "team_failure_json",
    "upgrades",
    "upgrades_json",
    "warnings_of",
]


def warnings_of(resolution: Resolution) -> list[str]:
    return [*(note(n) for n in resolution.notes), *resolution.warnings]


def unverified_gpus(resolution: Resolution) -> list[GfxUnchecked]:
    """The AMD GPUs the chosen ROCm build may not run on: its gfx targets are unknown."""
    return [n for n in resolution.notes if isinstance(n, GfxUnchecked)]


def resolution_json(resolution: Resolution, index_url: str | None) -> dict[str, Any]:
    return {
        "python": resolution.python,
        "torch": resolution.torch,
        "variant": resolution.variant,
        "torchvision": resolution.pin(resolution.torchvision),
        "torchaudio": resolution.pin(resolution.torchaudio),
        "transformers": str(resolution.transformers.version),
        "index_url": index_url,
        "warnings": warnings_of(resolution),
        # each AMD GPU whose gfx target the chosen build is not known to carry (--allow-unverified)
        "unverified_gpus": [
            {
                "index": n.gpu_index,
                "name": n.gpu_name,
                "gfx_target": n.gfx_target,
                "why": gfx_unknown(n.variant, n.series),
            }
            for n in unverified_gpus(resolution)
        ],
        "rejected": [
            {"candidate": candidate(r), "reasons": [rejection_sentence(reason, r) for reason in r.reasons]}
            for r in resolution.rejected
        ],
    }


def failure_json(error: NoCompatibleCombination) -> dict[str, Any]:
    """`{"error", "causes", "fixes"}`: the contract other tools read (exit status 3)."""
    return {
        "error": headline(error),
        "causes": causes(error),
        "fixes": [fix.to_json() for fix in fixes_of(error)],
    }


def team_failure_json(error: NoCompatibleCombination) -> dict[str, Any]:
    """A team lock that pulls apart: `{"error", "causes"}` (which targets, and why)."""
    return {"error": headline(error), "causes": causes(error)}


def upgrades_json(upgrades: Sequence[Fix]) -> list[dict[str, Any]]:
    return [fix.to_json() for fix in upgrades]


def render_upgrades(upgrades: Sequence[Fix]) -> str:
    if not upgrades:
        return ""
    return "\nWith one change:\n" + "".join(f"  - {fix.summary}\n" for fix in upgrades)


def render_resolution(resolution: Resolution, index_url: str | None, *, explain: bool = False) -> str:
    lines = [
        f"torch        {resolution.torch}  ({_variant_words(resolution.variant)})",
        f"torchvision  {resolution.pin(resolution.torchvision) or 'none released for this torch'}",
        f"torchaudio   {resolution.pin(resolution.torchaudio) or 'none released for this torch'}",
        f"transformers {resolution.transformers.version}",
        f"python       {resolution.python}",
        f"index        {index_url or 'the default package index'}",
    ]
    for fit in resolution.gpu_fit:
        gpu = fit.gpu
        via = f"{fit.via} (PTX JIT)" if fit.ptx else fit.via
        lines.append(
            f"GPU {gpu.index}: {gpu.name or 'unnamed'} ({gpu.gfx_target or gpu.cc.sm}) runs {via} code"
        )
    for unchecked in unverified_gpus(resolution):
        lines.append(
            f"GPU {unchecked.gpu_index}: {unchecked.gpu_name or 'unnamed'} ({unchecked.gfx_target}) "
            f"unverified: {gfx_unknown(unchecked.variant, unchecked.series)}"
        )
    for warning in warnings_of(resolution):
        lines.append(f"warning: {warning}")
    if resolution.rejected:
        lines.append("")
        lines.append("Better-looking candidates that were rejected:")
        if explain:
            for rejection in resolution.rejected:
                for reason in rejection.reasons:
                    lines.append(f"  {candidate(rejection)}: {rejection_sentence(reason, rejection)}")
        else:
            lines.extend(f"  {line}" for line in grouped(resolution.rejected))
            lines.append("(--explain lists every candidate with its full reasons)")
    if explain and resolution.passed_over:
        lines.append("")
        lines.append(f"Newer transformers releases not taken (with torch {resolution.release.version}):")
        lines.extend(f"  {line}" for line in passed_over_lines(resolution.passed_over))
    return "\n".join(lines) + "\n"


def render_failure(error: NoCompatibleCombination, *, explain: bool = False) -> str:
    lines = [f"No valid combination: {headline(error)}", ""]
    lines.extend(f"  {line}" for line in (detailed_causes(error) if explain else causes(error)))
    found = fixes_of(error)
    lines.append("")
    if found:
        lines.append("To make it work:")
        lines.extend(f"  - {fix.summary}" for fix in found)
    else:
        lines.append(
            "To make it work: no single change to this host or request was found to give a solution."
        )
    return "\n".join(lines) + "\n"


def _variant_words(variant: str) -> str:
    parsed = Variant.of(variant)
    if parsed is not None and parsed.kind == CUDA:
        return f"CUDA {parsed.version} build"
    if parsed is not None and parsed.kind == ROCM:
        return f"ROCm {parsed.version} build"
    if parsed is not None and parsed.kind == XPU:
        return "Intel XPU build"
    return "CPU build"


def render_team_failure(error: NoCompatibleCombination) -> str:
    lines = [f"No common version set: {headline(error)}"]
    lines.extend(f"  {line}" for line in causes(error))
    return "\n".join(lines) + "\n"
