"""Progress on stderr: what long step runs, and for how long.

On a terminal each step is a live status line with its elapsed time (rich; several at once when
targets lock in parallel; colour unless `NO_COLOR`); otherwise one plain line when a step starts
and one when it ends. `-q` says nothing; `-v` adds the effective configuration, `-vv` each external
command. The CLI installs a reporter for the duration of a command; library callers get a silent
one, so plain functions never print.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2


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
    def step(self, label: str) -> Iterator[None]:
        """A long step: shown while it runs, then its duration."""
        if self.stream is None or self.verbosity < NORMAL:
            yield
            return
        start = time.monotonic()
        task = self._start(label)
        try:
            yield
        except BaseException:
            self._stop(task)
            self.say(f"{label}: failed after {time.monotonic() - start:.1f} s")
            raise
        self._stop(task)
        self.say(f"{label}: done in {time.monotonic() - start:.1f} s")

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


def step(label: str) -> contextlib.AbstractContextManager[None]:
    return _current.step(label)


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
