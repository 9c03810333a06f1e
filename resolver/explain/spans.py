"""Words for a pool of candidates (the builds the solver judged, each with every reason against
it): the torch releases and variants it spans, the Python in use; and the tests on a candidate
that the binding chain (chain.py) and its closing clauses (blockers.py) share."""

from __future__ import annotations

from collections.abc import Sequence

from packaging.version import Version

from resolver.host.model import Host
from resolver.matrix.model import Matrix
from resolver.matrix.vocab import Variant
from resolver.solve.reasons import Reason, Rejection
from resolver.solve.request import Request

Pool = Sequence[Rejection]
EVERY = "every torch release"  # `torch_span` of a pool that holds every release of the matrix


def has(candidate: Rejection, *kinds: type[Reason]) -> bool:
    return any(isinstance(r, kinds) for r in candidate.reasons)


def candidate_key(candidate: Rejection) -> tuple[Version, str | None]:
    return (candidate.torch, candidate.variant)


def _cuda(variant: str | None) -> Version | None:
    """The version a GPU variant is built with (CUDA 12.8 for cu128, ROCm 6.3 for rocm6.3)."""
    parsed = Variant.of(variant) if variant else None
    return parsed.version if parsed else None


class Spans:
    """Words for sets of candidates, for one host, matrix and request."""

    def __init__(self, host: Host, matrix: Matrix, request: Request) -> None:
        self.host = host
        self.matrix = matrix
        self.request = request
        self.releases = sorted(r.version for r in matrix.torch)

    def torch_span(self, pool: Pool) -> str:
        """ "torch >= 2.7.0", "torch 2.2.0–2.5.1", "torch 2.15.0": runs of the matrix's releases."""
        wanted = {c.torch for c in pool}
        runs: list[list[Version]] = []
        for version in self.releases:
            if version in wanted:
                if runs and runs[-1][-1] == self._previous(version):
                    runs[-1].append(version)
                else:
                    runs.append([version])
        parts = []
        if len(runs) == 1 and runs[0][0] == self.releases[0] and runs[0][-1] == self.releases[-1]:
            return EVERY
        for run in runs:
            low, high = run[0], run[-1]
            if low == high:
                parts.append(str(low))
            elif high == self.releases[-1] and len(runs) == 1:
                return f"torch >= {low}"
            elif low == self.releases[0] and len(runs) == 1:
                return f"torch <= {high}"
            else:
                parts.append(f"{low}–{high}")
        return "torch " + ", ".join(parts)

    def _previous(self, version: Version) -> Version | None:
        index = self.releases.index(version)
        return self.releases[index - 1] if index else None

    @staticmethod
    def variant_span(pool: Pool, universe: Pool) -> str:
        """ "cu128 or newer", "cu118 or older", or the list."""
        names = {cuda: c.variant for c in pool if (cuda := _cuda(c.variant)) is not None}
        if not names:
            return ", ".join(sorted({c.variant or "" for c in pool}))
        every = {cuda for c in universe if (cuda := _cuda(c.variant)) is not None}
        mine = sorted(names)
        low, high = mine[0], mine[-1]
        if len(mine) > 1 and set(mine) == {v for v in every if v >= low}:
            return f"{names[low]} or newer"
        if len(mine) > 1 and set(mine) == {v for v in every if v <= high}:
            return f"{names[high]} or older"
        return ", ".join(str(names[v]) for v in mine)

    def builds(self, pool: Pool, universe: Pool) -> str:
        span = self.torch_span(pool)
        if span == EVERY:
            return f"the {self.variant_span(pool, universe)} builds"
        return f"{span} ({self.variant_span(pool, universe)})"

    def python_in_use(self) -> str:
        python = self.request.python or self.host.python
        if self.request.python:
            return f"Python {python} is in use"
        return f"this host has Python {python}"
