"""A `check` finding: one check's outcome and the fixes for it, with the three ways to make one."""

from __future__ import annotations

from dataclasses import dataclass

from resolver.explain.fixes import Fix
from resolver.verify.smoke import Check


@dataclass(frozen=True)
class Finding:
    check: Check
    fixes: tuple[Fix, ...] = ()


def failed(
    name: str, expected: str, found: str, detail: str, *fixes: Fix | None, gpu: bool = False
) -> Finding:
    return Finding(Check(name, "fail", expected, found, detail, gpu), tuple(f for f in fixes if f))


def passed(name: str, expected: str, found: str, detail: str = "", gpu: bool = False) -> Finding:
    return Finding(Check(name, "pass", expected, found, detail, gpu))


def skipped(name: str, detail: str, gpu: bool = False) -> Finding:
    return Finding(Check(name, "skip", "-", "-", detail, gpu))
