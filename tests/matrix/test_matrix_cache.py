"""The validated matrix is kept between runs (resolver/matrix/cache.py): read back while the files
are unchanged, rebuilt when any file changes or the cache is damaged, never holding a bad matrix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from resolver.errors import MatrixError
from resolver.matrix import cache
from resolver.matrix.load import default_matrix_dir, load_matrix


@pytest.fixture
def matrix_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STACK_RESOLVER_CACHE_DIR", str(tmp_path / "cache" / "http"))
    monkeypatch.delenv(cache.DISABLE_VAR, raising=False)
    return Path(shutil.copytree(default_matrix_dir(), tmp_path / "matrices"))


def _pickles(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "matrix-cache").glob("*.pickle"))


def test_an_unchanged_matrix_is_read_back_from_the_cache(matrix_dir: Path, tmp_path: Path) -> None:
    first = load_matrix(matrix_dir)
    assert len(_pickles(tmp_path)) == 1
    again = load_matrix(matrix_dir)
    assert again == first and again is not first
    assert again.digest == cache.matrix_digest([matrix_dir]) and again.digest.startswith("sha256:")


def test_an_edited_file_is_read_again(matrix_dir: Path) -> None:
    before = load_matrix(matrix_dir)
    sources = matrix_dir / "sources.toml"
    text = sources.read_text(encoding="utf-8")
    assert before.version in text
    sources.write_text(text.replace(f'"{before.version}"', '"2099.01.01"', 1), encoding="utf-8")
    after = load_matrix(matrix_dir)
    assert after.version == "2099.01.01" and after.digest != before.digest


def test_a_damaged_cache_file_is_rebuilt_not_trusted(matrix_dir: Path, tmp_path: Path) -> None:
    expected = load_matrix(matrix_dir)
    (pickled,) = _pickles(tmp_path)
    pickled.write_bytes(b"\x80\x05garbage")
    assert load_matrix(matrix_dir) == expected
    pickled.write_bytes(b"")
    assert load_matrix(matrix_dir) == expected


def test_a_bad_matrix_is_never_cached(matrix_dir: Path, tmp_path: Path) -> None:
    (matrix_dir / "gpus.toml").write_text("[[gpu]\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(MatrixError, match="TOML syntax error"):
            load_matrix(matrix_dir)
    assert _pickles(tmp_path) == []


def test_the_cache_can_be_turned_off(
    matrix_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.DISABLE_VAR, "1")
    assert load_matrix(matrix_dir).digest == cache.matrix_digest([matrix_dir])
    assert _pickles(tmp_path) == []


def test_an_unwritable_cache_costs_only_time(matrix_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "matrix-cache").write_text("a file where the folder would be")
    assert load_matrix(matrix_dir).digest == cache.matrix_digest([matrix_dir])


def test_the_digest_covers_overlays_in_order(matrix_dir: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "gpus.toml").write_text("", encoding="utf-8")
    base = cache.matrix_digest([matrix_dir])
    swapped = cache.matrix_digest([overlay, matrix_dir])
    assert cache.matrix_digest([matrix_dir, overlay]) not in (base, swapped)
