"""Fixes that work: the smallest changes to the host or the request that give a solution, each
found by solving again with the change applied. Also the upgrades a valid choice is one host
change away from.

A change is a mapping a program can apply (`apply_change`): host-file keys (`nvidia_driver`,
`python`, `libc_version`, `os_version`), `drop_constraint` / `constraint` (both: replace), a
command-line `flag`, or the `gpus` to keep.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from resolver.errors import NoCompatibleCombination
from resolver.explain.words import gfx_unknown, gpu_kind
from resolver.host.model import DriverVersion, Host
from resolver.matrix.model import Matrix
from resolver.matrix.vocab import CPU, Variant, python_key
from resolver.solve.reasons import (
    CpuFallback,
    DriverBelowFloor,
    GfxUnchecked,
    GlibcBelowFloor,
    MacosBelowFloor,
    NoDriver,
    NoPythonWithin,
    PtxOnly,
    PythonNoWheel,
    PythonOutsideConstraint,
    PythonRequires,
    Reason,
    Rejection,
    TransformersNone,
    UnknownDriverFloor,
    UnverifiedBuild,
    UnverifiedPairing,
    UnverifiedRelease,
)
from resolver.solve.request import Request, constraint_text, parse_constraint, tighten
from resolver.solve.search import Resolution, solve

Change = Mapping[str, Any]
_MAX_PAIRS = 40
KINDS = ("constraint", "driver", "python", "glibc", "macos", "flag", "gpus")
_UNVERIFIED = (UnverifiedBuild, UnverifiedRelease, UnverifiedPairing, UnknownDriverFloor)
_PYTHON = (PythonNoWheel, PythonRequires, NoPythonWithin, PythonOutsideConstraint)


@dataclass(frozen=True)
class Fix:
    kind: str
    summary: str
    apply: Change
    gives: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary,
            "apply": dict(self.apply),
            "gives": dict(self.gives),
        }


def apply_change(host: Host, request: Request, change: Change) -> tuple[Host, Request]:
    """The host and request with `change` applied: the one reading of a fix's `apply`."""
    host_keys = {k: str(change[k]) for k in ("nvidia_driver", "libc_version", "os_version") if k in change}
    if "python" in change:
        host_keys["python"] = str(change["python"])
        if request.python is not None:  # --python overrides the host's: change that too
            request = dataclasses.replace(request, python=str(change["python"]))
    if host_keys:
        host = dataclasses.replace(host, **host_keys)  # type: ignore[arg-type]
    if "gpus" in change:
        keep = set(change["gpus"])
        host = dataclasses.replace(host, gpus=tuple(g for g in host.gpus if g.index in keep))
    if "drop_constraint" in change:
        name, _ = parse_constraint(str(change["drop_constraint"]), "drop_constraint")
        constraints = {k: v for k, v in request.constraints.items() if k != name}
        request = dataclasses.replace(request, constraints=constraints)
    if "constraint" in change:
        name, spec = parse_constraint(str(change["constraint"]), "constraint")
        request = tighten(request, {name: spec})
    flag = str(change.get("flag", ""))
    if flag == "--allow-ptx":
        request = dataclasses.replace(request, allow_ptx=True)
    elif flag == "--allow-unverified":
        request = dataclasses.replace(request, allow_unverified=True)
    elif flag == "--allow-cpu-fallback":
        request = dataclasses.replace(request, allow_cpu_fallback=True)
    elif flag.startswith("--variant "):
        request = dataclasses.replace(request, variant=flag.removeprefix("--variant "))
    return host, request


def gives(resolution: Resolution) -> dict[str, str]:
    """What a change gives; `unverified_gfx` names the AMD gfx targets the build is not known to
    carry (its gfx list is unknown): the fix gives that build, not a working one for those GPUs."""
    out = {
        "torch": resolution.torch,
        "variant": resolution.variant,
        "transformers": str(resolution.transformers.version),
    }
    unchecked = _unverified_gfx(resolution)
    if unchecked:
        out["unverified_gfx"] = " ".join(unchecked)
    return out


