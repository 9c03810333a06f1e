"""The headline of a failed solve: the binding chain, from the user's request to the host fact.

Worked out from data, PubGrub-style: start from every candidate the solver judged (with every
reason against it, `solve.search.verdicts`); set aside what the request's own choices exclude
(another `--variant`, AMD builds, CPU builds on a GPU host); narrow to the builds that carry
kernels for every GPU (the GPU's part of the chain); narrow to what the user's constraints allow
(their part, when it binds); then name the reasons that exclude everything left, each with the
matrix fact and the host value. Every clause is computed from the candidates, so it cannot say
something the matrix contradicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from packaging.version import Version

from resolver.explain.words import gpu_kind, vendor_words
from resolver.host.model import DriverVersion, Gpu, Host
from resolver.matrix.model import Matrix
from resolver.matrix.vocab import CUDA, ROCM, XPU, Variant, python_key
from resolver.solve.reasons import (
    ArchMissing,
    CompanionMissing,
    CompanionOutside,
    ConstraintExcludes,
    CpuFallback,
    DriverBelowFloor,
    GlibcBelowFloor,
    MacosBelowFloor,
    MuslLibc,
    NoBuildData,
    NoCondaMapping,
    NoDriver,
    NoPythonWithin,
    NotRequestedVariant,
    NoWheelsForPlatform,
    PreRelease,
    PtxOnly,
    PythonNoWheel,
    PythonRequires,
    Reason,
    Rejection,
    RocmNotRequested,
    RuntimeTorchFloor,
    TorchOutside,
    TransformersNone,
    Unavailable,
    UnknownDriverFloor,
    UnknownGfxTargets,
    UnverifiedBuild,
    UnverifiedPairing,
    UnverifiedRelease,
    Yanked,
)
from resolver.solve.request import Request, constraint_text

Pool = Sequence[Rejection]


def binding_chain(host: Host, matrix: Matrix, request: Request, verdicts: Pool) -> str:
    return _Chain(host, matrix, request).explain(verdicts)


def _has(candidate: Rejection, *kinds: type[Reason]) -> bool:
    return any(isinstance(r, kinds) for r in candidate.reasons)


def _cuda(variant: str | None) -> Version | None:
    """The version a GPU variant is built with (CUDA 12.8 for cu128, ROCm 6.3 for rocm6.3)."""
    parsed = Variant.of(variant) if variant else None
    return parsed.version if parsed else None


def _kind(variant: str | None) -> str | None:
    parsed = Variant.of(variant) if variant else None
    return parsed.kind if parsed else None


# which GPUs a build kind drives
_VENDOR = {CUDA: "nvidia", ROCM: "amd", XPU: "intel"}


def _is(count: int) -> str:
    return "is" if count == 1 else "are"


class _Chain:
    def __init__(self, host: Host, matrix: Matrix, request: Request) -> None:
        self.host = host
        self.matrix = matrix
        self.request = request
        self.releases = sorted(r.version for r in matrix.torch)

    # --- words for sets of candidates ------------------------------------------------------------

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
            return _EVERY
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
        if span == _EVERY:
            return f"the {self.variant_span(pool, universe)} builds"
        return f"{span} ({self.variant_span(pool, universe)})"

    def gpu_label(self, indexes: Sequence[int]) -> str:
        gpus = [g for g in self.host.gpus if g.index in indexes]
        sm = gpu_kind(gpus[0])
        names = sorted({g.name or "unnamed" for g in gpus})
        which = "GPU" if len(gpus) == 1 else "GPUs"
        return f"{sm} ({which} {', '.join(str(g.index) for g in gpus)}, {', '.join(names)})"

    def python_in_use(self) -> str:
        python = self.request.python or self.host.python
        if self.request.python:
            return f"Python {python} is in use"
        return f"this host has Python {python}"

    # --- the chain ------------------------------------------------------------------------------

    def explain(self, verdicts: Pool) -> str:
        request, host = self.request, self.host
        pool = [c for c in verdicts if not _has(c, RocmNotRequested)]
        if request.variant is not None:
            pool = [c for c in pool if not _has(c, NotRequestedVariant)]
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
            gpu_pool = [c for c in pool if not _has(c, CpuFallback)]
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
        last = self.blockers(allowed, first)
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
                c
                for c in universe
                if not misses(c, (ArchMissing, PtxOnly)) and not _has(c, UnknownGfxTargets)
            ]
            if serving[sm]:
                continue
            label = self.gpu_label(indexes)
            unknown = [c for c in universe if _has(c, UnknownGfxTargets) and not misses(c, (ArchMissing,))]
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
        keys = {sm: {_key(c) for c in serving[sm]} for sm in groups}
        common = {_key(c) for c in universe if all(_key(c) in keys[sm] for sm in groups)}
        if not common:
            needs = [
                f"{self.gpu_label(groups[sm])} needs {self.builds(serving[sm], universe)}" for sm in groups
            ]
            parts.append("no single build serves every GPU: " + "; ".join(needs))
            return None
        for sm, indexes in groups.items():
            if not all(_key(c) in keys[sm] for c in allowed):
                parts.append(f"{self.gpu_label(indexes)} needs {self.builds(serving[sm], universe)}")
        served = [c for c in allowed if _key(c) in common]
        unknown = [c for c in allowed if _has(c, UnknownGfxTargets) and not _has(c, ArchMissing)]
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
        excluded = [c for c in pool if _has(c, *kinds)]
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
        rest = [c for c in pool if not _has(c, *kinds)]
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
        if allowed and pairs and all(_has(c, CompanionOutside) for c in allowed) and str(torch_spec):
            paired = ", ".join(f"{name} {version}" for name, version, _ in pairs)
            outside = ", ".join(dict.fromkeys(f"{name}{spec}" for name, _, spec in pairs))
            return (
                f"your constraint torch{torch_spec} allows only {self.torch_span(allowed)}, which pairs with "
                f"{paired}, outside your constraint {outside}"
            )
        return f"your {constraints} {text} exclude every build left"

    def blockers(self, pool: Pool, first: list[str]) -> list[str]:
        """What excludes everything left: the categories that cover every candidate, else the
        fewest that together do."""
        covers: dict[str, list[Rejection]] = {}
        keys: dict[str, set[tuple[Version, str | None]]] = {}
        for name, test, _ in self.categories():
            covers[name] = [c for c in pool if any(test(r) for r in c.reasons)]
            keys[name] = {_key(c) for c in covers[name]}
        everywhere = [name for name, _, _ in self.categories() if pool and len(covers[name]) == len(pool)]
        chosen: list[str] = everywhere[:3]
        if not chosen:
            left = list(pool)
            while left and len(chosen) < 3:
                best = max(
                    (name for name, _, _ in self.categories() if name not in chosen),
                    key=lambda n: sum(1 for c in left if _key(c) in keys[n]),
                )
                if not any(_key(c) in keys[best] for c in left):
                    break
                chosen.append(best)
                left = [c for c in left if _key(c) not in keys[best]]
        renderers = {name: render for name, _, render in self.categories()}
        parts: list[str] = []
        for name in chosen:
            text = renderers[name](covers[name], pool)
            if name == "transformers" and self.request.spec("transformers") != _EMPTY:
                first.append(text)
            else:
                parts.append(text)
        return parts

    def categories(self) -> list[tuple[str, Callable[[Reason], bool], Callable[[Pool, Pool], str]]]:
        return [
            ("transformers", lambda r: isinstance(r, TransformersNone), self.transformers_words),
            (
                "python",
                lambda r: isinstance(r, (PythonNoWheel, PythonRequires, NoPythonWithin)),
                self.python_words,
            ),
            ("musl", lambda r: isinstance(r, MuslLibc), self.musl_words),
            ("glibc", lambda r: isinstance(r, GlibcBelowFloor), self.glibc_words),
            ("macos", lambda r: isinstance(r, MacosBelowFloor), self.macos_words),
            ("platform", lambda r: isinstance(r, NoWheelsForPlatform), self.platform_words),
            ("companion", lambda r: isinstance(r, CompanionMissing), self.companion_words),
            ("no-driver", lambda r: isinstance(r, NoDriver), self.no_driver_words),
            ("driver", lambda r: isinstance(r, DriverBelowFloor), self.driver_words),
            ("index", lambda r: isinstance(r, (Unavailable, NoCondaMapping)), self.index_words),
            ("data", lambda r: isinstance(r, NoBuildData), self.data_words),
            ("unverified", lambda r: isinstance(r, _UNVERIFIED), self.unverified_words),
            ("unknown-floor", lambda r: isinstance(r, UnknownDriverFloor), self.unknown_floor_words),
            ("ptx", lambda r: isinstance(r, PtxOnly), self.ptx_words),
            ("arch", lambda r: isinstance(r, ArchMissing), self.arch_words),
            (
                "constraint",
                lambda r: isinstance(r, (ConstraintExcludes, CompanionOutside)),
                self.constraint_words,
            ),
        ]

    # --- one clause per category ----------------------------------------------------------------

    def python_words(self, pool: Pool, _: Pool) -> str:
        reasons = [r for c in pool for r in c.reasons]
        requires = sorted({r.spec for r in reasons if isinstance(r, PythonRequires) and r.package == "torch"})
        no_wheel = [r for r in reasons if isinstance(r, PythonNoWheel)]
        within = [r for r in reasons if isinstance(r, NoPythonWithin)]
        span = self.torch_span(pool)
        if within and not requires and not no_wheel:
            subject = "no torch release has a" if span == _EVERY else f"{span} has no"
            return f"{subject} wheel for a Python within your constraint python{within[0].spec}"
        if requires and not no_wheel:
            return f"{span} requires Python {' or '.join(requires)}; {self.python_in_use()}"
        available = sorted({p for r in no_wheel for p in r.available if not p.endswith("t")}, key=python_key)
        python = self.request.python or self.host.python
        has = f" (only {available[0]}–{available[-1]})" if available else ""
        return f"{span} has no wheel for Python {python}{has}; {self.python_in_use()}"

    def musl_words(self, pool: Pool, _: Pool) -> str:
        return "this host uses musl libc; torch publishes only manylinux (glibc) wheels for Linux"

    def glibc_words(self, pool: Pool, _: Pool) -> str:
        floor = min(r.floor for c in pool for r in c.reasons if isinstance(r, GlibcBelowFloor))
        return f"{self.torch_span(pool)} needs glibc >= {floor}; this host has glibc {self.host.libc_version}"

    def macos_words(self, pool: Pool, _: Pool) -> str:
        floor = min(r.floor for c in pool for r in c.reasons if isinstance(r, MacosBelowFloor))
        return f"{self.torch_span(pool)} needs macOS >= {floor}; this host runs macOS {self.host.os_version}"

    def platform_words(self, pool: Pool, universe: Pool) -> str:
        return f"{self.torch_span(pool)} publishes no wheels for {self.host.platform}"

    def companion_words(self, pool: Pool, _: Pool) -> str:
        names = sorted({r.name for c in pool for r in c.reasons if isinstance(r, CompanionMissing)})
        which = " or ".join(names)
        return f"{self.torch_span(pool)} has no {which} release, and the team installs {which}"

    def no_driver_words(self, pool: Pool, _: Pool) -> str:
        return "CUDA builds need an NVIDIA driver, and none was found on this host"

    def driver_words(self, pool: Pool, _: Pool) -> str:
        floors: dict[str, tuple[str, bool]] = {}
        for c in pool:
            for r in c.reasons:
                if isinstance(r, DriverBelowFloor):
                    floors.setdefault(r.cuda, (r.floor, r.at_least))
        ordered = sorted(floors.items(), key=lambda item: DriverVersion.parse(item[1][0]))
        needs = ", ".join(
            f"CUDA {cuda} needs driver >= {floor}"
            + (" at least (its floor is not known)" if at_least else "")
            for cuda, (floor, at_least) in ordered
        )
        return f"{needs}; this host has driver {self.host.nvidia_driver}"

    def index_words(self, pool: Pool, universe: Pool) -> str:
        sources = sorted(
            {r.source for c in pool for r in c.reasons if isinstance(r, Unavailable)}
            | {"a conda build mapping" for c in pool if _has(c, NoCondaMapping)}
        )
        return f"{self.builds(pool, universe)} {_is(len(pool))} not on {', '.join(sources)}"

    def data_words(self, pool: Pool, universe: Pool) -> str:
        return f"the matrix has no build data for {self.builds(pool, universe)}"

    def unverified_words(self, pool: Pool, universe: Pool) -> str:
        builds = self.builds(pool, universe)
        return f"{builds} {_is(len(pool))} unverified in the matrix (pass --allow-unverified)"

    def unknown_floor_words(self, pool: Pool, universe: Pool) -> str:
        cudas = sorted({r.cuda for c in pool for r in c.reasons if isinstance(r, UnknownDriverFloor)})
        return (
            f"the minimum {self.host.os} driver for CUDA {', '.join(cudas)} is not in the matrix "
            "(pass --allow-unverified to accept it)"
        )

    def ptx_words(self, pool: Pool, universe: Pool) -> str:
        sms = sorted({r.sm for c in pool for r in c.reasons if isinstance(r, PtxOnly)})
        return f"{self.builds(pool, universe)} reach {', '.join(sms)} only through PTX JIT (pass --allow-ptx)"

    def arch_words(self, pool: Pool, universe: Pool) -> str:
        sms = sorted({r.sm for c in pool for r in c.reasons if isinstance(r, ArchMissing)})
        return f"{self.builds(pool, universe)} carry no kernels for {', '.join(sms)}"

    def constraint_words(self, pool: Pool, _: Pool) -> str:
        texts = [
            f"{r.package}{r.spec}" if isinstance(r, ConstraintExcludes) else f"{r.name}{r.spec}"
            for c in pool
            for r in c.reasons
            if isinstance(r, (ConstraintExcludes, CompanionOutside))
        ]
        return f"your constraints {', '.join(dict.fromkeys(texts))} exclude the rest"

    def transformers_words(self, pool: Pool, _: Pool) -> str:
        nones = [r for c in pool for r in c.reasons if isinstance(r, TransformersNone)]
        spec = nones[0].spec
        subject = (
            f"your constraint {constraint_text('transformers', self.request.spec('transformers'))}"
            if spec
            else "every transformers release"
        )
        rows: dict[Version, list[Reason]] = {}
        for none in nones:
            for row in none.excluded:
                rows.setdefault(row.version, list(row.reasons))
        if not rows:
            return f"no transformers release in the matrix lies within {subject.removeprefix('your ')}"
        versions = sorted(rows, reverse=True)
        listed = ", ".join(str(v) for v in versions[:3]) + (", ..." if len(versions) > 3 else "")

        def all_rows(kind: type[Reason]) -> list[Reason]:
            found = [next((r for r in rows[v] if isinstance(r, kind)), None) for v in versions]
            return [r for r in found if r is not None] if all(found) else []

        if all_rows(Yanked):
            return (
                f"{subject} allows only transformers {listed}, which {_is(len(versions))} yanked "
                "(pin an exact version with == to take it anyway)"
            )
        if all_rows(PreRelease):
            return (
                f"{subject} allows only transformers {listed}, which {_is(len(versions))} a pre-release "
                "(pin an exact version with == to take it)"
            )
        python_floors = all_rows(PythonRequires)
        if python_floors:
            specs = sorted({r.spec for r in python_floors if isinstance(r, PythonRequires)})
            return f"{subject} needs Python {' or '.join(specs)}; {self.python_in_use()}"
        missing = all_rows(Unavailable)
        if missing:
            where = sorted({r.source for r in missing if isinstance(r, Unavailable)})
            return f"transformers {listed} {_is(len(versions))} not on {', '.join(where)}"
        torch_specs = [
            r.spec if isinstance(r, TorchOutside) else f">={r.floor}"
            for v in versions
            for r in rows[v]
            if isinstance(r, (TorchOutside, RuntimeTorchFloor))
        ]
        if torch_specs and all(
            any(isinstance(r, (TorchOutside, RuntimeTorchFloor)) for r in rows[v]) for v in versions
        ):
            return f"{subject} needs torch{' or torch'.join(dict.fromkeys(torch_specs))}"
        python = self.request.python or self.host.python
        on = f" on Python {python}" if python else ""
        within = subject.removeprefix("your constraint ")
        return f"no transformers release within {within} supports {self.torch_span(pool)}{on}"


_EVERY = "every torch release"
_KIND_WORDS = {CUDA: "CUDA", ROCM: "ROCm"}
_UNVERIFIED = (UnverifiedBuild, UnverifiedRelease, UnverifiedPairing)


def _key(candidate: Rejection) -> tuple[Version, str | None]:
    return (candidate.torch, candidate.variant)


def _release_unbuilt(candidate: Rejection) -> bool:
    """The release publishes no wheels for the platform at all (a fact about the host)."""
    return any(isinstance(r, NoWheelsForPlatform) and r.variant is None for r in candidate.reasons)


def _not_built(reason: Reason) -> bool:
    return (isinstance(reason, NoWheelsForPlatform) and reason.variant is not None) or isinstance(
        reason, NoBuildData
    )


_EMPTY = Request().spec("transformers")


def _without(candidate: Rejection, kinds: tuple[type[Reason], ...]) -> Rejection:
    kept = tuple(r for r in candidate.reasons if not isinstance(r, kinds))
    return Rejection(candidate.torch, candidate.variant, kept, candidate.stage)


__all__ = ["CUDA", "binding_chain"]
