"""Every file is read through one path and written through one path (issue 17): an OS or decode
error on read is the tool's own error naming the file (exit 2); a write the machine refuses
(a full disk, a file-size limit, no permission) is one line naming the file (exit 1) and leaves
the old content whole. The file-size limit (RLIMIT_FSIZE) is a real kernel refusal, the same
short write a full disk gives, and needs no privileges."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resolver import files
from resolver.config import TeamConfig
from resolver.errors import InputError
from resolver.sources import effective_indexes

ROOT = Path(__file__).resolve().parents[2]


def _no_bigger_than(size: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_refused_write_is_clean_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old content\n")
    script = (
        "import sys; from pathlib import Path; from resolver.fsutil import atomic_write_bytes;"
        "from resolver.errors import WriteError\n"
        "try:\n atomic_write_bytes(Path(sys.argv[1]), b'x' * 100000)\n"
        "except WriteError as exc:\n print(exc.render()); sys.exit(exc.exit_code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        cwd=ROOT,
        preexec_fn=lambda: _no_bigger_than(1000),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"{target}: cannot write: "), result.stdout
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary file left


def test_cli_write_refused_is_one_line(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "team.toml").write_text(
        '[targets.cpu]\nhost = { os = "linux", arch = "x86_64", python = "3.11" }\n'
    )
    (tmp_path / "report.md").write_text("old\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACK_RESOLVER_", "PIP_"))}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-m", "resolver", "audit", "--no-lock", "--report", "report.md", "torch==2.8.0"],
        cwd=tmp_path,
        env=env,
        preexec_fn=lambda: _no_bigger_than(3),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "report.md: cannot write" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "report.md").read_text() == "old\n"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[global]\nindex-url = http://127.0.0.1:1/simple\n\xff\n", "not UTF-8"),
        (b"index-url = http://127.0.0.1:1/simple\n", "not a valid pip configuration file"),
        (b"[global]\nindex-url = a\n[global]\n", "not a valid pip configuration file"),
    ],
)
def test_bad_pip_config_names_the_file(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "pip.conf"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        effective_indexes(TeamConfig(), {}, [path])
    assert str(path) in caught.value.render() and needle in caught.value.render()


def test_pip_config_in_utf16_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pip.conf"
    path.write_bytes("[global]\nindex-url = http://127.0.0.1:1/simple\n".encode("utf-16"))
    assert effective_indexes(TeamConfig(), {}, [path]).general == "http://127.0.0.1:1/simple"


@pytest.mark.parametrize("mode", ["missing", "directory", "unreadable-name"])
def test_read_errors_name_the_file(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "thing.json"
    if mode == "directory":
        path.mkdir()
    elif mode == "unreadable-name":
        path = tmp_path / ("x" * 300)  # ENAMETOOLONG
    with pytest.raises(InputError) as caught:
        files.load_json(path, "host file")
    assert str(path) in caught.value.render()


def test_tool_timeout_is_read(tmp_path: Path) -> None:
    """The hint on a tool that runs too long names STACK_RESOLVER_TOOL_TIMEOUT: it is read."""
    from resolver.errors import ExternalToolError
    from resolver.lock.runner import run_subprocess

    env = {"PATH": os.environ["PATH"], "STACK_RESOLVER_TOOL_TIMEOUT": "0.5"}
    with pytest.raises(ExternalToolError) as caught:
        run_subprocess(["sleep", "30"], cwd=tmp_path, env=env, timeout=900)
    assert "within 0 s" in caught.value.render() or "within 1 s" in caught.value.render()
    assert "STACK_RESOLVER_TOOL_TIMEOUT" in caught.value.render()
    for bad in ("0", "-3", "soon", "nan"):
        with pytest.raises(InputError, match="STACK_RESOLVER_TOOL_TIMEOUT"):
            run_subprocess(["true"], cwd=tmp_path, env={**env, "STACK_RESOLVER_TOOL_TIMEOUT": bad}, timeout=9)