def _unverified_gfx(resolution: Resolution) -> list[str]:
    return sorted({n.gfx_target for n in resolution.notes if isinstance(n, GfxUnchecked)})


def _try(host: Host, matrix: Matrix, request: Request, change: Change) -> Resolution | None:
    changed_host, changed_request = apply_change(host, request, change)
    try:
        return solve(changed_host, matrix, changed_request)
    except NoCompatibleCombination:
        return None


def _summary(kind: str, change: Change, host: Host) -> str:
    if kind == "driver":
        return f"raise the NVIDIA driver to {change['nvidia_driver']} or newer"
    if kind == "python":
        return f"use Python {change['python']}"
    if kind == "glibc":
        return f"use a system with glibc {change['libc_version']} or newer"
    if kind == "macos":
        return f"upgrade macOS to {change['os_version']} or newer"
    if kind == "constraint":
        if "drop_constraint" in change and "constraint" in change:
            return f"replace the constraint {change['drop_constraint']} with {change['constraint']}"
        if "drop_constraint" in change:
            return f"drop the constraint {change['drop_constraint']}"
        return f"add the constraint {change['constraint']}"
    if kind == "flag":
        return f"pass {change['flag']}"
    kept = [g for g in host.gpus if g.index in change["gpus"]]
    which = "GPU" if len(kept) == 1 else "GPUs"
    sms = ", ".join(sorted({gpu_kind(g) for g in kept}))
    return f"resolve for {which} {', '.join(str(g.index) for g in kept)} ({sms}) only"


def _with_gives(text: str, resolution: Resolution) -> str:
    text = f"{text}: gives torch {resolution.torch}, transformers {resolution.transformers.version}"
    unchecked = _unverified_gfx(resolution)
    if unchecked:
        series = resolution.release.series
        text += (
            f", unverified for {' '.join(unchecked)} ({gfx_unknown(resolution.variant, series)}; "
            "it may not run on these GPUs)"
        )
    return text


# --- the changes worth trying ------------------------------------------------------------------


def _reasons(verdicts: Iterable[Rejection], extra: Iterable[Reason] = ()) -> list[Reason]:
    return [*(r for c in verdicts for r in c.reasons), *extra]


def _driver_floors(host: Host, matrix: Matrix, reasons: Sequence[Reason]) -> list[str]:
    if not host.nvidia_gpus and host.nvidia_driver is None:
        return []  # no NVIDIA GPU: a driver is no change to suggest
    floors = {r.floor for r in reasons if isinstance(r, DriverBelowFloor)}
    if any(isinstance(r, NoDriver) for r in reasons):
        for family in matrix.cuda_families.values():
            floor = family.min_driver.get(host.os)
            if floor is not None:
                floors.add(str(floor))
    return sorted(floors, key=DriverVersion.parse)


def _pythons(host: Host, matrix: Matrix, request: Request) -> list[str]:
    """The matrix's Pythons for this platform, nearest to the one in use first (newer on a tie)."""
    found = {p for r in matrix.torch for p in r.python.get(host.platform, ()) if not p.endswith("t")}
    current = request.python or host.python
    found.discard(current or "")
    if current is None:
        return sorted(found, key=python_key, reverse=True)
    now = python_key(current)
    return sorted(found, key=lambda p: (abs(python_key(p)[1] - now[1]), -python_key(p)[1]))


