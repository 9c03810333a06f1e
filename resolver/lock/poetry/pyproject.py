"""Generate or update an environment's `pyproject.toml`, keeping every byte the user owns.

The tool owns only these keys; everything else (comments, other tables, extra dependencies,
formatting) is left exactly as it was:
- `[project]` `requires-python`, and `name`/`version` when absent;
- `[project] dependencies` entries naming a managed package (the torch family, transformers,
  the team's packages, and anything the tool wrote last time);
- `[tool.poetry] package-mode`;
- `[tool.poetry.dependencies]` entries of packages bound to the PyTorch index;
- `[[tool.poetry.source]]` entries named `pytorch-*`, `general` and `extra-*`, and the same
  bindings for uv: `[[tool.uv.index]]` entries of those names and `[tool.uv.sources]` entries
  naming one of them.
A value is only assigned when it differs, so an unchanged re-run rewrites nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tomlkit.container import OutOfOrderTableProxy
from tomlkit.items import AoT, Array, String, StringType, Table

from resolver.errors import InputError, Location

GENERAL_SOURCE = "general"
PYTORCH_SOURCE_PREFIX = "pytorch-"
EXTRA_SOURCE_PREFIX = "extra-"


def _owned_source(name: str) -> bool:
    return name.startswith((PYTORCH_SOURCE_PREFIX, EXTRA_SOURCE_PREFIX)) or name == GENERAL_SOURCE


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


# A table written in pieces (`[tool.poetry.source]` before `[tool.poetry]`) is valid TOML; tomlkit
# hands it out as a proxy over the pieces, which reads and writes like a table.
_Table = Table | OutOfOrderTableProxy


def _set_if_changed(table: _Table | tomlkit.TOMLDocument, key: str, value: object) -> None:
    current: Any = table.get(key)
    plain = current.unwrap() if hasattr(current, "unwrap") else current
    if plain != value:
        table[key] = value


def _table(parent: _Table | tomlkit.TOMLDocument, key: str, *, super_table: bool = False) -> _Table:
    if key not in parent:
        parent[key] = tomlkit.table(is_super_table=super_table)
    item = parent[key]
    if not isinstance(item, (Table, OutOfOrderTableProxy)):
        raise InputError(f"'{key}' must be a table", location=Location("pyproject.toml", key=key))
    return item


def _update_dependencies(project: _Table, spec: EnvironmentSpec) -> None:
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
                existing[position] = _string_like(existing[position], wanted[name])
        else:
            del existing[position]
    for dep in spec.dependencies:
        if dep.name not in seen:
            existing.append(dep.requirement)


def _string_like(old: object, text: str) -> String:
    """`text` as a TOML string quoted the way the user quoted the value it replaces."""
    kind = old.type if isinstance(old, String) else StringType.SLB
    if kind is StringType.SLL and "'" in text:
        kind = StringType.SLB  # a literal string cannot hold a single quote
    elif kind not in (StringType.SLB, StringType.SLL):
        kind = StringType.SLB
    return String.from_raw(text, kind)


def _update_bindings(poetry: _Table, spec: EnvironmentSpec) -> None:
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


def _update_sources(poetry: _Table, spec: EnvironmentSpec) -> None:
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
    present = _prune_owned(existing, {source.name for source in spec.sources})
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


def _prune_owned(existing: AoT, wanted: set[str]) -> dict[str, Any]:
    """Drop the tool-owned entries of an array of tables that `wanted` no longer names; the
    remaining entries by name (the user's own are never touched)."""
    for position in range(len(existing) - 1, -1, -1):
        name = str(existing[position].get("name", ""))
        if _owned_source(name) and name not in wanted:
            del existing[position]
    return {str(table.get("name", "")): table for table in existing}


def _update_uv(tool: _Table, spec: EnvironmentSpec) -> None:
    """The same index bindings for uv (`uv lock`, `uv sync`): `[[tool.uv.index]]` entries named as
    the Poetry sources (explicit stays explicit, primary is uv's default) and `[tool.uv.sources]`
    binding each package to its index."""
    uv = tool.get("uv")
    if uv is None and not spec.sources:
        return
    uv = _table(tool, "uv", super_table=True)
    existing = uv.get("index")
    if existing is None:
        existing = tomlkit.aot()
        uv["index"] = existing
    if not isinstance(existing, AoT):
        raise InputError(
            "[[tool.uv.index]] must be an array of tables",
            location=Location("pyproject.toml", key="tool.uv.index"),
        )
    present = _prune_owned(existing, {source.name for source in spec.sources})
    for source in spec.sources:
        table = present.get(source.name)
        if table is None:
            table = tomlkit.table()
            table["name"] = source.name
            existing.append(table)
        _set_if_changed(table, "url", source.url)
        for flag, on in (
            ("explicit", source.priority == "explicit"),
            ("default", source.priority == "primary"),
        ):
            if on:
                _set_if_changed(table, flag, True)
            elif flag in table:
                del table[flag]
    if not existing:
        del uv["index"]
    bound = {dep.name: dep.source for dep in spec.dependencies if dep.source}
    sources = uv.get("sources")
    if sources is None and not bound:
        return
    sources = _table(uv, "sources")
    for key in list(sources.keys()):
        value = sources[key]
        index = value.get("index") if isinstance(value, dict) else None
        if isinstance(index, str) and _owned_source(index) and canonicalize_name(key) not in bound:
            del sources[key]
    for name, index_name in bound.items():
        current = sources.get(name)
        if isinstance(current, dict) and current.get("index") == index_name and len(current) == 1:
            continue
        entry = tomlkit.inline_table()
        entry["index"] = index_name
        sources[name] = entry


def render_pyproject(existing: str | None, spec: EnvironmentSpec, origin: str = "pyproject.toml") -> str:
    """Return the new text of the environment's pyproject.toml."""
    baseline = None
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
        # tomlkit's own re-rendering of the untouched file: not always the file itself (it
        # respaces some headers, e.g. `[[ tool.poetry.source ]]` under `[ tool . poetry ]`).
        baseline = tomlkit.dumps(document)
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
    _update_uv(tool, spec)
    rendered = tomlkit.dumps(document)
    if existing is None or baseline is None:
        return rendered
    return _apply_changes(existing, baseline, rendered)


def _apply_changes(existing: str, baseline: str, rendered: str) -> str:
    """Carry the lines our edits changed (baseline -> rendered) over to the user's text, so that
    a line we did not change keeps its bytes even where tomlkit would re-render it differently.
    Falls back to `rendered` when a change touches such a line."""
    if rendered == baseline:
        return existing
    if baseline == existing:
        return rendered
    old, base, new = (text.splitlines(True) for text in (existing, baseline, rendered))
    to_old: dict[int, int] = {}
    for tag, i1, i2, j1, _ in difflib.SequenceMatcher(None, base, old, autojunk=False).get_opcodes():
        if tag == "equal":
            to_old.update({i1 + k: j1 + k for k in range(i2 - i1)})
    to_old[len(base)] = len(old)
    out: list[str] = []
    cursor = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, base, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        # the user's lines standing for baseline lines i1..i2 (for an insertion: the line it precedes)
        rows = range(i1, i2) if i2 > i1 else range(i1, i1 + 1)
        if any(i not in to_old for i in rows):
            return rendered
        start = to_old[rows[0]]
        if [to_old[i] for i in rows] != list(range(start, start + len(rows))) or start < cursor:
            return rendered
        stop = start + (i2 - i1)
        out.extend(old[cursor:start])
        out.extend(new[j1:j2])
        cursor = stop
    out.extend(old[cursor:])
    return "".join(out)


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
