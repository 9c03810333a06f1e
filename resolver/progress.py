"""Progress on stderr: what long step runs, and for how long.

On a terminal each step is a live status line with its elapsed time (rich; several at once when
targets lock in parallel; colour unless `NO_COLOR`), which `status` updates with what the step is
doing now (a line of Poetry's output, "downloading 3/17 files, 1.2 GiB"); otherwise one plain
line when a step starts, one per status, and one when it ends. `-q` says nothing; `-v` adds the
effective configuration, `-vv` each external command. The CLI installs a reporter for the
duration of a command; library callers get a silent one, so plain functions never print.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2
_STATUS_WIDTH = 100  # a status longer than this is cut (a terminal line, not a log)
_running = threading.local()  # this thread's running steps, innermost last


@dataclass
class Step:
    """A running step. `status(text)` says what it is doing now."""

    label: str
    reporter: Reporter
    task: Any = None  # its live line, on a terminal

    def status(self, text: str) -> None:
        self.reporter.status(self, text)


@dataclass
class Reporter:
    stream: TextIO | None = None
    verbosity: int = QUIET
    interactive: bool = False
    _progress: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active: int = 0

    def say(self, message: str, level: int = NORMAL) -> None:
        if self.stream is None or self.verbosity < level:
            return
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            self.stream.write(message + "\n")
            self.stream.flush()

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[Step]:
        """A long step: shown while it runs (with its latest status), then its duration."""
        step = Step(label, self)
        steps = _running.__dict__.setdefault("steps", [])
        steps.append(step)
        try:
            if self.stream is None or self.verbosity < NORMAL:
                yield step
                return
            start = time.monotonic()
            step.task = self._start(label)
            try:
                yield step
            except BaseException:
                self._stop(step.task)
                self.say(f"{label}: failed after {time.monotonic() - start:.1f} s")
                raise
            self._stop(step.task)
            self.say(f"{label}: done in {time.monotonic() - start:.1f} s")
        finally:
            steps.remove(step)

    def status(self, step: Step, text: str) -> None:
        """What `step` is doing now: its live line on a terminal, else a plain line; nothing
        under -q. Blank text changes nothing."""
        text = " ".join(text.split())
        if not text or self.stream is None or self.verbosity < NORMAL:
            return
        with self._lock:
            if step.task is not None and self._progress is not None:
                if len(text) > _STATUS_WIDTH:
                    text = text[: _STATUS_WIDTH - 1] + "…"
                self._progress.update(step.task, description=f"{step.label}: {text}")
                return
        self.say(f"{step.label}: {text}")

    def _start(self, label: str) -> Any:
        if not self.interactive:
            self.say(f"{label} ...")
            return None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with self._lock:
            if self._progress is None:
                console = Console(file=self.stream, stderr=True)
                self._progress = Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=console, transient=True,
                )  # fmt: skip
                self._progress.start()
            self._active += 1
            return self._progress.add_task(label, total=None)

    def _stop(self, task: Any) -> None:
        if task is None or self._progress is None:
            return
        with self._lock:
            self._progress.remove_task(task)
            self._active -= 1
            if self._active == 0:
                self._progress.stop()
                self._progress = None


_current = Reporter()


def current() -> Reporter:
    return _current


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous


def say(message: str, level: int = NORMAL) -> None:
    _current.say(message, level)


def step(label: str) -> contextlib.AbstractContextManager[Step]:
    return _current.step(label)


def status(text: str) -> None:
    """What the innermost step this thread runs is doing now (nothing outside a step)."""
    steps = getattr(_running, "steps", None)
    if steps:
        steps[-1].status(text)


def size(count: int) -> str:
    """Bytes as people read them: "512 B", "340 KiB", "1.2 GiB"."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def redact(url: str) -> str:
    """A URL without its credentials (user:password@), for output."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if sep and "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{path}" if sep else url


def traced_session() -> Any:
    """A requests session that names each request and its answer under -vv."""
    import requests

    session = requests.Session()

    def trace(response: Any, *args: Any, **kwargs: Any) -> None:
        seconds = response.elapsed.total_seconds()
        say(
            f"{response.request.method} {redact(response.url)} -> {response.status_code} ({seconds:.2f} s)",
            DEBUG,
        )

    session.hooks["response"].append(trace)
    return session
