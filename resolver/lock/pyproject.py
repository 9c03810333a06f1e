"""Generate or update an environment's `pyproject.toml`, keeping every byte the user owns.

The tool owns only these keys; everything else (comments, other tables, extra dependencies,
formatting) is left exactly as it was:
- `[project]` `requires-python`, and `name`/`version` when absent;
- `[project] dependencies` entries naming a managed package (the torch family, transformers,
  the team's packages, and anything the tool wrote last time);
- `[tool.poetry] package-mode`;
- `[tool.poetry.dependencies]` entries of packages bound to the PyTorch index;
- `[[tool.poetry.source]]` entries named `pytorch-*` and `general`.
A value is only assigned when it differs, so an unchanged re-run rewrites nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tomlkit.items import AoT, Array, Table

from resolver.errors import InputError, Location

GENERAL_SOURCE = "general"
PYTORCH_SOURCE_PREFIX = "pytorch-"


@dataclass(frozen=True)
class Dependency:
    """One dependency the tool declares: a PEP 508 string and, if bound, its source name."""

    requirement: str
    source: str | None = None

    @property
    def name(self) -> str:
        return canonicalize_name(Requirement(self.requirement).name)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    url: str
    priority: str


@dataclass(frozen=True)
class EnvironmentSpec:
    """Everything the tool writes into an environment's pyproject.toml."""

    name: str
    requires_python: str
    dependencies: tuple[Dependency, ...]
    sources: tuple[SourceSpec, ...]
    # names the tool may remove if no longer wanted (what it wrote before)
    previously_owned: frozenset[str] = frozenset()


def _requirement_name(text: str) -> str | None:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


def _set_if_changed(table: Table | tomlkit.TOMLDocument, key: str, value: object) -> None:
    current: Any = table.get(key)
    plain = current.unwrap() if hasattr(current, "unwrap") else current
    if plain != value:
        table[key] = value


def _table(parent: Table | tomlkit.TOMLDocument, key: str, *, super_table: bool = False) -> Table:
    if key not in parent:
        parent[key] = tomlkit.table(is_super_table=super_table)
    item = parent[key]
    if not isinstance(item, Table):
        raise InputError(f"'{key}' must be a table", location=Location("pyproject.toml", key=key))
    return item


def _update_dependencies(project: Table, spec: EnvironmentSpec) -> None:
    wanted = {dep.name: dep.requirement for dep in spec.dependencies}
    owned = set(wanted) | set(spec.previously_owned)
    existing = project.get("dependencies")
    if existing is None:
        array = tomlkit.array()
        array.multiline(True)
        for dep in spec.dependencies:
            array.append(dep.requirement)
        project["dependencies"] = array
        return
    if not isinstance(existing, Array):
        raise InputError(
            "[project] dependencies must be an array",
            location=Location("pyproject.toml", key="project.dependencies"),
        )
    seen: set[str] = set()
    # Walk backwards so deleting keeps indexes valid; user entries are never touched.
    for position in range(len(existing) - 1, -1, -1):
        text = str(existing[position])
        name = _requirement_name(text)
        if name is None or name not in owned:
            continue
        if name in wanted and name not in seen:
            seen.add(name)
            if text != wanted[name]:
                existing[position] = wanted[name]
        else:
            del existing[position]
    for dep in spec.dependencies:
        if dep.name not in seen:
            existing.append(dep.requirement)


def _update_bindings(poetry: Table, spec: EnvironmentSpec) -> None:
    bound = {dep.name: dep.source for dep in spec.dependencies if dep.source}
    deps = poetry.get("dependencies")
    if deps is None and not bound:
        return
    deps = _table(poetry, "dependencies")
    for key in list(deps.keys()):
        name = canonicalize_name(key)
        value = deps[key]
        source = value.get("source") if isinstance(value, dict) else None
        is_ours = isinstance(source, str) and (
            source.startswith(PYTORCH_SOURCE_PREFIX) or source == GENERAL_SOURCE
        )
        if is_ours and name not in bound:
            del deps[key]
    for bound_name, source in bound.items():
        current = deps.get(bound_name)
        if isinstance(current, dict) and current.get("source") == source and len(current) == 1:
            continue
        entry = tomlkit.inline_table()
        entry["source"] = source
        deps[bound_name] = entry


