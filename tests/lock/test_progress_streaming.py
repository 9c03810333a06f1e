"""Long steps say what they are doing: Poetry's own lines streamed to the step's status (a live
line on a terminal, plain lines otherwise, nothing under -q), and verify's downloads counted."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from resolver import progress
from resolver.errors import ExternalToolError
from resolver.index.client import FileDigests
from resolver.lock.poetry.tool import OperationCount, PoetryTool
from resolver.lock.runner import Completed, run_subprocess
from resolver.verify.conda import LockedPackage, download_archives

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads(
    (Path(__file__).parents[1] / "data" / "progress" / "poetry-lines.toml").read_text("utf-8")
)
POETRY_LOCK_LINES = CASES["case"][0]["lines"]


def test_run_subprocess_hands_over_each_line_while_the_child_runs(tmp_path: Path) -> None:
    """The child waits for a file the callback writes on its first line: only a streamed first
    line lets it finish (read at the end, it would time out)."""
    go = tmp_path / "go"
    child = (
        "import sys, time, pathlib\n"
        "print('Resolving dependencies...', flush=True)\n"
        "print('a warning', file=sys.stderr, flush=True)\n"
        f"go = pathlib.Path({str(go)!r})\n"
        "while not go.exists(): time.sleep(0.01)\n"
        "print('Writing lock file')\n"
    )
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        go.touch()

    done = run_subprocess([sys.executable, "-c", child], cwd=tmp_path, env={}, timeout=20, on_line=on_line)
    assert done.returncode == 0
    assert done.stdout == "Resolving dependencies...\nWriting lock file\n"  # captured all the same
    assert done.stderr == "a warning\n"
    assert seen[0] in ("Resolving dependencies...", "a warning") and "Writing lock file" in seen
    assert sorted(seen) == sorted(["Resolving dependencies...", "a warning", "Writing lock file"])


def test_a_streamed_child_still_times_out(tmp_path: Path) -> None:
    child = "import time\nprint('working', flush=True)\ntime.sleep(60)\n"
    seen: list[str] = []
    with pytest.raises(ExternalToolError, match="did not finish"):
        run_subprocess([sys.executable, "-c", child], cwd=tmp_path, env={}, timeout=1, on_line=seen.append)
    assert seen == ["working"]


class FakePoetry:
    """Prints Poetry's lines to `on_line` as the real runner would, then answers."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines
        self.env: Mapping[str, str] = {}

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_line: Callable[[str], None] | None = None,
    ) -> Completed:
        self.env = env
        for line in self.lines:
            if on_line is not None:
                on_line(line)
        return Completed(tuple(argv), 0, "\n".join(self.lines), "")


def _lock_with(reporter: progress.Reporter, runner: Any, tmp_path: Path) -> None:
    with progress.reporting(reporter):
        PoetryTool(argv=("poetry",), runner=runner, environ={}).run(["lock"], tmp_path)


def test_poetry_lines_are_plain_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    stream = io.StringIO()
    runner = FakePoetry(POETRY_LOCK_LINES)
    _lock_with(progress.Reporter(stream=stream, verbosity=progress.NORMAL), runner, tmp_path)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "poetry lock ..."
    assert lines[1:4] == [
        "poetry lock: Updating dependencies",
        "poetry lock: Resolving dependencies...",
        "poetry lock: Writing lock file",  # a blank line shows nothing
    ]
    assert lines[4].startswith("poetry lock: done in ")
    assert runner.env["PYTHONUNBUFFERED"] == "1"  # Poetry writes each line as it goes


def test_poetry_lines_update_the_live_status_line_on_a_terminal(tmp_path: Path) -> None:
    reporter = progress.Reporter(stream=io.StringIO(), verbosity=progress.NORMAL, interactive=True)
    descriptions: list[str] = []

    def runner(argv: Sequence[str], **kwargs: Any) -> Completed:
        on_line = kwargs["on_line"]
        for line in POETRY_LOCK_LINES:
            on_line(line)
            descriptions.append(reporter._progress.tasks[0].description)
        return Completed(tuple(argv), 0, "", "")

    _lock_with(reporter, runner, tmp_path)
    assert descriptions == [
        "poetry lock: Updating dependencies",
        "poetry lock: Resolving dependencies...",
        "poetry lock: Resolving dependencies...",  # the blank line changes nothing
        "poetry lock: Writing lock file",
    ]
    assert reporter._progress is None  # the live line is gone once the step ends


def test_quiet_shows_none_of_poetry_s_lines(tmp_path: Path) -> None:
    stream = io.StringIO()
    _lock_with(
        progress.Reporter(stream=stream, verbosity=progress.QUIET), FakePoetry(POETRY_LOCK_LINES), tmp_path
    )
    assert stream.getvalue() == ""


@pytest.mark.parametrize("case", CASES["case"], ids=lambda c: c["name"])
def test_an_install_s_operations_are_counted(case: dict[str, Any]) -> None:
    statuses: list[str] = []
    count = OperationCount(statuses.append)
    for line in case["lines"]:
        count(line)
    assert statuses == case["statuses"]


class FakeChannel:
    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.sizes = sizes

    def download(self, url: str, destination: Path | None = None) -> FileDigests:
        assert destination is not None
        destination.write_bytes(b"")
        return FileDigests("sha", "md5", self.sizes[url])


def test_verify_counts_its_downloads(tmp_path: Path) -> None:
    gib = 1024**3
    sizes = {"https://channel.invalid/a.conda": gib, "https://channel.invalid/b.conda": gib // 5}
    sizes["https://channel.invalid/c.conda"] = 1
    packages = [LockedPackage(url.rsplit("/", 1)[1][0], "1", "0", url, "md5", "sha") for url in sizes]
    stream, channel = io.StringIO(), FakeChannel(sizes)
    reporter = progress.Reporter(stream=stream, verbosity=progress.NORMAL)
    with progress.reporting(reporter), progress.step("verify t"):
        checks, archives = download_archives(packages, tmp_path / "archives", channel)  # type: ignore[arg-type]
    assert [c.status for c in checks] == ["pass"] and len(archives) == 3
    assert stream.getvalue().splitlines()[1:4] == [
        "verify t: downloading 1/3 files, 0 B",
        "verify t: downloading 2/3 files, 1.0 GiB",
        "verify t: downloading 3/3 files, 1.2 GiB",
    ]


def test_sizes_read_as_people_read_them() -> None:
    assert [progress.size(n) for n in (0, 512, 340 * 1024, 5 * 1024**2, int(1.25 * 1024**3))] == [
        "0 B", "512 B", "340 KiB", "5.0 MiB", "1.2 GiB",
    ]  # fmt: skip


def test_status_outside_a_step_says_nothing() -> None:
    stream = io.StringIO()
    with progress.reporting(progress.Reporter(stream=stream, verbosity=progress.NORMAL)):
        progress.status("downloading 1/2 files")
    assert stream.getvalue() == ""
