"""`stack-resolver matrix refresh`: propose matrix rows from what the package indexes publish.

Reads the general index (PEP 691 JSON or PEP 503 HTML listings, PEP 658 metadata) for torch,
torchvision, torchaudio and transformers, and the PyTorch index (one torch listing per variant),
derives the facts a listing can give, compares them with the matrix, and edits the TOML files
with tomlkit: new rows in each file's own style and order, changed flags in place, everything
else byte for byte. The result is a unified diff for review; `write_proposal` applies it, and only
after every file was computed and the edited copy validates.

What an index cannot tell (the GPU architectures a build carries, transformers' import-time torch
gate, a pairing that is not an exact pin) is written with `unverified = true` and a note naming
what to confirm and where.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from resolver.errors import ExternalToolError, InputError, Location, MatrixError, MatrixProblem
from resolver.fsutil import atomic_write_text
from resolver.index.client import IndexClient
from resolver.matrix.load import MATRIX_FILES, load_matrix, validate_matrix
from resolver.matrix.refresh.edit import MatrixFiles
from resolver.matrix.refresh.reader import IndexReader
from resolver.matrix.refresh.torch_releases import refresh_torch
from resolver.matrix.refresh.transformers import refresh_transformers
from resolver.sources import Indexes

KINDS = ("torch", "transformers")
_NO_GENERAL_HINT = (
    "set STACK_RESOLVER_INDEX_URL, [indexes] general in envs/team.toml, or index-url in pip.conf "
    "to the simple API of the general index (PyPI or your mirror of it)"
)


@dataclass(frozen=True)
class Proposal:
    """What a refresh would change: old and new text of each changed file, and a summary."""

    directory: Path
    old: Mapping[str, str]
    new: Mapping[str, str]
    summary: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(name for name in MATRIX_FILES if name in self.new and self.new[name] != self.old[name])

    def diff(self) -> str:
        chunks: list[str] = []
        for name in self.changed:
            label = _diff_label(self.directory / name)
            chunks.extend(
                difflib.unified_diff(
                    self.old[name].splitlines(keepends=True),
                    self.new[name].splitlines(keepends=True),
                    fromfile=f"a/{label}" if not label.startswith("/") else label,
                    tofile=f"b/{label}" if not label.startswith("/") else label,
                )
            )
        return "".join(chunks)


def _diff_label(path: Path) -> str:
    """The path relative to the working directory (git-style a/ b/ headers), else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


# --- the proposal ------------------------------------------------------------------------------


def propose(
    directory: Path,
    indexes: Indexes,
    client: IndexClient,
    *,
    today: date,
    only: Iterable[str] = KINDS,
    extra_variants: Iterable[str] = (),
) -> Proposal:
    """Compare the indexes with the matrix in `directory` and edit copies of its files.

    Raises InputError when no general index is configured or the proposal does not validate,
    ExternalToolError when an index fails or sends a listing that cannot be read. Writes nothing.
    """
    kinds = set(only)
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise InputError("unknown refresh kind", value=unknown[0], hint="use " + ", ".join(KINDS))
    if not indexes.general:
        raise InputError("matrix refresh needs a general package index to read", hint=_NO_GENERAL_HINT)
    matrix = load_matrix(directory)
    files = MatrixFiles.read(directory)
    reader = IndexReader(client, indexes, indexes.general)
    summary: list[str] = []
    if "torch" in kinds:
        summary += refresh_torch(matrix, files, reader, today, tuple(extra_variants))
    if "transformers" in kinds:
        summary += refresh_transformers(matrix, files, reader, today)
    if files.changed():  # the matrix version names the day its facts were last brought in
        files.set_meta_version(today.isoformat())
    proposal = Proposal(directory, files.old, files.render(), tuple(summary), tuple(reader.warnings))
    if proposal.changed:
        _validate(proposal)
    return proposal


def write_proposal(proposal: Proposal) -> tuple[Path, ...]:
    """Write the changed files, each atomically; refuses if a file changed since it was read."""
    for name in proposal.changed:
        path = proposal.directory / name
        if path.read_text(encoding="utf-8") != proposal.old[name]:
            raise ExternalToolError(
                f"{path} changed while the refresh ran; nothing was written",
                hint="run `stack-resolver matrix refresh` again",
            )
    written = []
    for name in proposal.changed:
        path = proposal.directory / name
        atomic_write_text(path, proposal.new[name])
        written.append(path)
    return tuple(written)


def _validate(proposal: Proposal) -> None:
    """Load the edited files from a scratch copy; report problems against the real paths."""
    with tempfile.TemporaryDirectory(prefix="stack-resolver-refresh-") as scratch:
        root = Path(scratch)
        for path in sorted(proposal.directory.glob("*.toml")):
            text = proposal.new.get(path.name, path.read_text(encoding="utf-8"))
            atomic_write_text(root / path.name, text)
        problems = validate_matrix(root)
    if problems:
        raise MatrixError(
            [
                MatrixProblem(
                    Location(
                        str(proposal.directory / Path(p.location.file).name) + " (as refreshed)",
                        p.location.line,
                        p.location.key,
                    ),
                    p.message,
                    p.value,
                    (p.hint or "") + " (the refresh would make the matrix invalid; nothing was written)",
                )
                for p in problems
            ]
        )
