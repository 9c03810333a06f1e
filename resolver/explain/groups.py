"""Neighbouring torch releases rejected for the same reasons, grouped into one line each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.version import Version

from resolver.explain.words import phrase
from resolver.solve.reasons import Rejection


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
            text = phrase(reason)
            if text not in summaries:
                summaries.append(text)
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
