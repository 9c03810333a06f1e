"""The vocabulary every layer shares: variant names and Python version keys, parsed in one place.

A variant names the accelerator a torch wheel is built for: `cpu`, `cuXYZ` (CUDA X.Y or XY.Z),
`rocmX.Y[.Z]` (AMD ROCm) and `xpu` (Intel GPUs). Code never slices variant strings itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

_CUDA = re.compile(r"^cu(\d{2,3})$")
_ROCM = re.compile(r"^rocm(\d+\.\d+(?:\.\d+)?)$")

CPU, CUDA, ROCM, XPU = "cpu", "cuda", "rocm", "xpu"

# Preference when a host could run several: a GPU build before a CPU build; among GPU builds the
# vendor order does not matter on a real host (it has one vendor's driver), so a fixed order.
_PREFERENCE = {CUDA: 3, ROCM: 2, XPU: 1, CPU: 0}
# The order torch.toml lists variants in: cpu, then CUDA, then ROCm, then XPU, each ascending.
_LISTING = {CPU: 0, CUDA: 1, ROCM: 2, XPU: 3}


@dataclass(frozen=True)
class Variant:
    """One parsed variant name. `number` is the text after the prefix: "128" for cu128."""

    name: str
    kind: str  # cpu | cuda | rocm | xpu
    number: str = ""

    @classmethod
    def parse(cls, text: str) -> Variant:
        """Raises ValueError for anything that is not a variant name."""
        if text in (CPU, XPU):
            return cls(text, text)
        cuda = _CUDA.match(text)
        if cuda:
            return cls(text, CUDA, cuda.group(1))
        rocm = _ROCM.match(text)
        if rocm:
            return cls(text, ROCM, rocm.group(1))
        raise ValueError(f"not a variant name: {text!r}")

    @classmethod
    def of(cls, text: str) -> Variant | None:
        """The parsed variant, or None for text that is not one."""
        try:
            return cls.parse(text)
        except ValueError:
            return None

    @property
    def version(self) -> Version | None:
        """CUDA 12.8 for cu128, ROCm 6.3 for rocm6.3; None for cpu and xpu."""
        if self.kind == CUDA:
            return Version(f"{int(self.number[:-1])}.{self.number[-1]}")
        if self.kind == ROCM:
            return Version(self.number)
        return None

    @property
    def cuda(self) -> Version | None:
        return self.version if self.kind == CUDA else None

    @property
    def rank(self) -> tuple[int, Version]:
        """Higher is preferred: CUDA by version, then ROCm, then XPU, then CPU."""
        return (_PREFERENCE[self.kind], self.version or Version("0"))

    @property
    def listing_key(self) -> tuple[int, Version]:
        """The order the matrix lists variants in."""
        return (_LISTING[self.kind], self.version or Version("0"))

    def __str__(self) -> str:
        return self.name


def variant_kind(text: str) -> str | None:
    """ "cuda", "rocm", "xpu" or "cpu" for a well-formed variant name, else None."""
    variant = Variant.of(text)
    return variant.kind if variant else None


def variant_cuda(text: str) -> Version | None:
    """The CUDA version a cuXYZ variant is built with: cu128 -> 12.8, cu102 -> 10.2."""
    variant = Variant.of(text)
    return variant.cuda if variant else None


def python_key(python: str) -> tuple[int, int, bool]:
    """Sort key of a matrix Python ("3.11", "3.13t"): by version, the free-threaded build after."""
    major, minor = python.rstrip("t").split(".")
    return int(major), int(minor), python.endswith("t")


def python_version(python: str) -> Version:
    """The version a matrix Python stands for: "3.13t" -> 3.13."""
    return Version(python.rstrip("t"))
