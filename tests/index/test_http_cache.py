"""The tool's HTTP cache across runs: a listing or metadata file read in an earlier run is asked
for again with its validators, and a 304 from the index is answered from the cache (issue 21:
revalidate, do not fetch again)."""

from __future__ import annotations

from pathlib import Path

from resolver.index.client import HttpPolicy, IndexClient
from tests.fixtures.pyindex import FixtureIndex


def _run(cache: Path) -> IndexClient:
    """A client as one run makes it: its own memory, the shared on-disk cache."""
    return IndexClient(policy=HttpPolicy(retries=0), cache_dir=cache)


def test_a_later_run_revalidates_what_an_earlier_one_cached(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    cache = tmp_path / "http"
    first = _run(cache)
    files = first.files(fixture_index.url(), "transformers")
    metadata = first.metadata(files[0])
    fixture_index.clear_log()

    again = _run(cache)
    assert again.files(fixture_index.url(), "transformers") == files
    assert again.metadata(files[0]) == metadata
    answers = [(r.kind, r.status, "If-None-Match" in r.headers) for r in fixture_index.requests]
    assert answers == [("project", 304, True), ("metadata", 304, True)]


def test_a_changed_listing_is_fetched_again(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    cache = tmp_path / "http"
    _run(cache).files(fixture_index.url(), "torch")
    # A cached entry whose validator no longer matches (the index published since): a 200, and
    # the cache now holds what the index sent.
    for entry in cache.glob("*.json"):
        entry.write_text(entry.read_text().replace('"etag": "\\"', '"etag": "\\"0'))
    fixture_index.clear_log()
    _run(cache).files(fixture_index.url(), "torch")
    assert [(r.kind, r.status) for r in fixture_index.requests] == [("project", 200)]
