"""The end of the binding chain: what excludes every candidate left. The categories of reasons, the
fewest of them that cover the candidates, and one clause for each, naming the matrix fact and the
host value."""

from __future__ import annotations

from collections.abc import Callable

from packaging.version import Version

from resolver.explain.spans import EVERY, Pool, Spans, candidate_key, has
from resolver.host.model import DriverVersion
from resolver.matrix.vocab import python_key
from resolver.solve.reasons import (
    ArchMissing,
    CompanionMissing,
    CompanionOutside,
    ConstraintExcludes,
    DriverBelowFloor,
    GlibcBelowFloor,
    MacosBelowFloor,
    MuslLibc,
    NoBuildData,
    NoCondaMapping,
    NoDriver,
    NoPythonWithin,
    NoWheelsForPlatform,
    PreRelease,
    PtxOnly,
    PythonNoWheel,
    PythonRequires,
    Reason,
    Rejection,
    RuntimeTorchFloor,
    TorchOutside,
    TransformersNone,
    Unavailable,
    UnknownDriverFloor,
    UnverifiedBuild,
    UnverifiedPairing,
    UnverifiedRelease,
    Yanked,
)
from resolver.solve.request import Request, constraint_text


def _is(count: int) -> str:
    return "is" if count == 1 else "are"


class Blockers(Spans):
    """The clauses that end the chain, for one host, matrix and request."""

    def clauses(self, pool: Pool, first: list[str]) -> list[str]:
        """What excludes everything left: the categories that cover every candidate, else the
        fewest that together do."""
        covers: dict[str, list[Rejection]] = {}
        keys: dict[str, set[tuple[Version, str | None]]] = {}
        for name, test, _ in self.categories():
            covers[name] = [c for c in pool if any(test(r) for r in c.reasons)]
            keys[name] = {candidate_key(c) for c in covers[name]}
        everywhere = [name for name, _, _ in self.categories() if pool and len(covers[name]) == len(pool)]
        chosen: list[str] = everywhere[:3]
        if not chosen:
            left = list(pool)
            while left and len(chosen) < 3:
                best = max(
                    (name for name, _, _ in self.categories() if name not in chosen),
                    key=lambda n: sum(1 for c in left if candidate_key(c) in keys[n]),
                )
                if not any(candidate_key(c) in keys[best] for c in left):
                    break
                chosen.append(best)
                left = [c for c in left if candidate_key(c) not in keys[best]]
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
            subject = "no torch release has a" if span == EVERY else f"{span} has no"
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
            | {"a conda build mapping" for c in pool if has(c, NoCondaMapping)}
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


_UNVERIFIED = (UnverifiedBuild, UnverifiedRelease, UnverifiedPairing)
_EMPTY = Request().spec("transformers")
