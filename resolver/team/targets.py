"""The team's targets: declared in the team file (a host file or an inline host table) or one per
machine class of the inventory; and which target a host is, by its machine class."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from resolver.config import TeamConfig, check_python, check_variant, labelled_constraints, reject_unknown_keys
from resolver.errors import ConfigError, HostFileError, InputError, Location
from resolver.host.gpunames import GpuNames
from resolver.host.hostfile import host_from_mapping, read_host_file
from resolver.host.model import Host
from resolver.matrix.model import Matrix
from resolver.matrix.products import gpu_names
from resolver.team.inventory import group_inventory, inventory_paths
from resolver.team.machine_classes import Bands, machine_class

TARGET_KEYS = ("host", "constraints", "variant", "python")


@dataclass(frozen=True)
class Target:
    name: str
    host: Host
    constraints: Mapping[str, SpecifierSet] = dataclasses.field(default_factory=dict)
    variant: str | None = None
    python: str | None = None
    origin: str = ""
    members: int = 1  # hosts of the inventory this target stands for


# --- reading targets from the team file ------------------------------------------------------


def _target_from_table(name: str, table: Any, team: TeamConfig, base: Path, names: GpuNames) -> Target:
    origin = str(team.path) if team.path else "envs/team.toml"
    key = f"targets.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(
            "a target must be a table",
            location=Location(origin, key=key),
            value=table,
            hint=f'write [{key}] with host = "hosts/NAME.json" (a host file) or an inline host table',
        )
    reject_unknown_keys(table, TARGET_KEYS, origin, f"{key}.", f"a target takes {', '.join(TARGET_KEYS)}")
    raw_host = table.get("host")
    if isinstance(raw_host, str):
        host = read_host_file(
            base / raw_host,
            missing_hint=f"check `host` of [{key}] in {origin} (a path relative to the team file's folder)",
            gpu_names=names,
        )
    elif isinstance(raw_host, Mapping):
        try:
            host = host_from_mapping(raw_host, origin, names)
        except HostFileError as exc:
            # One dotted key: "team.toml [targets.a100.host.arch]".
            inner = exc.location.key if exc.location is not None and exc.location.key else None
            raise HostFileError(
                exc.message,
                location=Location(origin, key=f"{key}.host" + (f".{inner}" if inner else "")),
                value=exc.value,
                hint=exc.hint,
            ) from None
    else:
        raise ConfigError(
            "a target needs `host`: a host file path or an inline host table",
            location=Location(origin, key=f"{key}.host"),
            value=raw_host,
            hint='e.g. host = "hosts/a100.json" (made with `stack-resolver detect --json`)',
        )
    texts = table.get("constraints", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ConfigError(
            "constraints must be a list of strings",
            location=Location(origin, key=f"{key}.constraints"),
            value=texts,
            hint='e.g. constraints = ["torch<2.8"]',
        )
    constraints, pinned_variant = labelled_constraints(texts, origin, f"{key}.constraints")
    variant = table.get("variant", pinned_variant)
    python = table.get("python")
    for field_name, value, check, example in (
        ("variant", variant, check_variant, "cu126"),
        ("python", python, check_python, "3.11"),
    ):
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise InputError(f"'{field_name}' must be a string")
            check(value)
        except InputError as exc:
            raise ConfigError(
                exc.message.removeprefix("--python: "),
                location=Location(origin, key=f"{key}.{field_name}"),
                value=value,
                hint=f'e.g. {field_name} = "{example}"',
            ) from None
    return Target(
        name=name,
        host=host,
        constraints=constraints,
        variant=check_variant(variant) if variant else None,
        python=check_python(python) if python else None,
        origin=f"{origin} [{key}]",
    )


def load_targets(team: TeamConfig, matrix: Matrix) -> tuple[Target, ...]:
    """Declared targets, then one target per machine class of the inventory. A GPU of their hosts
    may be given by a product name this matrix lists."""
    origin = str(team.path) if team.path else "envs/team.toml"
    base = team.path.parent if team.path else Path("envs")
    raw = team.raw.get("targets", {})
    if not isinstance(raw, Mapping):
        raise ConfigError("`targets` must be a table of tables", location=Location(origin, key="targets"))
    names = gpu_names(matrix)
    targets = [_target_from_table(str(name), table, team, base, names) for name, table in raw.items()]
    inventory = team.raw.get("inventory")
    if inventory is not None:
        patterns = [inventory] if isinstance(inventory, str) else inventory
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(
                "`inventory` must be a glob or a list of globs",
                location=Location(origin, key="inventory"),
                value=inventory,
                hint='e.g. inventory = "hosts/*.json"',
            )
        paths = inventory_paths(base, patterns)
        groups = group_inventory(paths, Bands.from_matrix(matrix), f"check `inventory` in {origin}", names)
        declared = {t.name for t in targets}
        for klass, (weakest, members) in groups.items():
            name = klass.name()
            if name in declared:
                continue
            targets.append(Target(name=name, host=weakest, origin=f"{origin} [inventory]", members=members))
    return tuple(targets)


# --- host -> target ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    target: Target | None
    why: str
    nearest: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (target name, differences)


def match_target(host: Host, targets: Sequence[Target], matrix: Matrix) -> Match:
    bands = Bands.from_matrix(matrix)
    mine = machine_class(host, bands)
    scored = []
    for target in targets:
        theirs = machine_class(target.host, bands)
        scored.append((target, mine.differences(theirs)))
    exact = [t for t, diff in scored if not diff]
    if len(exact) == 1:
        return Match(exact[0], f"same machine class ({mine.name()})")
    ranked = sorted(scored, key=lambda item: len(item[1]))
    nearest = tuple((t.name, tuple(diff)) for t, diff in ranked[:3])
    if len(exact) > 1:
        names = ", ".join(t.name for t in exact)
        return Match(None, f"several targets match this machine ({names}); pick one with --target", nearest)
    return Match(None, f"no declared target matches this machine class ({mine.name()})", nearest)
