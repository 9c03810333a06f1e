"""Editing the matrix TOML files with tomlkit.

New rows go in each file's own style and order; everything else is kept byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import tomlkit
from packaging.version import Version
from tomlkit.items import AoT, Table

from resolver.matrix.load import MATRIX_FILES
from resolver.matrix.model import (
    variant_kind,
)
from resolver.matrix.refresh.reader import IndexReader
from resolver.matrix.refresh.wheels import variant_sort_key

PYTORCH_INDEX_SOURCE = "pytorch_index"
PYTORCH_INDEX_TITLE = "PyTorch download index: the torch listing of each variant (wheel file names)"
PYTORCH_INDEX_NOTE = "added by matrix refresh; the variant replaces {variant} in the URL, or is appended"

# Sources the new rows cite, added to sources.toml when the matrix lacks them. The general index
# is named by these keys (never by its host name); the PyTorch index by its configured URL.
REGISTRY_SOURCES = {
    "pypi_torch": "PyPI project 'torch': file list (wheel tags, requires-python, upload time) and METADATA",
    "pypi_torchvision": "PyPI project 'torchvision': file list and METADATA Requires-Dist",
    "pypi_torchaudio": "PyPI project 'torchaudio': file list and METADATA Requires-Dist",
    "pypi_transformers": "PyPI project 'transformers': file list and METADATA Requires-Python, Requires-Dist",
}


# --- editing the TOML files --------------------------------------------------------------------


def quote(text: str) -> str:
    return tomlkit.string(text).as_string()


def toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(quote(i) for i in items) + "]"


def inline_table(table: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {quote(v)}" for k, v in table.items()) + " }"


def release_key(row: Table) -> tuple[Any, ...]:
    return (Version(str(row["version"])),)


def pair_key(row: Table) -> tuple[Any, ...]:
    return (Version(str(row["torch"])),)


def build_sort(series: str, variant: str) -> tuple[Any, ...]:
    # builds.toml: CUDA rows newest series first, newest CUDA first within one; ROCm rows last.
    kind = variant_kind(variant)
    return (1 if kind == "cuda" else 0, Version(series), variant_sort_key(variant)[1])


def build_key(row: Table) -> tuple[Any, ...]:
    return build_sort(str(row["series"]), str(row["variant"]))


@dataclass
class MatrixFiles:
    """The matrix files as text and tomlkit documents, edited in memory."""

    directory: Path
    old: dict[str, str]
    docs: dict[str, tomlkit.TOMLDocument] = field(default_factory=dict)
    appended: dict[str, list[str]] = field(default_factory=dict)
    edited: set[str] = field(default_factory=set)
    new_builds: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def read(cls, directory: Path) -> MatrixFiles:
        old = {name: (directory / name).read_text(encoding="utf-8") for name in MATRIX_FILES}
        return cls(directory, old)

    def doc(self, name: str) -> tomlkit.TOMLDocument:
        if name not in self.docs:
            self.docs[name] = tomlkit.parse(self.old[name])
        return self.docs[name]

    def changed(self) -> bool:
        return bool(self.edited or self.appended)

    def render(self) -> dict[str, str]:
        out = {}
        for name in MATRIX_FILES:
            text = tomlkit.dumps(self.docs[name]) if name in self.edited else self.old[name]
            for snippet in self.appended.get(name, []):
                text = text.rstrip("\n") + "\n\n" + snippet.rstrip("\n") + "\n"
            out[name] = text
        return out

    def has_build(self, series: str, variant: str) -> bool:
        return (series, variant) in self.new_builds

    def note_build(self, series: str, variant: str) -> None:
        self.new_builds.add((series, variant))

    def insert(
        self,
        name: str,
        key: str,
        row_key: Callable[[Table], tuple[Any, ...]],
        snippet: str,
        new_key: tuple[Any, ...],
    ) -> None:
        """Insert a row (TOML text in the file's style) before the first older row."""
        rows = self.doc(name).get(key)
        if not isinstance(rows, AoT):  # the file has no such rows yet: the first goes at the end
            self.appended.setdefault(name, []).append(snippet)
            return
        self.edited.add(name)
        row = tomlkit.parse(snippet)[key][0]
        for position, existing in enumerate(rows):
            if row_key(existing) < new_key:
                rows.insert(position, row)
                return
        end_with_blank_line(rows[-1])
        rows.append(row)

    def set_meta_version(self, version: str) -> None:
        meta: Any = self.doc("sources.toml").get("meta")
        if meta is not None:
            meta["version"] = version
            self.edited.add("sources.toml")

    def _row(self, name: str, key: str, field_name: str, value: Version) -> Table:
        for row in self.doc(name)[key]:
            if Version(str(row[field_name])) == value:
                return row  # type: ignore[no-any-return]
        raise KeyError(value)  # pragma: no cover - rows come from the loaded matrix

    def set_value(self, name: str, key: str, field_name: str, value: Version, target: str, text: str) -> None:
        self._row(name, key, field_name, value)[target] = text
        self.edited.add(name)

    def set_flag(self, name: str, key: str, field_name: str, value: Version, flag: str, after: str) -> None:
        """Set `flag = true` right after the key `after` (else after the row's facts), as the
        file writes it by hand."""
        row = self._row(name, key, field_name, value)
        self.edited.add(name)
        keys = list(row.keys())
        anchor = (
            after if after in keys else next((k for k in ("torch", "requires_python") if k in keys), keys[0])
        )
        tail = [(k, row.item(k)) for k in keys[keys.index(anchor) + 1 :] if k != flag]
        for k, _ in tail:
            del row[k]
        row[flag] = True
        for k, item in tail:
            row[k] = item

    def ensure_sources(self, keys: Iterable[str], reader: IndexReader, today: date) -> None:
        doc = self.doc("sources.toml")
        present = set(doc.get("sources", {}))
        pending = {s for snippet in self.appended.get("sources.toml", []) for s in snippet_keys(snippet)}
        for key in keys:
            if key in present or key in pending:
                continue
            if key == PYTORCH_INDEX_SOURCE:
                lines = [
                    f"[sources.{key}]",
                    f"title = {quote(PYTORCH_INDEX_TITLE)}",
                    'kind = "registry"',
                    f"url = {quote(reader.indexes.pytorch)}",
                    f"retrieved = {quote(today.isoformat())}",
                    f"note = {quote(PYTORCH_INDEX_NOTE)}",
                ]
            else:
                what = REGISTRY_SOURCES[key]
                lines = [
                    f"[sources.{key}]",
                    f"title = {quote(what)}",
                    'kind = "registry"',
                    f"where = {quote(what)}",
                    f"retrieved = {quote(today.isoformat())}",
                    'note = "added by matrix refresh"',
                ]
            self.appended.setdefault("sources.toml", []).append("\n".join(lines) + "\n")
            pending.add(key)


def snippet_keys(snippet: str) -> set[str]:
    return set(tomlkit.parse(snippet).get("sources", {}))


def end_with_blank_line(row: Table) -> None:
    """A row appended after `row` needs the blank line the file puts between rows."""
    target = row
    while True:
        body = target.value.body
        if body and isinstance(body[-1][1], Table):
            target = body[-1][1]
            continue
        break
    target.add(tomlkit.nl())
