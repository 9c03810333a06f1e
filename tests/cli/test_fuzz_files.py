"""Byte-level fuzzing of every file the tool reads (issue 17): raw bytes written to the file,
not decoded data. Whatever the bytes (garbage, a flipped or inserted byte, a cut, another
encoding, a byte order mark), the command ends with one of its own exit codes, never a
traceback, and bad input is one `error:` line naming the file (a malformed matrix: one line per
problem, each naming its file).

The CLI runs in-process (`resolver.cli.main`), so an exception the tool does not turn into its
own error fails the test with its traceback. Deterministic: `derandomize=True`, no database.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resolver.cli import main
from resolver.errors import InputError
from resolver.lock.record import previous_record
from resolver.verify.poetry import _record as verify_record

DATA = Path(__file__).parents[1] / "data"
BYTES = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW = settings(BYTES, max_examples=40)

HOST = json.dumps(
    {
        "os": "linux",
        "arch": "x86_64",
        "libc": "glibc",
        "libc_version": "2.35",
        "python": "3.11",
        "nvidia_driver": "570.86.15",
        "gpus": [{"index": 0, "name": "NVIDIA A100", "compute_capability": "8.0", "memory_mib": 81920}],
    },
    indent=2,
).encode()
TEAM = b'packages = ["accelerate"]\nconstraints = ["torch>=2.4"]\nformats = ["poetry"]\nvariant = "cu126"\n'
TEAM_WITH_TARGET = b'[targets.cpu]\nhost = { os = "linux", arch = "x86_64", python = "3.11" }\n'
TEAM_LOCK = json.dumps(
    {"targets": {"cpu": {"torch": "2.7.1+cpu", "variant": "cpu", "python": "3.11"}}}
).encode()
RECORD = json.dumps({"resolution": {"torch": "2.7.1+cpu", "variant": "cpu", "python": "3.11"}}).encode()
PIP_CONF = b"[global]\nindex-url = http://127.0.0.1:9/simple\ncert = /nonexistent.pem\n"
ENCODINGS = ("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252")


def mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Bytes near `seed`: flipped, inserted or deleted bytes, a cut, another encoding; or garbage."""
    edits = st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "cut"]),
            st.integers(0, len(seed)),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=4,
    )

    def apply(steps: list[tuple[str, int, bytes]]) -> bytes:
        data = bytearray(seed)
        for op, at, blob in steps:
            at = min(at, len(data))
            if op == "flip" and at < len(data):
                data[at] ^= blob[0] or 0x80
            elif op == "insert":
                data[at:at] = blob
            elif op == "delete":
                del data[at : at + len(blob)]
            elif op == "cut":
                del data[at:]
        return bytes(data)

    def reencode(encoding: str) -> bytes:
        return seed.decode("utf-8").replace("3.11", "3.11 é").encode(encoding, errors="replace")

    return st.one_of(
        edits.map(apply),
        st.sampled_from(ENCODINGS).map(reencode),
        st.binary(max_size=300),
        st.sampled_from([b"", b"\x00" * 8, b"\xef\xbb\xbf", b"\xff\xfe", b"[" * 50000, b"{" * 50000]),
    )


def _run(argv: Sequence[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, err.getvalue()


def _assert_clean(code: int, stderr: str, name: str, allowed: Sequence[int] = (0, 2, 3)) -> None:
    assert "Traceback" not in stderr, stderr
    assert code in allowed, (code, stderr)
    if code == 2:
        lines = [line for line in stderr.splitlines() if not line.startswith(("warning: ", "project: "))]
        assert lines and lines[0].startswith("error: "), stderr
        if name.endswith(".toml") and len(lines) > 1:  # a matrix: one problem a line, each naming its file
            assert all(".toml" in line for line in lines), stderr
        else:
            assert len(lines) == 1, stderr
        assert name in lines[0], (name, stderr)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("STACK_RESOLVER_", "PIP_", "UV_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "no-pip.conf"))
    monkeypatch.setenv("STACK_RESOLVER_NO_GPU", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.json").write_bytes(HOST)
    (tmp_path / "envs").mkdir()
    shutil.copytree(DATA / "matrix_min", tmp_path / "matrix")
    return tmp_path


@given(data=mutations(HOST))
@BYTES
@example(data=HOST.decode().encode("utf-16"))
@example(data=b"\xef\xbb\xbf" + HOST)
def test_host_file_bytes(project: Path, data: bytes) -> None:
    (project / "host.json").write_bytes(data)
    code, stderr = _run(["detect", "--host", "host.json", "--json"])
    _assert_clean(code, stderr, "host.json", allowed=(0, 2))


@given(data=mutations(HOST))
@SLOW
def test_host_file_bytes_through_a_solve(project: Path, data: bytes) -> None:
    (project / "host.json").write_bytes(data)
    code, stderr = _run(["resolve", "--host", "host.json", "--matrix", "matrix", "--dry-run"])
    _assert_clean(code, stderr, "host.json")


@given(data=mutations(TEAM))
@BYTES
@example(data=b"# \xe9quipe\n" + TEAM)  # latin-1: was a traceback
def test_team_file_bytes(project: Path, data: bytes) -> None:
    (project / "team.toml").write_bytes(data)
    code, stderr = _run(
        ["resolve", "--team", "team.toml", "--host", "good.json", "--matrix", "matrix", "--dry-run"]
    )
    _assert_clean(code, stderr, "team.toml")


@given(data=mutations((DATA / "matrix_min" / "torch.toml").read_bytes()))
@SLOW
def test_matrix_file_bytes(project: Path, data: bytes) -> None:
    (project / "matrix" / "torch.toml").write_bytes(data)
    code, stderr = _run(["resolve", "--host", "good.json", "--matrix", "matrix", "--dry-run"])
    _assert_clean(code, stderr, "torch.toml")


@given(data=mutations(TEAM_LOCK))
@SLOW
@example(data=b'{"targets": {"cpu": ')  # a corrupt team.lock.json in audit: was a traceback
def test_team_lock_bytes(project: Path, data: bytes) -> None:
    (project / "envs" / "team.toml").write_bytes(TEAM_WITH_TARGET)
    (project / "envs" / "team.lock.json").write_bytes(data)
    code, stderr = _run(["audit", "--no-lock", "--matrix", "matrix", "torch==2.7.1"])
    _assert_clean(code, stderr, "team.lock.json", allowed=(0, 2, 3, 4))


@given(data=mutations(PIP_CONF))
@BYTES
def test_pip_config_bytes(project: Path, data: bytes) -> None:
    (project / "pip.conf").write_bytes(data)
    os.environ["PIP_CONFIG_FILE"] = str(project / "pip.conf")  # restored by the fixture's monkeypatch
    code, stderr = _run(["resolve", "--host", "good.json", "--matrix", "matrix", "--dry-run"])
    _assert_clean(code, stderr, "pip.conf")


@given(data=mutations(RECORD))
@BYTES
def test_resolution_record_bytes(tmp_path: Path, data: bytes) -> None:
    """resolution.json: a damaged one is no record when resolving (the target is locked again)
    and an error naming it when verifying."""
    (tmp_path / "resolution.json").write_bytes(data)
    assert isinstance(previous_record(tmp_path), dict)
    try:
        verify_record(tmp_path)
    except InputError as exc:
        assert "resolution.json" in exc.render() and "\n" not in exc.render()