def candidates(
    host: Host, matrix: Matrix, request: Request, reasons: Sequence[Reason]
) -> list[tuple[str, list[Change]]]:
    """Per kind, the changes to try in order (the first that solves is the smallest)."""
    out: list[tuple[str, list[Change]]] = []
    out.append(("constraint", _constraint_changes(request, reasons)))
    out.append(("driver", [{"nvidia_driver": f} for f in _driver_floors(host, matrix, reasons)]))
    python_bound = any(isinstance(r, _PYTHON) for r in reasons) or any(
        isinstance(r, TransformersNone)
        and any(isinstance(x, PythonRequires) for e in r.excluded for x in e.reasons)
        for r in reasons
    )
    if python_bound:
        out.append(("python", [{"python": p} for p in _pythons(host, matrix, request)]))
    glibc = sorted({r.floor for r in reasons if isinstance(r, GlibcBelowFloor)})
    out.append(("glibc", [{"libc_version": str(v)} for v in glibc]))
    macos = sorted({r.floor for r in reasons if isinstance(r, MacosBelowFloor)})
    out.append(("macos", [{"os_version": _os_version(v)} for v in macos]))
    flags: list[Change] = []
    if not request.allow_ptx and any(isinstance(r, PtxOnly) for r in reasons):
        flags.append({"flag": "--allow-ptx"})
    if not request.allow_unverified and any(isinstance(r, _UNVERIFIED) for r in reasons):
        flags.append({"flag": "--allow-unverified"})
    if request.variant != CPU and any(isinstance(r, CpuFallback) for r in reasons):
        flags.append({"flag": f"--variant {CPU}"})
    out.append(("flag", flags))
    return out


def _constraint_changes(request: Request, reasons: Sequence[Reason]) -> list[Change]:
    """Drop each constraint; for transformers, also pin the newest release within it (a pin takes
    a yanked release or a pre-release)."""
    changes: list[Change] = [
        {"drop_constraint": constraint_text(n, s)} for n, s in request.constraints.items()
    ]
    if "transformers" in request.constraints:
        within = sorted(
            {e.version for r in reasons if isinstance(r, TransformersNone) for e in r.excluded}, reverse=True
        )
        old = constraint_text("transformers", request.spec("transformers"))
        for version in within[:1]:
            pin = f"transformers=={version}"
            if pin != old:
                changes.append({"drop_constraint": old, "constraint": pin})
    return changes


def _os_version(version: Version) -> str:
    return f"{version.major}.{version.minor}"


def _gpu_subsets(host: Host) -> list[list[int]]:
    """Proper subsets of the host's GPU kinds (by sm), largest first."""
    by_sm: dict[str, list[int]] = {}
    for gpu in host.gpus:
        by_sm.setdefault(gpu_kind(gpu), []).append(gpu.index)
    kinds = list(by_sm.values())
    if len(kinds) < 2 or len(kinds) > 5:
        return []
    subsets = []
    for size in range(len(kinds) - 1, 0, -1):
        for combo in itertools.combinations(kinds, size):
            subsets.append(sorted(i for group in combo for i in group))
    return subsets


# --- the two entry points -------------------------------------------------------------------------


def fixes(error: NoCompatibleCombination, verdicts: Sequence[Rejection]) -> list[Fix]:
    """The smallest changes that give a solution, each re-solved; none when nothing works."""
    host, matrix, request = error.host, error.matrix, error.request
    if host is None or matrix is None or request is None:
        return []
    reasons = _reasons(verdicts, error.reasons)
    found: list[Fix] = []
    options = candidates(host, matrix, request, reasons)
    for kind, changes in options:
        if kind in ("driver", "glibc", "macos", "python"):
            found.extend(_smallest_and_best(host, matrix, request, kind, changes))
            continue
        for change in changes:
            resolution = _try(host, matrix, request, change)
            if resolution is not None:
                found.append(_fix(kind, change, host, resolution))
    working_subsets: list[set[int]] = []
    for subset in _gpu_subsets(host):
        if any(set(subset) <= kept for kept in working_subsets):
            continue
        change = {"gpus": subset}
        resolution = _try(host, matrix, request, change)
        if resolution is not None:
            working_subsets.append(set(subset))
            found.append(
                Fix(
                    "gpus", _with_gives(_summary("gpus", change, host), resolution), change, gives(resolution)
                )
            )
    if any(fix.apply.get("flag") != f"--variant {CPU}" for fix in found):
        return found
    # Nothing but a CPU build works with one change: try two changes that keep the GPU.
    return found + _pairs(host, matrix, request, [(k, c) for k, c in options if k != "flag"])


