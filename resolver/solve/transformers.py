"""Which transformers release fits: the one rule, used by the solve, the team solve and the
availability check.

A release fits when it is within the user's range, is neither yanked nor a pre-release (unless
pinned), is available, accepts the Python in use, and accepts the torch release both in its
`torch` extra and at import time (`runtime_min_torch`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.matrix.model import TransformersRelease
from resolver.matrix.vocab import python_version
from resolver.solve.reasons import (
    ConstraintExcludes,
    PreRelease,
    PythonRequires,
    Reason,
    RuntimeTorchFloor,
    TorchOutside,
    TransformersExcluded,
    TransformersNone,
    Yanked,
)
from resolver.solve.request import Request


def release_reasons(row: TransformersRelease, request: Request, python: str | None) -> tuple[Reason, ...]:
    """Why `row` cannot be taken on Python `python`, whatever the torch release."""
    return _release_reasons(row, request, request.spec("transformers"), request.pins("transformers"), python)


def _release_reasons(
    row: TransformersRelease, request: Request, spec: SpecifierSet, pinned: bool, python: str | None
) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    if not spec.contains(row.version, prereleases=True):
        reasons.append(ConstraintExcludes("transformers", str(spec), row.version))
    if row.yanked and not pinned:
        reasons.append(Yanked("transformers", row.version))
    if row.version.is_prerelease and not pinned:
        reasons.append(PreRelease("transformers", row.version))
    missing = request.unavailable_transformers.get(str(row.version))
    if missing is not None:
        reasons.append(missing)
    if python is not None and not row.requires_python.contains(python_version(python), prereleases=True):
        reasons.append(PythonRequires("transformers", str(row.requires_python), python))
    return tuple(reasons)


def torch_reasons(row: TransformersRelease, torch: Version) -> tuple[Reason, ...]:
    """Why `row` cannot be used with torch `torch`."""
    reasons: list[Reason] = []
    if not row.torch.contains(torch, prereleases=True):
        reasons.append(TorchOutside(str(row.torch), torch))
    if row.runtime_min_torch is not None and torch < row.runtime_min_torch:
        reasons.append(RuntimeTorchFloor(row.runtime_min_torch, torch))
    return tuple(reasons)


@dataclass(frozen=True)
class TransformersFit:
    """The rule applied to one matrix's rows for one request and Python (`rows` newest first)."""

    rows: Sequence[TransformersRelease]
    request: Request
    python: str | None

    @functools.cached_property
    def _spec(self) -> tuple[SpecifierSet, bool]:
        return self.request.spec("transformers"), self.request.pins("transformers")

    @functools.cached_property
    def _verdicts(self) -> list[tuple[TransformersRelease, tuple[Reason, ...]]]:
        return []

    @property
    def _judged(self) -> Iterator[tuple[TransformersRelease, tuple[Reason, ...]]]:
        """Each row with why it cannot be taken, newest first, each judged once and only when
        reached: a pick stops at the first fit, so older rows are never judged."""
        verdicts = self._verdicts
        spec, pinned = self._spec
        for index, row in enumerate(self.rows):
            if index == len(verdicts):
                verdicts.append((row, _release_reasons(row, self.request, spec, pinned, self.python)))
            yield verdicts[index]

    def fitting(self, torch: Version) -> list[TransformersRelease]:
        """Every release that fits torch `torch`, newest first."""
        return [row for row, why in self._judged if not why and not torch_reasons(row, torch)]

    @functools.cached_property
    def _passed_over(self) -> dict[tuple[Version, Version], tuple[TransformersExcluded, ...]]:
        return {}

    def passed_over(self, chosen: TransformersRelease, torch: Version) -> tuple[TransformersExcluded, ...]:
        """The releases newer than `chosen` and why each was not taken (for --explain). Asked for
        every valid build of a release, so kept per (chosen, torch): a team survey asks thousands
        of times."""
        key = (chosen.version, torch)
        found = self._passed_over.get(key)
        if found is None:
            newer = itertools.takewhile(lambda judged: judged[0].version > chosen.version, self._judged)
            found = tuple(
                TransformersExcluded(row.version, why + torch_reasons(row, torch)) for row, why in newer
            )
            self._passed_over[key] = found
        return found

    def pick(self, torch: Version) -> TransformersRelease | TransformersNone:
        """The newest release that fits, or why none does."""
        for row, why in self._judged:
            if not why and not torch_reasons(row, torch):
                return row
        spec = self.request.spec("transformers")
        excluded = tuple(
            TransformersExcluded(row.version, why + torch_reasons(row, torch))
            for row, why in self._judged
            if not any(isinstance(r, ConstraintExcludes) for r in why)
        )
        return TransformersNone(str(spec), self.python, torch, excluded)
