"""The limits that apply to this process: cgroup memory and CPU quota, and the CPU affinity mask.

A container or a batch job sees the whole machine in /proc/meminfo and os.cpu_count(); what it may
use is set by its cgroup (v2 `memory.max`, `cpu.max`; v1 `memory.limit_in_bytes`,
`cpu.cfs_quota_us` / `cpu.cfs_period_us`) and by its affinity mask (taskset, cpusets, Slurm).

The cgroup directory of a controller is found as the kernel exposes it: `/proc/self/cgroup` names
the process's cgroup path per hierarchy, `/proc/self/mountinfo` where that hierarchy is mounted
and which of its paths the mount shows (a container sees its own cgroup as the mount's root).
Limits nest, so every directory from the process's cgroup up to the mount point is read and the
lowest limit wins. Parsers are pure; `read_limits` takes the file reader.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from resolver.host.model import Limits
from resolver.host.parse import ProbeParseError

PROC_CGROUP = "/proc/self/cgroup"
PROC_MOUNTINFO = "/proc/self/mountinfo"
# v1 writes "no limit" as the largest page-aligned signed 64-bit number (9223372036854771712).
_V1_UNLIMITED = 2**62


@dataclass(frozen=True)
class Membership:
    """/proc/self/cgroup: the v2 path ("0::/path") and the v1 path of each controller."""

    v2: str | None
    v1: dict[str, str]


@dataclass(frozen=True)
class Mount:
    root: str  # the hierarchy path this mount shows at its mount point
    point: str
    fstype: str  # "cgroup" | "cgroup2"
    controllers: frozenset[str]  # v1: the super options naming controllers


def parse_proc_cgroup(text: str) -> Membership:
    v2: str | None = None
    v1: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(":", 2)
        if len(parts) != 3:
            raise ProbeParseError(f"{PROC_CGROUP} line {number}: not ID:CONTROLLERS:PATH: {line!r}")
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        else:
            for controller in controllers.split(","):
                if controller:
                    v1[controller] = path
    return Membership(v2=v2, v1=v1)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """The cgroup mounts of `/proc/self/mountinfo` (proc(5): fields, optional fields, `-`,
    filesystem type, source, super options)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 7:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4:
            continue
        fstype, options = fields[dash + 1], fields[dash + 3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        controllers = frozenset(options.split(",")) if fstype == "cgroup" else frozenset()
        mounts.append(
            Mount(
                root=_unescape(fields[3]), point=_unescape(fields[4]), fstype=fstype, controllers=controllers
            )
        )
    return tuple(mounts)


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_memory_max(text: str) -> int | None:
    """v2 `memory.max`: bytes, or "max" (no limit)."""
    value = text.strip()
    if value == "max":
        return None
    if not value.isdigit():
        raise ProbeParseError(f"memory.max is neither bytes nor 'max': {value!r}")
    return int(value)


def parse_cpu_max(text: str) -> float | None:
    """v2 `cpu.max`: "QUOTA PERIOD" in microseconds ("200000 100000" is 2 CPUs), "max PERIOD"."""
    parts = text.split()
    if len(parts) not in (1, 2) or (parts[0] != "max" and not parts[0].isdigit()):
        raise ProbeParseError(f"cpu.max is not 'QUOTA PERIOD': {text.strip()!r}")
    if parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else 100000
    return int(parts[0]) / period if period else None


def parse_v1_memory_limit(text: str) -> int | None:
    """v1 `memory.limit_in_bytes`: bytes; a value near 2**63 means no limit."""
    value = text.strip()
    if not value.lstrip("-").isdigit():
        raise ProbeParseError(f"memory.limit_in_bytes is not a number: {value!r}")
    number = int(value)
    return None if number < 0 or number >= _V1_UNLIMITED else number


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`; a quota of -1 means no limit."""
    quota, period = quota_text.strip(), period_text.strip()
    if not quota.lstrip("-").isdigit() or not period.isdigit():
        raise ProbeParseError(f"cpu.cfs_quota_us / cpu.cfs_period_us are not numbers: {quota!r} / {period!r}")
    if int(quota) < 0 or int(period) == 0:
        return None
    return int(quota) / int(period)


# --- reading them -----------------------------------------------------------------------------------


def _directories(mount: Mount, path: str) -> list[str]:
    """The cgroup directories from `path` up to the mount point, deepest first."""
    relative = posixpath.relpath(path, mount.root) if path.startswith(mount.root) else "."
    if relative.startswith(".."):
        relative = "."  # the mount does not show this path (another namespace): use its root
    found = []
    while True:
        found.append(posixpath.normpath(posixpath.join(mount.point, relative)))
        if relative in (".", ""):
            return found
        relative = posixpath.dirname(relative) or "."


def _lowest(values: list[float]) -> float | None:
    return min(values) if values else None


@dataclass(frozen=True)
class _Reading:
    cgroup: str | None = None
    memory_max: int | None = None
    cpu_quota: float | None = None


def _read_v1(
    read: Callable[[str], str | None], membership: Membership, mounts: tuple[Mount, ...]
) -> _Reading:
    memory: list[float] = []
    cpu: list[float] = []
    found = False
    for mount in mounts:
        if mount.fstype != "cgroup":
            continue
        if "memory" in mount.controllers and "memory" in membership.v1:
            for directory in _directories(mount, membership.v1["memory"]):
                text = read(f"{directory}/memory.limit_in_bytes")
                if text is not None:
                    found = True
                    if (limit := parse_v1_memory_limit(text)) is not None:
                        memory.append(limit)
        if "cpu" in mount.controllers and "cpu" in membership.v1:
            for directory in _directories(mount, membership.v1["cpu"]):
                quota, period = read(f"{directory}/cpu.cfs_quota_us"), read(f"{directory}/cpu.cfs_period_us")
                if quota is not None and period is not None:
                    found = True
                    if (cpus := parse_cfs_quota(quota, period)) is not None:
                        cpu.append(cpus)
    lowest = _lowest(memory)
    return _Reading("v1" if found else None, None if lowest is None else int(lowest), _lowest(cpu))


def _read_v2(
    read: Callable[[str], str | None], membership: Membership, mounts: tuple[Mount, ...]
) -> _Reading:
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or membership.v2 is None:
        return _Reading()
    memory: list[float] = []
    cpu: list[float] = []
    found = False
    for directory in _directories(mount, membership.v2):
        if (text := read(f"{directory}/memory.max")) is not None:
            found = True
            if (limit := parse_memory_max(text)) is not None:
                memory.append(limit)
        if (text := read(f"{directory}/cpu.max")) is not None:
            found = True
            if (cpus := parse_cpu_max(text)) is not None:
                cpu.append(cpus)
    lowest = _lowest(memory)
    return _Reading("v2" if found else None, None if lowest is None else int(lowest), _lowest(cpu))


def read_limits(
    read: Callable[[str], str | None], affinity_cpus: int | None, machine_cpus: int | None
) -> Limits:
    """The limits of this process. `read` returns a file's text or None when it is absent; a
    malformed file raises ProbeParseError (the caller warns and moves on)."""
    membership_text = read(PROC_CGROUP)
    mounts_text = read(PROC_MOUNTINFO)
    reading = _Reading()
    if membership_text is not None and mounts_text is not None:
        membership = parse_proc_cgroup(membership_text)
        mounts = parse_mountinfo(mounts_text)
        # A hybrid host mounts v1 controllers beside an empty v2 tree: the v1 controllers rule.
        v1, v2 = _read_v1(read, membership, mounts), _read_v2(read, membership, mounts)
        reading = _Reading(
            cgroup=v1.cgroup or v2.cgroup,
            memory_max=v1.memory_max if v1.memory_max is not None else v2.memory_max,
            cpu_quota=v1.cpu_quota if v1.cpu_quota is not None else v2.cpu_quota,
        )
    return Limits(
        cgroup=reading.cgroup,
        memory_max_mib=None if reading.memory_max is None else reading.memory_max // (1024 * 1024),
        cpu_quota=None if reading.cpu_quota is None else round(reading.cpu_quota, 3),
        affinity_cpus=affinity_cpus,
        machine_cpus=machine_cpus,
    )
