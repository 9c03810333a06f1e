"""What the team asks for on top of the host's facts, and the one rule that tightens it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet

from resolver.errors import ConstraintError, Location
from resolver.solve.reasons import Reason

MANAGED = ("torch", "torchvision", "torchaudio", "transformers", "python")
PREFERENCE_KEYS = ("torch", "variant", "transformers")


@dataclass(frozen=True)
class Request:
    """What the team asks for, on top of the host's facts."""

    constraints: Mapping[str, SpecifierSet] = field(default_factory=dict)
    variant: str | None = None
    python: str | None = None
    allow_ptx: bool = False
    allow_unverified: bool = False
    allow_cpu_fallback: bool = False
    # packages the team installs; torchvision/torchaudio must exist only when listed here
    packages: tuple[str, ...] = ()
    # order of preference keys; the default prefers the newest torch over the newest CUDA
    prefer: tuple[str, ...] = PREFERENCE_KEYS
    # What an availability survey found missing, as input: (torch version, variant) -> why its
    # wheels cannot be had (an `Unavailable`), and transformers versions the index lacks -> why.
    unavailable: Mapping[tuple[str, str], Reason] = field(default_factory=dict)
    unavailable_transformers: Mapping[str, Reason] = field(default_factory=dict)

    def spec(self, name: str) -> SpecifierSet:
        return self.constraints.get(name, SpecifierSet())

    def pins(self, name: str) -> bool:
        return any(s.operator in ("==", "===") for s in self.spec(name))


def parse_constraint(text: str, origin: str = "--constraint") -> tuple[str, SpecifierSet]:
    """Parse "torch>=2.4,<2.7" into ("torch", SpecifierSet). Only managed packages are allowed."""
    from packaging.requirements import InvalidRequirement, Requirement  # a heavy parser: on use
    from packaging.utils import canonicalize_name  # loads packaging.tags: on use

    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "invalid requirement"
        raise ConstraintError(
            f"cannot parse constraint: {first_line}",
            location=Location(origin),
            value=text,
            hint='write it like "torch>=2.4,<2.7" or "transformers==4.57.6"',
        ) from None
    name = canonicalize_name(requirement.name)
    if name not in MANAGED:
        raise ConstraintError(
            f"'{requirement.name}' is not a package the solver manages",
            location=Location(origin),
            value=text,
            hint=f"constraints apply to {', '.join(MANAGED)}; list other packages under `packages`",
        )
    if requirement.extras or requirement.marker or requirement.url:
        raise ConstraintError(
            "a constraint takes a version range only (no extras, markers or URLs)",
            location=Location(origin),
            value=text,
            hint='e.g. "torch>=2.4,<2.7"',
        )
    return name, requirement.specifier


def combine(base: Mapping[str, SpecifierSet], extra: Mapping[str, SpecifierSet]) -> dict[str, SpecifierSet]:
    """Both sets of constraints at once: a package named in both must satisfy both."""
    merged = dict(base)
    for name, spec in extra.items():
        merged[name] = merged[name] & spec if name in merged else spec
    return merged


def merge_constraints(texts: Iterable[str], origin: str = "--constraint") -> dict[str, SpecifierSet]:
    """Parse constraint strings into one specifier per package."""
    merged: dict[str, SpecifierSet] = {}
    for text in texts:
        name, spec = parse_constraint(text, origin)
        merged = combine(merged, {name: spec})
    return merged


def tighten(request: Request, specs: Mapping[str, SpecifierSet]) -> Request:
    """The request with `specs` added to its constraints (cli flags, a team target, a proposal)."""
    return dataclasses.replace(request, constraints=combine(request.constraints, specs))


def constraint_text(name: str, spec: SpecifierSet) -> str:
    """ "transformers==4.52.4": how a constraint is written back (strict, one canonical order)."""
    return f"{name}{spec}"
