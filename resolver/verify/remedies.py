"""What to do about a `check` finding: fixes found by solving for the host, never from a table.

An install fix names the closest torch that works on this host (the installed release in another
variant, else the oldest release newer than the installed one, else the newest older one), found
by solving with it pinned, and the solver's own choice beside it. When no build works on the
host's driver, the lowest driver floor of the matrix that gives a solution is named with what it
gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.errors import NoCompatibleCombination
from resolver.explain.fixes import Fix
from resolver.host.model import ComputeCapability, DriverVersion, Host
from resolver.matrix.arch import ArchTarget
from resolver.matrix.model import Matrix, TransformersRelease, variant_cuda
from resolver.solve.reasons import RuntimeTorchFloor, TorchOutside
from resolver.solve.request import Request
from resolver.solve.search import Resolution, solve
from resolver.solve.transformers import torch_reasons
from resolver.verify import smoke
from resolver.verify.environment import Installed, parse_version


def torch_arch_targets(arch_list: Sequence[str], device: ComputeCapability) -> tuple[ArchTarget, ...]:
    """`get_arch_list()` entries as arch targets for `device`: sm_XY a cubin, compute_XY PTX.
    An arch-specific cubin (sm_90a) counts only on exactly its capability."""
    targets = []
    for entry in arch_list:
        parsed = smoke.parse_arch(entry)
        if parsed is None:
            continue
        kind, major, minor, suffix = parsed
        cc = ComputeCapability(major, minor)
        if suffix == "a" and cc != device:
            continue
        targets.append(ArchTarget(cc, ptx=kind == "compute"))
    return tuple(targets)


@dataclass(frozen=True)
class Context:
    installed: Installed
    host: Host  # with the environment's Python and the devices CUDA sees
    matrix: Matrix

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(p for p in ("torchvision", "torchaudio") if p in self.installed.versions)


def _solve(ctx: Context, constraints: Mapping[str, SpecifierSet]) -> Resolution | None:
    request = Request(constraints=dict(constraints), python=ctx.installed.python_tag, packages=ctx.packages)
    try:
        return solve(ctx.host, ctx.matrix, request)
    except NoCompatibleCombination:
        return None


def _gives(resolution: Resolution) -> dict[str, str]:
    gives = {"torch": resolution.torch, "variant": resolution.variant}
    for name, version in (("torchvision", resolution.torchvision), ("torchaudio", resolution.torchaudio)):
        if version is not None:
            gives[name] = resolution.pin(version) or ""
    gives["transformers"] = str(resolution.transformers.version)
    return gives


def _driver_floors(matrix: Matrix, os_name: str) -> list[DriverVersion]:
    floors = set()
    for build in matrix.builds.values():
        cuda = variant_cuda(build.variant)
        floor = matrix.driver_floor(cuda, os_name) if cuda is not None else None
        if floor is not None:
            floors.add(floor)
    return sorted(floors)


def install_fix(ctx: Context, why: str) -> Fix | None:
    """The closest torch that works on this host (the installed release in another variant, else
    the oldest newer one, else the newest older one), found by solving with it pinned; the
    solver's own choice beside it.
    When nothing works on this driver: the lowest driver floor that gives a solution."""
    best = _solve(ctx, {})
    if best is not None:
        return _closest_install(ctx, best, why)
    driver = ctx.host.driver
    if driver is None or not ctx.host.cuda_devices:
        return None
    for floor in _driver_floors(ctx.matrix, ctx.host.os):
        if floor <= driver:
            continue
        raised = dataclasses.replace(ctx, host=dataclasses.replace(ctx.host, nvidia_driver=str(floor)))
        found = _solve(raised, {})
        if found is not None:
            fix = _closest_install(raised, found, why)
            summary = fix.summary.replace(
                ": install torch", f": upgrade the NVIDIA driver to {floor}+, then install torch", 1
            )
            return Fix("driver", summary, {"nvidia_driver": str(floor), **fix.apply}, fix.gives)
    return None


def driver_fix(ctx: Context, floor: DriverVersion, summary: str) -> Fix:
    """Raise the driver to `floor`; `gives` is what the solver then picks for the installed torch
    (or at all)."""
    raised = dataclasses.replace(ctx, host=dataclasses.replace(ctx.host, nvidia_driver=str(floor)))
    torch = ctx.installed.torch
    found = _solve(raised, {"torch": SpecifierSet(f"=={torch.public}")}) if torch is not None else None
    found = found or _solve(raised, {})
    return Fix("driver", summary, {"nvidia_driver": str(floor)}, _gives(found) if found else {})


def _closest_install(ctx: Context, best: Resolution, why: str) -> Fix:
    current = ctx.installed.torch
    releases = sorted(r.version for r in ctx.matrix.torch)
    ordered: list[Version] = []  # nothing installed: the solver's choice
    if current is not None:
        public = Version(current.public)
        # the same release in another variant, then newer ones, then older ones
        ordered = [v for v in releases if v == public]
        ordered += [v for v in releases if v > public] + [v for v in reversed(releases) if v < public]
    chosen = best
    for version in ordered:
        found = _solve(ctx, {"torch": SpecifierSet(f"=={version}")})
        if found is not None:
            chosen = found
            break
    gives = _gives(chosen)
    install = {k: v for k, v in gives.items() if k in ("torch", "torchvision", "torchaudio")}
    tf = ctx.installed.versions.get("transformers")
    tf_version = parse_version(tf)
    tf_release = ctx.matrix.transformers_release(tf_version) if tf_version else None
    if tf is not None and (tf_release is None or transformers_problem(tf_release, chosen.release.version)):
        install["transformers"] = gives["transformers"]
    newer = current is not None and chosen.release.version > Version(current.public)
    summary = f"{why}: install torch {chosen.torch}" + (" or newer" if newer else "")
    if chosen.torch != best.torch:
        summary += f" (`resolve` picks {best.torch} for this host)"
    return Fix("install", summary, {"install": install, "variant": chosen.variant}, gives)


def transformers_problem(release: TransformersRelease, torch: Version) -> str | None:
    """Why `release` cannot be used with `torch`, in words (the rule is the solver's)."""
    for reason in torch_reasons(release, Version(torch.public)):
        if isinstance(reason, TorchOutside):
            return f"requires torch{reason.spec}"
        if isinstance(reason, RuntimeTorchFloor):
            return f"disables its torch support below torch {reason.floor}"
    return None


def transformers_fix(ctx: Context, torch: Version | None, why: str) -> Fix | None:
    """The transformers the solver picks for the installed torch and Python; if this host cannot
    run that torch at all (another finding says so), the pick for it as a CPU host."""
    pins = {"torch": SpecifierSet(f"=={torch.public}")} if torch is not None else {}
    found = _solve(ctx, pins)
    if found is None and torch is not None:
        cpu_host = dataclasses.replace(
            ctx.host, nvidia_driver=None, gpus=(), visible_devices=(), masked_gpus=()
        )
        found = _solve(dataclasses.replace(ctx, host=cpu_host), pins)
    if found is None:
        return install_fix(ctx, why)
    want = str(found.transformers.version)
    return Fix(
        "install", f"{why}: install transformers {want}", {"install": {"transformers": want}}, _gives(found)
    )
