"""resolver/lock/commit.py on its own: a commit replaces a set of files together; what a killed
commit leaves is completed (journal written) or thrown away (no journal); a journal never writes
outside envs/. The kill-at-every-step proof through the CLI is tests/cli/test_crash_safety.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resolver.lock.commit import JOURNAL, TXN_DIR, commit, recover
from resolver.lock.guard import settle


def _files(envs: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(envs)): p.read_bytes()
        for p in sorted(envs.rglob("*"))
        if p.is_file() and TXN_DIR not in p.parts
    }


def test_a_commit_replaces_files_together_and_skips_unchanged_ones(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    (envs / "a").mkdir(parents=True)
    (envs / "a" / "same").write_bytes(b"same")
    (envs / "a" / "old").write_bytes(b"old")
    changed = commit(
        envs, {envs / "a" / "same": b"same", envs / "a" / "old": b"new", envs / "b" / "fresh": b"fresh"}
    )
    assert sorted(changed) == [envs / "a" / "old", envs / "b" / "fresh"]
    assert _files(envs) == {"a/old": b"new", "a/same": b"same", "b/fresh": b"fresh"}
    assert not (envs / TXN_DIR).exists()
    assert commit(envs, {envs / "a" / "old": b"new"}) == ()


def test_a_commit_refuses_a_path_outside_envs(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    with pytest.raises(ValueError):
        commit(envs, {envs / ".." / "pyproject.toml": b"x"})
    assert not (tmp_path / "pyproject.toml").exists()


def _interrupted(envs: Path, journal: dict[str, object] | None) -> Path:
    """What a run killed inside a commit leaves: staged files, and the journal when it got that far."""
    txn = envs / TXN_DIR
    txn.mkdir(parents=True)
    (txn / "staged-1").write_bytes(b"new lock")
    (txn / "staged-2").write_bytes(b"new record")
    if journal is not None:
        (txn / JOURNAL).write_text(json.dumps(journal))
    return txn


JOURNAL_OF_TWO = {
    "files": [
        {"path": "cpu/poetry.lock", "staged": "staged-1", "sha256": ""},
        {"path": "cpu/resolution.json", "staged": "staged-2", "sha256": ""},
    ]
}


def test_recover_completes_a_journalled_commit(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    (envs / "cpu").mkdir(parents=True)
    (envs / "cpu" / "poetry.lock").write_bytes(b"new lock")  # renamed before the kill
    (envs / "cpu" / "resolution.json").write_bytes(b"old record")
    txn = _interrupted(envs, JOURNAL_OF_TWO)
    (txn / "staged-1").unlink()
    found = recover(envs)
    assert found.rolled_forward == ("cpu/resolution.json",)
    assert _files(envs) == {"cpu/poetry.lock": b"new lock", "cpu/resolution.json": b"new record"}
    assert not txn.exists()


def test_recover_throws_away_a_commit_without_journal(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    (envs / "cpu").mkdir(parents=True)
    (envs / "cpu" / "poetry.lock").write_bytes(b"old lock")
    _interrupted(envs, None)
    assert recover(envs).rolled_back
    assert _files(envs) == {"cpu/poetry.lock": b"old lock"}
    assert not (envs / TXN_DIR).exists()


@pytest.mark.parametrize("path", ["../pyproject.toml", "/etc/passwd", "cpu/../../x", ""])
def test_a_journal_never_writes_outside_envs(tmp_path: Path, path: str) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    _interrupted(envs, {"files": [{"path": path, "staged": "staged-1"}]})
    assert recover(envs).rolled_forward == ()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envs"]
    assert _files(envs) == {}


def test_a_reader_settles_an_interrupted_commit_first(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    (envs / "cpu").mkdir(parents=True)
    _interrupted(envs, JOURNAL_OF_TWO)
    said: list[str] = []
    settle(envs, said.append)
    assert _files(envs)["cpu/resolution.json"] == b"new record"
    assert said and "completed an interrupted commit" in said[0]
