"""The headline of a failed solve: the binding chain, from the user's request to the host fact.

Worked out from data, PubGrub-style: start from every candidate the solver judged (with every
reason against it, `solve.search.verdicts`); set aside what the request's own choices exclude
(another `--variant`, AMD builds, CPU builds on a GPU host); narrow to the builds that carry
kernels for every GPU (the GPU's part of the chain); narrow to what the user's constraints allow
(their part, when it binds); then name the reasons that exclude everything left, each with the
matrix fact and the host value (blockers.py). Every clause is computed from the candidates, so it cannot say
something the matrix contradicts.
"""

from __future__ import annotations

from collections.abc import Sequence

from resolver.explain.blockers import Blockers
from resolver.explain.spans import Pool, Spans, candidate_key, has
from resolver.explain.words import gpu_kind, vendor_words
from resolver.host.model import Gpu, Host
from resolver.matrix.model import Matrix
from resolver.matrix.vocab import CUDA, ROCM, XPU, Variant
from resolver.solve.reasons import (
    ArchMissing,
    CompanionOutside,
    ConstraintExcludes,
    CpuFallback,
    NoBuildData,
    NotRequestedVariant,
    NoWheelsForPlatform,
    PtxOnly,
    Reason,
    Rejection,
    RocmNotRequested,
    UnknownGfxTargets,
)
from resolver.solve.request import Request


def binding_chain(host: Host, matrix: Matrix, request: Request, verdicts: Pool) -> str:
    return _Chain(host, matrix, request).explain(verdicts)


def _kind(variant: str | None) -> str | None:
    parsed = Variant.of(variant) if variant else None
    return parsed.kind if parsed else None


# which GPUs a build kind drives
_VENDOR = {CUDA: "nvidia", ROCM: "amd", XPU: "intel"}


