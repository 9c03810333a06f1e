"""Building a Matrix from its TOML files: parse every layer, read each row with its location,
check citations and cross-file consistency. `resolver.matrix.load` calls it when the cache
(resolver/matrix/cache.py) holds no matrix for these files."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from resolver import files
from resolver.errors import InputError, Location, MatrixProblem
from resolver.matrix.conda import TOP_KEYS as CONDA_TOP_KEYS
from resolver.matrix.conda import read_conda
from resolver.matrix.consistency import check_consistency
from resolver.matrix.load import CONDA_FILE, MATRIX_FILES, OPTIONAL_FILES
from resolver.matrix.located import (
    File,
    did_you_mean,
    short,
)
from resolver.matrix.model import Matrix
from resolver.matrix.releases import read_build, read_release, synthesize_builds
from resolver.matrix.rows import (
    State,
    check_citations,
    read_family,
    read_gpu,
    read_pair,
    read_platforms,
    read_sources,
    read_toolkit,
    read_transformers,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column \d+\)$")

_TOP_KEYS = {
    "sources.toml": ("meta", "sources"),
    "torch.toml": ("platforms", "index", "release"),
    "builds.toml": ("build",),
    "cuda.toml": ("family", "toolkit"),
    "gpus.toml": ("gpu",),
    "companions.toml": ("pair",),
    "transformers.toml": ("release",),
    CONDA_FILE: CONDA_TOP_KEYS,
}


_ROW_READERS: dict[str, tuple[tuple[str, Callable[[File, int, object, State], None]], ...]] = {
    "torch.toml": (("release", read_release),),
    "builds.toml": (("build", read_build),),
    "cuda.toml": (("family", read_family), ("toolkit", read_toolkit)),
    "gpus.toml": (("gpu", read_gpu),),
    "companions.toml": (("pair", read_pair),),
    "transformers.toml": (("release", read_transformers),),
}


def _parse_file(path: Path, layer: int, state: State) -> File | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        state.problems.append(MatrixProblem(Location(str(path)), f"cannot read matrix file: {exc.strerror}"))
        return None
    try:
        text = files.decode(raw, str(path), "matrix file")
    except InputError as exc:
        state.problems.append(MatrixProblem(exc.location or Location(str(path)), exc.message, None, exc.hint))
        return None
    file = File(path, layer, text, {}, state.problems)
    try:
        file.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _SYNTAX_AT.search(message)
        line = int(at.group(1)) if at else None
        message = _SYNTAX_AT.sub("", message)
        state.problems.append(
            MatrixProblem(
                Location(str(path), line),
                f"TOML syntax error: {message}",
                None,
                "fix the TOML syntax; every other check waits for it",
            )
        )
        return None
    for key in file.data:
        allowed = _TOP_KEYS[path.name]
        if key not in allowed:
            hint = did_you_mean(key, allowed) or "allowed: " + ", ".join(allowed)
            file.problem((key,), f"unknown top-level key in {path.name}", key, hint)
    for key, _reader in _ROW_READERS.get(path.name, ()):
        rows = file.data.get(key, [])
        if not isinstance(rows, list):
            file.problem(
                (key,), f"expected [[{key}]] rows", short(rows), f"write each row under a [[{key}]] header"
            )
            file.data[key] = []
    return file


def _layer_files(directory: Path, layer: int, state: State) -> list[File]:
    if not directory.is_dir():
        state.problems.append(
            MatrixProblem(
                Location(str(directory)),
                "matrix directory not found",
                None,
                "point --matrix (or $STACK_RESOLVER_MATRIX) at a directory of *.toml files",
            )
        )
        return []
    files = []
    for name in (*MATRIX_FILES, *OPTIONAL_FILES):
        path = directory / name
        if not path.exists():
            if layer == 0 and name not in OPTIONAL_FILES:
                state.problems.append(
                    MatrixProblem(
                        Location(str(path)),
                        "matrix file missing",
                        None,
                        f"a matrix directory holds {', '.join(MATRIX_FILES)}",
                    )
                )
            continue
        parsed = _parse_file(path, layer, state)
        if parsed is not None:
            files.append(parsed)
    for path in sorted(directory.glob("*.toml")):
        if path.name not in MATRIX_FILES and path.name not in OPTIONAL_FILES:
            state.problems.append(
                MatrixProblem(
                    Location(str(path)),
                    "unknown matrix file",
                    path.name,
                    did_you_mean(path.name, MATRIX_FILES) or f"matrix files are {', '.join(MATRIX_FILES)}",
                )
            )
    return files


def build_matrix(
    layers: Sequence[Path], consistency: bool, digest: str = ""
) -> tuple[list[MatrixProblem], Matrix | None]:
    """Every problem of the layers' files, and the Matrix when there is none."""
    state = State()
    for layer, root in enumerate(layers):
        for file in _layer_files(root, layer, state):
            state.files.append(file)
    for file in state.files:
        if file.path.name == "sources.toml":
            read_sources(file, state)
        elif file.path.name == "torch.toml":
            read_platforms(file, state)
        elif file.path.name == CONDA_FILE:
            read_conda(file, state.conda, state.citations)
        for key, reader in _ROW_READERS.get(file.path.name, ()):
            for index, data in enumerate(file.data.get(key, [])):
                reader(file, index, data, state)
    check_citations(state)
    synthesize_builds(state)
    matrix = Matrix(
        version="+".join(state.versions) or "unknown",
        digest=digest,
        directories=tuple(layers),
        sources={key: value for key, (value, _) in state.sources.rows.items()},
        torch=tuple(sorted(state.releases.values(), key=lambda r: r.version, reverse=True)),
        builds={key: value for key, (value, _) in state.builds.rows.items()},
        cuda_families={key: value for key, (value, _) in sorted(state.families.rows.items())},
        toolkits=tuple(sorted(state.toolkits.values(), key=lambda t: t.version)),
        gpus={key: value for key, (value, _) in sorted(state.gpus.rows.items())},
        companions={key: value for key, (value, _) in state.pairs.rows.items()},
        transformers=tuple(sorted(state.transformers.values(), key=lambda t: t.version, reverse=True)),
        # a missing [platforms] table is a problem of its own, so no platform list is assumed here
        rocm_platforms=frozenset(state.rocm_platforms),
        unlabelled_platforms=frozenset(state.unlabelled_platforms),
        index_bound_packages=tuple(dict.fromkeys(state.index_bound or ())),
        conda=state.conda.facts(),
    )
    if consistency and not state.problems:
        check_consistency(matrix, state)
    return state.problems, (matrix if not state.problems else None)
