"""A compute capability, or a GPU product name standing for one ("RTX 4090" for 8.9), read once
at the edge by every reader of a capability: host files, inline team hosts, `STACK_RESOLVER_GPUS`,
doctor's `min_compute_capability`, `matrix show gpu`.

The names are matrix facts (`products` in matrices/gpus.toml) and the host layer reads no matrix:
whoever reads host input hands in a `GpuNames` lookup, which `matrix/products.py` builds from a
loaded matrix. Without one, only MAJOR.MINOR is accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from resolver.host.model import ComputeCapability

# A product name -> its compute capability; raises CapabilityError (unknown, or ambiguous).
GpuNames = Callable[[str], ComputeCapability]

# A fleet's host files spell few distinct capabilities: each text is parsed once (the value is
# immutable; a text that fails is not cached and raises every time).
_parse_cc = functools.lru_cache(maxsize=256)(ComputeCapability.parse)

NOT_CC_HINT = 'write it as "8.6", not "sm_86" or "86"'


class CapabilityError(ValueError):
    """Text that is neither a compute capability nor a known product name. The caller puts the
    message and the hint into its own error, naming its file, key or variable."""

    def __init__(self, message: str, hint: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.ambiguous = ambiguous  # a name of several GPUs, not an unknown one


def parse_capability(text: str, names: GpuNames | None) -> ComputeCapability:
    """`8.6`, or a product name `names` knows (`RTX 3090`, `NVIDIA A100-SXM4-80GB`)."""
    try:
        return _parse_cc(text)
    except ValueError:
        if names is None:
            raise CapabilityError("compute capability is not MAJOR.MINOR", NOT_CC_HINT) from None
    return names(text)
