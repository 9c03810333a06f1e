"""Time `stack-resolver resolve` (whole run) against plain `poetry lock` on the same generated
pyproject.toml, and the reuse path, on the loopback fixture index the tests use.

    python benchmarks/lock.py

Targets (issue "Poetry lockfiles"): our overhead over plain Poetry at most 10%; an unchanged
re-run under 1 s. Each number is the median of RUNS fresh runs (fresh Poetry cache each time).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.catalog import default_catalog  # noqa: E402
from tests.fixtures.cli import HOSTS  # noqa: E402
from tests.fixtures.isolation import poetry_argv, poetry_env  # noqa: E402
from tests.fixtures.pyindex import Fault, FixtureIndex  # noqa: E402

RUNS = 5
HOST = HOSTS["h100"]


def bench_env(home: Path) -> dict[str, str]:
    """The tests' isolated Poetry environment, but with Python caching bytecode as it does by
    default (the tests turn that off), so no run pays for compiling Poetry or the tool."""
    env = poetry_env(home)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def measure(built: object, scratch: Path, latency_ms: int) -> tuple[float, float, float]:
    """Median (our whole run, plain Poetry, reuse) with `latency_ms` added to every response."""
    ours, plain, reuse = [], [], []
    with FixtureIndex(built) as index:  # type: ignore[arg-type]
        if latency_ms:
            index.faults.add("*", Fault.stalled(latency_ms / 1000), times=1_000_000)
        for run in range(RUNS):
            tag = f"{latency_ms}-{run}"
            project = scratch / f"run{tag}"
            (project / "envs").mkdir(parents=True)
            (project / "host.json").write_text(json.dumps(HOST))
            (project / "envs" / "team.toml").write_text(
                'packages = ["torchvision"]\n[indexes]\n'
                f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\ngeneral = "{index.url()}"\n'
            )
            env = bench_env(scratch / f"home{tag}")
            env["STACK_RESOLVER_CACHE_DIR"] = str(scratch / f"http{tag}")
            resolve = [sys.executable, "-m", "resolver", "resolve", "--host", "host.json", "--target", "b"]
            ours.append(timed(resolve, project, env))
            reuse.append(timed(resolve, project, env))
            # Plain Poetry on the very pyproject.toml we generated, with a cold cache of its own.
            alone = scratch / f"plain{tag}"
            alone.mkdir()
            shutil.copy(project / "envs" / "b" / "pyproject.toml", alone / "pyproject.toml")
            plain_env = bench_env(scratch / f"plain-home{tag}")
            plain.append(timed([*poetry_argv(), "lock", "--no-interaction"], alone, plain_env))
    ours_t, plain_t, reuse_t = (statistics.median(x) for x in (ours, plain, reuse))
    return ours_t, plain_t, reuse_t


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-bench-"))
    ok = True
    try:
        built = default_catalog().build(scratch / "wheels")
        # 0 ms: loopback as it is. 30 ms: every response delayed as over a real network, where
        # Poetry's many requests dominate a lock.
        for latency in (0, 30):
            ours_t, plain_t, reuse_t = measure(built, scratch, latency)
            overhead = (ours_t - plain_t) / plain_t
            print(f"index latency {latency} ms per response")
            print(f"  stack-resolver resolve (whole run): {ours_t:6.2f} s")
            print(f"  plain poetry lock (same pyproject): {plain_t:6.2f} s")
            extra = ours_t - plain_t
            print(f"  overhead over plain Poetry:         {overhead * 100:6.1f} %  ({extra:.2f} s; <= 10 %)")
            print(f"  unchanged re-run (lock reused):     {reuse_t:6.2f} s   (target < 1 s)")
            ok &= overhead <= 0.10 and reuse_t < 1.0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