class _Chain(Spans):
    def gpu_label(self, indexes: Sequence[int]) -> str:
        gpus = [g for g in self.host.gpus if g.index in indexes]
        sm = gpu_kind(gpus[0])
        names = sorted({g.name or "unnamed" for g in gpus})
        which = "GPU" if len(gpus) == 1 else "GPUs"
        return f"{sm} ({which} {', '.join(str(g.index) for g in gpus)}, {', '.join(names)})"

    # --- the chain ------------------------------------------------------------------------------

    def explain(self, verdicts: Pool) -> str:
        request, host = self.request, self.host
        pool = [c for c in verdicts if not has(c, RocmNotRequested)]
        if request.variant is not None:
            pool = [c for c in pool if not has(c, NotRequestedVariant)]
        # builds that do not exist for this platform say nothing about the host
        pool = [c for c in pool if _release_unbuilt(c) or not any(_not_built(r) for r in c.reasons)]
        if not pool:
            return f"the matrix has no {request.variant or 'torch'} build for {host.platform}"
        if request.variant is None:
            # GPU builds for a vendor this host has no GPU of say nothing about it
            present = {g.vendor for g in host.gpus} | ({"nvidia"} if host.has_nvidia_gpu else set())
            pool = [c for c in pool if _VENDOR.get(_kind(c.variant) or "", "") in present | {""}]
        fallback = [r for c in pool for r in c.reasons if isinstance(r, CpuFallback)]
        if fallback:
            gpu_pool = [c for c in pool if not has(c, CpuFallback)]
            if not gpu_pool:
                return (
                    f"the matrix has no build of torch for {host.platform} that drives this host's "
                    f"GPU, and a CPU build is not chosen on a host with {vendor_words(fallback[0].vendor)} "
                    "GPU (pass --variant cpu)"
                )
            pool = gpu_pool
        if not pool:
            return f"the matrix has no build of torch for {host.platform}"
        first: list[str] = []  # the user's part of the chain
        middle: list[str] = []  # the GPUs' part
        allowed = self.constraint_part(pool, first)
        if allowed is None:
            return "; ".join(first)
        kinds = {_kind(c.variant) or "" for c in pool}
        only = kinds.pop() if len(kinds) == 1 else ""
        gpus = {CUDA: host.nvidia_gpus, ROCM: host.amd_gpus}.get(only, ())
        if gpus:
            served = self.gpu_part(pool, allowed, gpus, middle)
            if served is None:
                return "; ".join(middle)
            if not served:
                return "; ".join([*first, *middle])
            allowed = served
        last = Blockers(host, self.matrix, request).clauses(allowed, first)
        return "; ".join([*first, *middle, *last]) or "no valid combination"

    def gpu_part(
        self, pool: Pool, allowed: Pool, gpus: Sequence[Gpu], parts: list[str]
    ) -> list[Rejection] | None:
        """Narrow `allowed` to the builds that serve every GPU (None: no build in the whole `pool`
        does, which settles the headline). A GPU is named when it excludes some of `allowed`."""
        universe = list(pool)
        kind = _kind(pool[0].variant)
        which = (
            f"{self.request.variant} build"
            if self.request.variant
            else f"{_KIND_WORDS.get(kind or '', 'GPU')} build"
        )
        groups: dict[str, list[int]] = {}
        for gpu in gpus:
            groups.setdefault(gpu_kind(gpu), []).append(gpu.index)
        serving: dict[str, list[Rejection]] = {}
        for sm, indexes in groups.items():

            def misses(c: Rejection, kinds: tuple[type[Reason], ...], indexes: list[int] = indexes) -> bool:
                return any(
                    isinstance(r, kinds) and getattr(r, "gpu_index", None) in indexes for r in c.reasons
                )

            serving[sm] = [
                c for c in universe if not misses(c, (ArchMissing, PtxOnly)) and not has(c, UnknownGfxTargets)
            ]
            if serving[sm]:
                continue
            label = self.gpu_label(indexes)
            unknown = [c for c in universe if has(c, UnknownGfxTargets) and not misses(c, (ArchMissing,))]
            if unknown:
                parts.append(
                    f"no {which} in the matrix is known to carry kernels for {label}; "
                    + self.unknown_gfx_words(unknown, universe)
                )
                return None
            ptx = [c for c in universe if not misses(c, (ArchMissing,))]
            if ptx and not self.request.allow_ptx:
                parts.append(
                    f"no {which} in the matrix carries kernels for {label}; {self.builds(ptx, universe)} "
                    f"reach{'es' if len(ptx) == 1 else ''} it only through PTX JIT (pass --allow-ptx)"
                )
            else:
                parts.append(f"no {which} in the matrix carries kernels for {label}")
            return None
        keys = {sm: {candidate_key(c) for c in serving[sm]} for sm in groups}
        common = {candidate_key(c) for c in universe if all(candidate_key(c) in keys[sm] for sm in groups)}
        if not common:
            needs = [
                f"{self.gpu_label(groups[sm])} needs {self.builds(serving[sm], universe)}" for sm in groups
            ]
            parts.append("no single build serves every GPU: " + "; ".join(needs))
            return None
        for sm, indexes in groups.items():
            if not all(candidate_key(c) in keys[sm] for c in allowed):
                parts.append(f"{self.gpu_label(indexes)} needs {self.builds(serving[sm], universe)}")
        served = [c for c in allowed if candidate_key(c) in common]
        unknown = [c for c in allowed if has(c, UnknownGfxTargets) and not has(c, ArchMissing)]
        if unknown and not served:
            parts.append(self.unknown_gfx_words(unknown, universe))
        return served

    def unknown_gfx_words(self, pool: Pool, universe: Pool) -> str:
        return (
            f"the gfx targets of {self.builds(pool, universe)} are not in the matrix "
            "(pass --allow-unverified to accept them unchecked)"
        )

    def constraint_part(self, pool: Pool, parts: list[str]) -> list[Rejection] | None:
        """The user's torch / torchvision / torchaudio constraints, when they bind."""
        kinds = (ConstraintExcludes, CompanionOutside)
        excluded = [c for c in pool if has(c, *kinds)]
        if not excluded:
            return list(pool)
        # Bind only when some candidate fails for nothing but the constraint.
        if not any(all(isinstance(r, kinds) for r in c.reasons) for c in excluded):
            return [_without(c, kinds) for c in pool]
        names: list[str] = []
        for c in excluded:
            for r in c.reasons:
                if isinstance(r, ConstraintExcludes) and r.package != "transformers":
                    names.append(f"{r.package}{r.spec}")
                elif isinstance(r, CompanionOutside):
                    names.append(f"{r.name}{r.spec}")
        text = ", ".join(dict.fromkeys(names))
        rest = [c for c in pool if not has(c, *kinds)]
        constraints = "constraints" if len(set(names)) > 1 else "constraint"
        if not rest:
            parts.append(self.conflict(pool, text, constraints))
            return None
        verb = "allow" if len(set(names)) > 1 else "allows"
        parts.append(f"your {constraints} {text} {verb} only {self.torch_span(rest)}")
        return rest

    def conflict(self, pool: Pool, text: str, constraints: str) -> str:
        """Constraints that exclude every build: name the torch constraint's pairing when a
        companion constraint is what excludes the torch it allows."""
        allowed = [c for c in pool if not any(isinstance(r, ConstraintExcludes) for r in c.reasons)]
        pairs = sorted(
            {
                (r.name, str(r.version), r.spec)
                for c in allowed
                for r in c.reasons
                if isinstance(r, CompanionOutside)
            }
        )
        torch_spec = self.request.spec("torch")
        if allowed and pairs and all(has(c, CompanionOutside) for c in allowed) and str(torch_spec):
            paired = ", ".join(f"{name} {version}" for name, version, _ in pairs)
            outside = ", ".join(dict.fromkeys(f"{name}{spec}" for name, _, spec in pairs))
            return (
                f"your constraint torch{torch_spec} allows only {self.torch_span(allowed)}, which pairs with "
                f"{paired}, outside your constraint {outside}"
            )
        return f"your {constraints} {text} exclude every build left"


_KIND_WORDS = {CUDA: "CUDA", ROCM: "ROCm"}


def _release_unbuilt(candidate: Rejection) -> bool:
    """The release publishes no wheels for the platform at all (a fact about the host)."""
    return any(isinstance(r, NoWheelsForPlatform) and r.variant is None for r in candidate.reasons)


def _not_built(reason: Reason) -> bool:
    return (isinstance(reason, NoWheelsForPlatform) and reason.variant is not None) or isinstance(
        reason, NoBuildData
    )


def _without(candidate: Rejection, kinds: tuple[type[Reason], ...]) -> Rejection:
    kept = tuple(r for r in candidate.reasons if not isinstance(r, kinds))
    return Rejection(candidate.torch, candidate.variant, kept, candidate.stage)


__all__ = ["binding_chain"]
