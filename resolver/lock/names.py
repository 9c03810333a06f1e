"""Target names and lock formats: pure checks, cheap to import (a dry run needs them, not the
lock machinery)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from resolver.errors import InputError
from resolver.host.model import Host

FORMATS = ("poetry", "conda")
_SLUG = re.compile(r"[A-Za-z0-9._-]+")
_DERIVED = re.compile(r"[A-Za-z0-9._+-]+")


def target_name_for(host: Host, variant: str, python: str) -> str:
    """e.g. linux-x86_64-sm90-cu126-py311, linux-x86_64-sm61+sm86-cu126-py311, macos-arm64-cpu-py312."""
    sms = sorted(
        {f"sm{g.cc.major}{g.cc.minor}" for g in host.nvidia_gpus}
        | {g.gfx_target or "" for g in host.amd_gpus}
    )
    parts = [host.platform]
    if sms and variant != "cpu":
        parts.append("+".join(sms))
    parts.append(variant)
    parts.append("py" + python.replace(".", ""))
    return "-".join(parts)


def check_target_name(name: str, origin: str = "--target") -> str:
    """A target name names a folder of envs/: letters, digits, `.`, `_`, `-`; never `.` or `..`."""
    if not _SLUG.fullmatch(name) or name in (".", ".."):
        raise InputError(
            f"{origin}: a target name may hold only letters, digits, '.', '_' and '-' (it names a "
            "folder of envs/)",
            value=name,
            hint="e.g. gpu-box, cpu_ci or h100.node",
        )
    return name


def target_directory(envs: Path, name: str) -> Path:
    """`envs/<name>`: the only place a target's files go (never outside envs/)."""
    if not _DERIVED.fullmatch(name) or name in (".", ".."):
        check_target_name(name)
    return envs / name


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(formats))
    for fmt in chosen:
        if fmt not in FORMATS:
            raise InputError("unknown lock format", value=fmt, hint="poetry or conda")
    return chosen
