"""Loading a matrix directory and its overlays: where the files are, and the checked Matrix
they make (built by resolver/matrix/build.py, kept between runs by resolver/matrix/cache.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from resolver.errors import Location, MatrixError, MatrixProblem
from resolver.matrix.cache import cached_matrix, matrix_digest
from resolver.matrix.model import CondaFacts, Matrix

ENV_VAR = "STACK_RESOLVER_MATRIX"
MATRIX_FILES = (
    "sources.toml",
    "torch.toml",
    "builds.toml",
    "cuda.toml",
    "gpus.toml",
    "companions.toml",
    "transformers.toml",
)
CONDA_FILE = "conda.toml"
# Optional matrix files: read and validated when present (conda.toml: only conda locks need it).
OPTIONAL_FILES = (CONDA_FILE,)


def default_matrix_dir() -> Path:
    """`$STACK_RESOLVER_MATRIX` if set; else the matrix shipped inside the installed package
    (`resolver/matrices/`, placed there by the build); else, in a source checkout, the top-level
    `matrices/` where the data is edited."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    # The package's own folder, as importlib.resources would give it for a wheel installed as
    # plain files (a zipped install is not supported), without importing that machinery.
    package = Path(__file__).resolve().parents[1]
    shipped = package / "matrices"
    if shipped.is_dir():
        return shipped
    return package.parent / "matrices"


def _layers(directory: Path | None, overlays: Sequence[Path]) -> list[Path]:
    base = Path(directory) if directory is not None else default_matrix_dir()
    return [base, *(Path(o) for o in overlays)]


def load_matrix(
    directory: Path | None = None, overlays: Sequence[Path] = (), *, consistency: bool = True
) -> Matrix:
    """Load and check a matrix directory (default: `default_matrix_dir()`) plus overlay directories.

    Raises `MatrixError` carrying every problem found. `consistency=False` skips the cross-file
    checks (companions for every release, arch lists within what CUDA can target, ...).
    """
    layers = _layers(directory, overlays)

    def build(digest: str) -> Matrix:
        from resolver.matrix.build import build_matrix  # parsing and checking: on a cache miss only

        problems, matrix = build_matrix(layers, consistency, digest)
        if problems or matrix is None:
            raise MatrixError(
                problems or [MatrixProblem(Location(str(directory)), "matrix could not be loaded")]
            )
        return matrix

    if not consistency:  # a partial check is never cached: the cache holds checked matrices only
        return build(matrix_digest(layers))
    return cached_matrix(layers, build)


def validate_matrix(directory: Path | None = None, overlays: Sequence[Path] = ()) -> list[MatrixProblem]:
    """Every problem in a matrix directory (and overlays): syntax, rows, and cross-file consistency."""
    from resolver.matrix.build import build_matrix

    problems, _ = build_matrix(_layers(directory, overlays), True)
    return problems


def load_conda_facts(directory: Path | None = None, overlays: Sequence[Path] = ()) -> CondaFacts:
    """The conda facts of a matrix directory and its overlays (the matrix is loaded and checked)."""
    from resolver.matrix.conda import conda_facts

    return conda_facts(load_matrix(directory, overlays))
