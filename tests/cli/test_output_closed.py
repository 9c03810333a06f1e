"""A reader that goes away (`stack-resolver ... | head`) ends the run quietly: nothing on stderr,
no traceback at the interpreter's last flush, exit status 141 (`ExitCode.OUTPUT_CLOSED`, what a
shell shows for a tool that SIGPIPE ended). Both ways out are covered: the command line, and an
unchanged `resolve` replayed before it loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]

# The replay's way out, reached for real: `lookup` answers a stored run of 200 KiB (more than a
# pipe holds), and __main__.main plays it into the closed pipe.
REPLAYED = """
import sys
from resolver import replay, __main__
replay.lookup = lambda argv: replay.Hit([("out", "x" * 200_000 + "\\n")], 0)
sys.argv = ["stack-resolver", "resolve"]
__main__.main()
"""


def _closed_reader(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` with its stdout a pipe whose reading end is closed before it writes a byte."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STACK_RESOLVER_NO_REPLAY": "1"}
    try:
        return subprocess.run(
            argv, stdout=write_end, stderr=subprocess.PIPE, cwd=tmp_path, env=env, timeout=120, check=False
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "argv",
    [["matrix", "show", "torch", "2.5.1"], ["detect", "--json"]],
    ids=["matrix-show", "detect"],
)
def test_a_closed_stdout_ends_the_command_quietly(argv: list[str], tmp_path: Path) -> None:
    proc = _closed_reader([sys.executable, "-m", "resolver", "-q", *argv], tmp_path)
    assert proc.stderr.decode() == ""
    assert proc.returncode == ExitCode.OUTPUT_CLOSED == 141


def test_a_replayed_run_into_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    proc = _closed_reader([sys.executable, "-c", REPLAYED], tmp_path)
    assert proc.stderr.decode() == ""
    assert proc.returncode == ExitCode.OUTPUT_CLOSED


def test_an_open_stdout_still_gets_everything(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", REPLAYED],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout == b"x" * 200_000 + b"\n"
