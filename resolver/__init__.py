"""stack-resolver: reproducible environments for GPU machine-learning stacks.

The public API, one name per step of the pipeline (docs/architecture.md):

    detect_host, read_host_file      host/      what a machine is
    load_matrix, validate_matrix     matrix/    the sourced compatibility facts
    Request, solve_combination       solve/     the best valid combination, or typed reasons
    resolve                          workflows  resolve and write envs/<target>/
    lock_team                        workflows  one version set for every target, locked
    audit_team                       team/      what a proposed change does to each target
    verify_target, check_environment verify/    a lock installed fresh; an existing environment

Names are imported on first use (PEP 562), so `import resolver` stays cheap.
"""

from __future__ import annotations

# Not `typing.TYPE_CHECKING`: importing typing would cost `python -m resolver` more than an
# unchanged `resolve` takes in all (resolver/replay.py). mypy honours the name either way.
TYPE_CHECKING = False

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS = {
    "ResolverError": ("resolver.errors", "ResolverError"),
    "InputError": ("resolver.errors", "InputError"),
    "MatrixError": ("resolver.errors", "MatrixError"),
    "NoCompatibleCombination": ("resolver.errors", "NoCompatibleCombination"),
    "ExternalToolError": ("resolver.errors", "ExternalToolError"),
    "ExitCode": ("resolver.errors", "ExitCode"),
    "Host": ("resolver.host.model", "Host"),
    "Gpu": ("resolver.host.model", "Gpu"),
    "ComputeCapability": ("resolver.host.model", "ComputeCapability"),
    "read_host_file": ("resolver.host.hostfile", "read_host_file"),
    "detect_host": ("resolver.detection", "detect_host"),
    "Matrix": ("resolver.matrix.model", "Matrix"),
    "load_matrix": ("resolver.matrix.load", "load_matrix"),
    "validate_matrix": ("resolver.matrix.load", "validate_matrix"),
    "Request": ("resolver.solve.request", "Request"),
    "Resolution": ("resolver.solve.search", "Resolution"),
    # not `solve`: that name is the resolver.solve sub-package once it is imported
    "solve_combination": ("resolver.solve.search", "solve"),
    "resolve": ("resolver.workflows", "resolve"),
    "lock_team": ("resolver.workflows", "lock"),
    "audit_team": ("resolver.team.audit", "audit_team"),
    "verify_target": ("resolver.verify.target", "verify_target"),
    "check_environment": ("resolver.verify.check", "check_environment"),
}

__all__ = [
    "ComputeCapability",
    "ExitCode",
    "ExternalToolError",
    "Gpu",
    "Host",
    "InputError",
    "Matrix",
    "MatrixError",
    "NoCompatibleCombination",
    "Request",
    "Resolution",
    "ResolverError",
    "__version__",
    "audit_team",
    "check_environment",
    "detect_host",
    "load_matrix",
    "lock_team",
    "read_host_file",
    "resolve",
    "solve_combination",
    "validate_matrix",
    "verify_target",
]

if TYPE_CHECKING:
    from typing import Any

    from resolver.detection import detect_host
    from resolver.errors import (
        ExitCode,
        ExternalToolError,
        InputError,
        MatrixError,
        NoCompatibleCombination,
        ResolverError,
    )
    from resolver.host.hostfile import read_host_file
    from resolver.host.model import ComputeCapability, Gpu, Host
    from resolver.matrix.load import load_matrix, validate_matrix
    from resolver.matrix.model import Matrix
    from resolver.solve.request import Request
    from resolver.solve.search import Resolution
    from resolver.solve.search import solve as solve_combination
    from resolver.team.audit import audit_team
    from resolver.verify.check import check_environment
    from resolver.verify.target import verify_target
    from resolver.workflows import lock as lock_team
    from resolver.workflows import resolve


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'resolver' has no attribute {name!r}") from None
    import importlib  # here: `python -m resolver` may replay a run without it (resolver/replay.py)

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
