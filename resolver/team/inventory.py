"""An inventory of exported host files (`inventory = "hosts/*.json"`): the files its globs match,
read one at a time into machine classes."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.host.gpunames import GpuNames
from resolver.host.hostfile import HostValues, read_host_values
from resolver.host.model import Host
from resolver.team.machine_classes import Bands, ClassKey, MachineClass, class_from_key, class_key, weakness


@dataclass
class _Group:
    weakest: HostValues
    weakness: tuple[Any, ...]
    members: int = 1


def group_inventory(
    paths: Iterable[str], bands: Bands, missing_hint: str, names: GpuNames | None = None
) -> dict[MachineClass, tuple[Host, int]]:
    """Read host files one at a time into their machine classes: each class's weakest member
    (the first of equally weak ones) and its number of members, what `group_hosts` and
    `representative` give over all the hosts, without holding them or making a Host of each.
    Every file is checked in full; a bad one stops the read with the HostFileError naming it."""
    groups: dict[ClassKey, _Group] = {}
    for path in paths:
        host = read_host_values(path, missing_hint=missing_hint, gpu_names=names)
        key = class_key(host, bands)
        weak = weakness(host)
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(host, weak)
            continue
        group.members += 1
        if weak < group.weakness:
            group.weakest, group.weakness = host, weak
    classes = {class_from_key(key): (group.weakest.host(), group.members) for key, group in groups.items()}
    return dict(sorted(classes.items()))


def inventory_paths(base: Path, patterns: Iterable[str]) -> list[str]:
    """The files the globs match, each once, in path order (`sorted` over `Path`s)."""
    found = {f for p in patterns for f in glob.glob(str(base / p))}
    if os.name != "posix":
        return [str(p) for p in sorted({Path(f) for f in found})]
    # glob answers a pattern Path has normalised with normalised paths, so on POSIX a string is
    # its Path, and comparing its parts orders it as Path does, without making 50,000 Paths.
    return sorted(found, key=_posix_order)


def _posix_order(path: str) -> str:
    """`path` with its separators as NUL, the lowest character (never in a path): strings so
    mapped compare as the lists of their parts do, and as Path compares them."""
    if path.startswith("/"):  # the root is a part of its own, "/"
        return "/\0" + path[1:].replace("/", "\0")
    return path.replace("/", "\0")
