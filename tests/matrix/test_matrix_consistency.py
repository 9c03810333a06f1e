"""Consistency checks over the shipped matrix: every row cites a source, every reference resolves."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from resolver.matrix.load import MATRIX_FILES, default_matrix_dir, load_matrix, validate_matrix
from resolver.matrix.model import PLATFORMS, Matrix

SHIPPED = Path(__file__).resolve().parents[2] / "matrices"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(SHIPPED)


def test_shipped_matrix_validates() -> None:
    assert [p.render() for p in validate_matrix(SHIPPED)] == []


def test_default_dir_holds_every_file() -> None:
    for name in MATRIX_FILES:
        assert (default_matrix_dir() / name).is_file()


def test_every_release_has_a_companion_row(matrix: Matrix) -> None:
    for release in matrix.torch:
        assert release.version in matrix.companions, release.version


def test_every_cuda_variant_has_toolkit_and_family(matrix: Matrix) -> None:
    for build in matrix.builds.values():
        if build.kind != "cuda":
            continue
        assert build.cuda is not None
        assert matrix.toolkit(build.cuda) is not None, build.variant
        assert build.cuda.major in matrix.cuda_families, build.variant


def test_every_arch_is_targetable_by_its_cuda(matrix: Matrix) -> None:
    for build in matrix.builds.values():
        if build.cuda is None:
            continue
        family = matrix.cuda_families[build.cuda.major]
        for targets in build.arch.values():
            for target in targets:
                assert family.can_target(target.cc), (build.series, build.variant, str(target))
                gpu = matrix.gpu(target.cc)
                assert gpu is not None, str(target)
                assert gpu.targetable_by(build.cuda) or target.cc in gpu.aliases


def test_every_release_variant_has_a_build(matrix: Matrix) -> None:
    for release in matrix.torch:
        for variant in release.variants:
            assert matrix.build(release, variant) is not None, (release.version, variant)


def test_default_variant_is_listed_and_built(matrix: Matrix) -> None:
    for release in matrix.torch:
        assert set(release.default_variant) == set(release.python)
        for platform, variant in release.default_variant.items():
            assert variant in release.variants
            build = matrix.build(release, variant)
            assert build is not None and platform in build.platforms


def test_platforms_are_known(matrix: Matrix) -> None:
    for release in matrix.torch:
        assert set(release.python) <= set(PLATFORMS)
    for build in matrix.builds.values():
        assert build.platforms <= set(PLATFORMS)


def test_every_row_cites_a_known_source(matrix: Matrix) -> None:
    rows: list[tuple[str, ...]] = [r.sources for r in matrix.torch]
    rows += [b.sources for b in matrix.builds.values()]
    rows += [f.sources for f in matrix.cuda_families.values()]
    rows += [t.sources for t in matrix.toolkits]
    rows += [g.sources for g in matrix.gpus.values()]
    rows += [p.sources for p in matrix.companions.values()]
    rows += [t.sources for t in matrix.transformers]
    for sources in rows:
        assert sources
        for key in sources:
            assert key in matrix.sources


def test_every_source_is_cited(matrix: Matrix) -> None:
    cited: set[str] = set()
    for rows in (
        matrix.torch,
        matrix.builds.values(),
        matrix.cuda_families.values(),
        matrix.toolkits,
        matrix.gpus.values(),
        matrix.companions.values(),
        matrix.transformers,
    ):
        for row in rows:
            cited.update(row.sources)
    assert matrix.conda is not None
    cited.update(matrix.conda.sources)
    for conda_row in (*matrix.conda.platforms.values(), *matrix.conda.packages.values()):
        cited.update(conda_row.sources)
    assert sorted(set(matrix.sources) - cited) == []


def test_unverified_rows_say_why(matrix: Matrix) -> None:
    for build in matrix.builds.values():
        if build.unverified or build.unverified_platforms:
            assert build.note, (build.series, build.variant)


# sha256 of the public package registries' domains (the Python package index and its file host,
# the conda channel host and its vendor's): the names themselves stay out of the repository.
_REGISTRY_DOMAIN_DIGESTS = {
    "a4aa2ac280bb8d1a0ce7a1be5a7bfb10292b49fe9435ad5cff19f421f3c70e41",
    "8b5bb5eb9d758455b8635855cf8aaf05b68775e3f83f0291e800ef338fb9783c",
    "51c6b9f69c48a75b146d2785c3d70d336d5fdce24868f2e22db377d736f2ef24",
    "03eabd6c5c4ff24dcf640c4a5ab812c13b01334ff66f5ff111f66b1ee90c266e",
}
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")


def _registry_domains(text: str, digests: set[str] = _REGISTRY_DOMAIN_DIGESTS) -> set[str]:
    """Every domain-like word of `text` whose domain (or a parent domain) has one of `digests`."""
    found = set()
    for word in _DOMAIN.findall(text.lower()):
        labels = word.split(".")
        for start in range(len(labels) - 1):
            domain = ".".join(labels[start:])
            if hashlib.sha256(domain.encode()).hexdigest() in digests:
                found.add(word)
    return found


def test_no_registry_host_names_in_data() -> None:
    canary = {hashlib.sha256(b"example.net").hexdigest()}
    assert _registry_domains("see https://files.example.net/x", canary) == {"files.example.net"}
    for name in MATRIX_FILES:
        assert _registry_domains((SHIPPED / name).read_text()) == set(), name


def test_every_file_documents_its_schema() -> None:
    for name in MATRIX_FILES:
        assert (SHIPPED / name).read_text().startswith("#"), name