def _fix(kind: str, change: Change, host: Host, resolution: Resolution) -> Fix:
    return Fix(kind, _with_gives(_summary(kind, change, host), resolution), change, gives(resolution))


def _smallest_and_best(
    host: Host, matrix: Matrix, request: Request, kind: str, changes: Sequence[Change]
) -> list[Fix]:
    """The first change (the smallest, or for Python the nearest) that works, and, for a floor,
    the one that gives the best build when that is a different build."""
    found: list[tuple[Change, Resolution]] = []
    for change in changes:
        resolution = _try(host, matrix, request, change)
        if resolution is None:
            continue
        found.append((change, resolution))
        if kind == "python":
            break
    if not found:
        return []
    first = found[0]
    best = max(found, key=lambda item: build_rank(request, item[1]))
    picked = [first] if build_rank(request, best[1]) <= build_rank(request, first[1]) else [first, best]
    return [_fix(kind, change, host, resolution) for change, resolution in picked]


def _pairs(
    host: Host, matrix: Matrix, request: Request, options: list[tuple[str, list[Change]]]
) -> list[Fix]:
    """When no single change works: two changes of different kinds at once."""
    firsts = [(kind, change) for kind, changes in options for change in changes[:3]]
    found: list[Fix] = []
    pairs = [
        (first, second)
        for first, second in itertools.combinations(firsts, 2)
        if first[0] != second[0]  # two flags would not fit one "flag" key
    ]
    # Each try is a full solve: a bounded number keeps a hopeless host's answer quick.
    for (kind_a, a), (kind_b, b) in pairs[:_MAX_PAIRS]:
        change = {**a, **b}
        resolution = _try(host, matrix, request, change)
        if resolution is None:
            continue
        text = f"{_summary(kind_a, a, host)} and {_summary(kind_b, b, host)}"
        found.append(Fix(kind_a, _with_gives(text, resolution), change, gives(resolution)))
        if len(found) >= 3:
            break
    return found


def build_rank(request: Request, resolution: Resolution) -> tuple[object, ...]:
    """How good the build is (torch release and variant, in the request's order of preference)."""
    return tuple(
        part
        for key, part in zip(request.prefer, _rank(request, resolution), strict=True)
        if key != "transformers"
    )


def _rank(request: Request, resolution: Resolution) -> tuple[object, ...]:
    parsed = Variant.of(resolution.variant)
    parts: dict[str, object] = {
        "torch": resolution.release.version,
        "variant": parsed.rank if parsed else (0, Version("0")),
        "transformers": resolution.transformers.version,
    }
    return tuple(parts[key] for key in request.prefer)


def upgrades(host: Host, matrix: Matrix, request: Request, resolution: Resolution) -> list[Fix]:
    """Host changes (driver, Python, glibc, macOS) that would give a better build, one each."""
    reasons = _reasons(resolution.rejected)
    now = build_rank(request, resolution)
    found: list[Fix] = []
    for kind, changes in candidates(host, matrix, request, reasons):
        if kind not in ("driver", "python", "glibc", "macos"):
            continue
        if kind == "python":
            current = python_key(request.python or host.python or "0.0")
            changes = [c for c in changes if python_key(str(c["python"])) > current]
        best: tuple[tuple[object, ...], Change, Resolution] | None = None
        for change in changes:
            better = _try(host, matrix, request, change)
            if better is None or build_rank(request, better) <= now:
                continue
            if best is None or build_rank(request, better) > best[0]:
                best = (build_rank(request, better), change, better)
        if best is not None:
            _, change, better = best
            found.append(Fix(kind, _with_gives(_summary(kind, change, host), better), change, gives(better)))
    return found
