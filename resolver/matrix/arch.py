"""GPU code targets and the one binary-compatibility rule.

A cubin built for sm_XY runs on a device of the same major X with minor >= Y, except integrated
(Tegra/Jetson) parts, which run only cubins built for exactly their own capability (or an alias,
such as Jetson Thor 11.0, formerly 10.1). PTX for compute_XY JIT-compiles on any device >= X.Y.
Which capabilities are Tegra parts is data (`matrices/gpus.toml`), not code.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from resolver.host.model import ComputeCapability

_TARGET_RE = re.compile(r"^(\d{1,2})\.(\d)(\+PTX)?$")


@dataclass(frozen=True, order=True)
class ArchTarget:
    """One entry of a TORCH_CUDA_ARCH_LIST: "8.6" (cubin) or "12.0+PTX" (cubin plus PTX)."""

    cc: ComputeCapability
    ptx: bool = False

    @classmethod
    def parse(cls, text: str) -> ArchTarget:
        match = _TARGET_RE.match(text.strip())
        if not match:
            raise ValueError(f'not an arch target: {text!r} (expected e.g. "8.6" or "12.0+PTX")')
        return cls(ComputeCapability(int(match.group(1)), int(match.group(2))), bool(match.group(3)))

    def __str__(self) -> str:
        return f"{self.cc}{'+PTX' if self.ptx else ''}"


class Coverage(enum.Enum):
    CUBIN = "cubin"
    PTX = "ptx"
    NONE = "none"


@dataclass(frozen=True)
class TegraRule:
    """Integrated parts and their aliases, from the matrix."""

    tegra: frozenset[ComputeCapability]
    aliases: frozenset[frozenset[ComputeCapability]] = frozenset()

    def same_part(self, a: ComputeCapability, b: ComputeCapability) -> bool:
        return a == b or any(a in group and b in group for group in self.aliases)


def cubin_runs_on(target: ComputeCapability, device: ComputeCapability, rule: TegraRule) -> bool:
    if target in rule.tegra or device in rule.tegra:
        return rule.same_part(target, device)
    return target.major == device.major and target.minor <= device.minor


def coverage(targets: Iterable[ArchTarget], device: ComputeCapability, rule: TegraRule) -> Coverage:
    """How a build with these targets runs on `device`: native cubin, PTX JIT only, or not at all."""
    targets = tuple(targets)
    if any(cubin_runs_on(t.cc, device, rule) for t in targets):
        return Coverage.CUBIN
    if any(t.ptx and t.cc <= device for t in targets):
        return Coverage.PTX
    return Coverage.NONE


def sm_list(targets: Collection[ArchTarget]) -> str:
    """Render targets the way users read them: "sm_75 sm_80 sm_120+PTX"."""
    return " ".join(f"{t.cc.sm}{'+PTX' if t.ptx else ''}" for t in sorted(targets))