def _update_sources(poetry: Table, spec: EnvironmentSpec) -> None:
    existing = poetry.get("source")
    if existing is None:
        if not spec.sources:
            return
        aot = tomlkit.aot()
        poetry["source"] = aot
        existing = aot
    if not isinstance(existing, AoT):
        raise InputError(
            "[[tool.poetry.source]] must be an array of tables",
            location=Location("pyproject.toml", key="tool.poetry.source"),
        )
    wanted = {s.name: s for s in spec.sources}
    for position in range(len(existing) - 1, -1, -1):
        name = str(existing[position].get("name", ""))
        if (name.startswith(PYTORCH_SOURCE_PREFIX) or name == GENERAL_SOURCE) and name not in wanted:
            del existing[position]
    present = {str(table.get("name", "")): table for table in existing}
    for source in spec.sources:
        table = present.get(source.name)
        if table is None:
            table = tomlkit.table()
            table["name"] = source.name
            table["url"] = source.url
            table["priority"] = source.priority
            existing.append(table)
            continue
        _set_if_changed(table, "url", source.url)
        _set_if_changed(table, "priority", source.priority)


def render_pyproject(existing: str | None, spec: EnvironmentSpec, origin: str = "pyproject.toml") -> str:
    """Return the new text of the environment's pyproject.toml."""
    if existing is None:
        document = tomlkit.document()
        document.add(tomlkit.comment("Generated by stack-resolver. Keys it owns are listed in its README;"))
        document.add(tomlkit.comment("everything else here is yours and is kept as written."))
    else:
        try:
            document = tomlkit.parse(existing)
        except tomlkit.exceptions.ParseError as exc:
            raise InputError(
                f"cannot parse: {exc}",
                location=Location(origin, line=getattr(exc, "line", None)),
                hint="fix the TOML by hand, or delete the file to regenerate it",
            ) from None
    project = _table(document, "project")
    if "name" not in project:
        project["name"] = spec.name
    if "version" not in project:
        project["version"] = "0.0.0"
    _set_if_changed(project, "requires-python", spec.requires_python)
    _update_dependencies(project, spec)
    tool = _table(document, "tool", super_table=True)
    poetry = _table(tool, "poetry")
    _set_if_changed(poetry, "package-mode", False)
    _update_bindings(poetry, spec)
    _update_sources(poetry, spec)
    return tomlkit.dumps(document)


def owned_names(spec: EnvironmentSpec) -> list[str]:
    return sorted({dep.name for dep in spec.dependencies})


def requires_python_for(python: str, running: tuple[int, int]) -> str:
    """The project's Python range: the target's minor version, widened to include the Python that
    runs Poetry, because Poetry 2 refuses to lock a project that excludes its own interpreter
    when it may not create a virtualenv. The lock is then valid for both."""
    major, minor = (int(part) for part in python.rstrip("t").split("."))
    low = min((major, minor), running)
    high = max((major, minor), running)
    return f">={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}"


def dependencies_for(
    pins: Iterable[tuple[str, str, str | None]], extras: Sequence[str]
) -> tuple[Dependency, ...]:
    """pins: (name, exact version, source or None); extras: the team's other requirement strings."""
    deps = [Dependency(f"{name}=={version}", source) for name, version, source in pins]
    taken = {dep.name for dep in deps}
    for text in extras:
        name = _requirement_name(text)
        if name is None:
            raise InputError(
                "not a valid requirement in `packages`", value=text, hint='e.g. "accelerate" or "datasets>=2"'
            )
        if name not in taken:
            deps.append(Dependency(text))
            taken.add(name)
    return tuple(deps)
