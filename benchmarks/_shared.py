"""What the benchmarks share: whole processes timed against the loopback fixture index the tests
use, interleaved runs, medians, and the verdict line. Not a benchmark itself (`nox -s
benchmarks` runs the files whose names do not start with "_")."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.cli import HOSTS  # noqa: E402
from tests.fixtures.isolation import poetry_argv, poetry_env  # noqa: E402
from tests.fixtures.pyindex import Fault, FixtureIndex  # noqa: E402

__all__ = [
    "HOSTS",
    "ROOT",
    "Samples",
    "arguments",
    "bench_env",
    "latency",
    "machine",
    "median",
    "poetry_argv",
    "read_toml",
    "resolver_argv",
    "resolver_env",
    "timed",
    "uv_bin",
    "verdict",
    "write_project",
]

HOST = HOSTS["h100"]


def arguments(doc: str, runs: int, **extra: Any) -> argparse.Namespace:
    """`--runs N` (and any `extra` flags, name=default) for a benchmark whose docstring is `doc`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=runs, help=f"interleaved runs (default {runs})")
    for name, default in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()


def bench_env(home: Path) -> dict[str, str]:
    """The tests' isolated environment (loopback only; Poetry's cache, config and data and uv's
    cache under `home`, all cold; XDG_CONFIG_HOME there too, so no user uv.toml), but with Python
    caching bytecode as it does by default (the tests turn that off), so no run pays for
    compiling Poetry or the tool."""
    env = poetry_env(home)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["UV_CACHE_DIR"] = str(home / "uv-cache")
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def resolver_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "resolver", *args]


def resolver_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for running this tree's `resolver`, whatever is installed (the others run without)."""
    return {**env, "PYTHONPATH": str(ROOT)}


def timed(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds one whole process takes; a failed one ends the benchmark with its output."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def write_project(project: Path, index: FixtureIndex, host: dict[str, Any] = HOST) -> Path:
    """`project/envs/team.toml` (torchvision from both loopback indexes) and `project/host.json`."""
    (project / "envs").mkdir(parents=True)
    (project / "host.json").write_text(json.dumps(host))
    (project / "envs" / "team.toml").write_text(
        'packages = ["torchvision"]\n[indexes]\n'
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\ngeneral = "{index.url()}"\n'
    )
    return project


@contextmanager
def latency(index: FixtureIndex, milliseconds: int) -> Iterator[None]:
    """Every response of `index` delayed by `milliseconds`, as over a real network."""
    if milliseconds:
        index.faults.add("*", Fault.stalled(milliseconds / 1000), times=10_000_000)
    try:
        yield
    finally:
        index.faults.clear()


def uv_bin() -> str:
    """The uv of this interpreter's `uv` package (what `nox -s benchmarks` installs, pinned), else
    the one on PATH."""
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise SystemExit("uv is not installed: pip install uv (nox -s benchmarks installs it)") from None
        return found


class Samples:
    """Timings by label, gathered run by run (interleaved), reported as medians."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, label: str, value: float) -> float:
        self.values.setdefault(label, []).append(value)
        return value

    def median(self, label: str) -> float:
        return statistics.median(self.values[label])

    def interleave(self, runs: int, steps: Sequence[tuple[str, Callable[[int], float]]]) -> None:
        """Run every step once per run, in turn, so load on the machine falls on all alike."""
        for run in range(runs):
            for label, step in steps:
                self.add(label, step(run))


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """`nproc` and the CPU model, for the record of where a figure was taken."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPUs, {model}{load}"


def verdict(ok: bool) -> int:
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1
