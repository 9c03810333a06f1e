"""stack-resolver: reproducible environments for GPU machine-learning stacks."""

from __future__ import annotations

__version__ = "0.1.0"
