"""Lock time side by side: `stack-resolver resolve` (whole run), plain `poetry lock` and `uv lock`
on the very pyproject.toml the run generated (it carries [tool.uv] index bindings), on one
loopback fixture index, cold caches, with 0, 30 and 80 ms added to every response.

    python benchmarks/lock.py [--runs N]

Target (issue 21): at 30 and 80 ms, `resolve` takes at most 1.2x `uv lock` (0 ms is reported
only: Poetry's own start-up dominates there). Also printed, as a report: an unchanged re-run right
after each cold run (its target, no request and < 60 ms, is benchmarks/noop.py's). Medians of
interleaved runs; exits 1 when a target is missed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _shared import (
    Samples,
    arguments,
    bench_env,
    latency,
    machine,
    poetry_argv,
    read_toml,
    resolver_argv,
    resolver_env,
    timed,
    uv_bin,
    verdict,
    write_project,
)

from tests.fixtures.catalog import default_catalog
from tests.fixtures.pyindex import FixtureIndex

LATENCIES = (0, 30, 80)
TARGETED = (30, 80)
LIMIT = 1.2


def locked_packages(lock: Path) -> int:
    return len(read_toml(lock).get("package", []))


def measure(index: FixtureIndex, scratch: Path, delay: int, runs: int) -> Samples:
    samples = Samples()
    uv = uv_bin()
    for run in range(runs):
        tag = f"{delay}ms-{run}"
        project = write_project(scratch / f"ours-{tag}", index)
        env = resolver_env(bench_env(scratch / f"home-{tag}"))
        env["STACK_RESOLVER_CACHE_DIR"] = str(scratch / f"http-{tag}")
        resolve = resolver_argv("resolve", "--host", "host.json", "--target", "b")
        samples.add("ours", timed(resolve, project, env))
        samples.add("re-run", timed(resolve, project, env))
        generated = project / "envs" / "b" / "pyproject.toml"
        for tool, argv in (
            ("poetry", [*poetry_argv(), "lock", "--no-interaction"]),
            ("uv", [uv, "lock", "--python", sys.executable]),
        ):
            alone = scratch / f"{tool}-{tag}"
            alone.mkdir()
            shutil.copy(generated, alone / "pyproject.toml")
            samples.add(tool, timed(argv, alone, bench_env(scratch / f"{tool}-home-{tag}")))
            if run == 0:
                lock = alone / ("uv.lock" if tool == "uv" else "poetry.lock")
                samples.add(f"{tool} packages", locked_packages(lock))
        if run == 0:
            samples.add("ours packages", locked_packages(project / "envs" / "b" / "poetry.lock"))
    return samples


def main() -> int:
    args = arguments(__doc__ or "", runs=5)
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-bench-lock-"))
    ok = True
    try:
        built = default_catalog().build(scratch / "wheels")
        print(f"lock, medians of {args.runs} interleaved runs, cold caches ({machine()})")
        heads = ("latency", "resolve", "poetry lock", "uv lock", "ours/uv", "re-run")
        print(" ".join(f"{h:>{w}s}" for h, w in zip(heads, (8, 9, 12, 9, 8, 8), strict=True)))
        with FixtureIndex(built) as index:
            for delay in LATENCIES:
                with latency(index, delay):
                    samples = measure(index, scratch / f"{delay}ms", delay, args.runs)
                ours, poetry, uv = (samples.median(k) for k in ("ours", "poetry", "uv"))
                ratio = ours / uv
                met = ratio <= LIMIT
                mark = "" if delay not in TARGETED else ("  ok" if met else f"  MISSED (<= {LIMIT}x)")
                print(
                    f"{delay:>6d}ms {ours:8.2f}s {poetry:11.2f}s {uv:8.2f}s {ratio:7.2f}x "
                    f"{samples.median('re-run'):7.2f}s{mark}"
                )
                if delay == LATENCIES[0]:
                    counts = {k: int(samples.median(f"{k} packages")) for k in ("ours", "poetry", "uv")}
                    print(
                        f"{'':>9s}packages locked: resolve {counts['ours']}, poetry {counts['poetry']}, "
                        f"uv {counts['uv']} (uv.lock lists the project itself too)"
                    )
                if delay in TARGETED:
                    ok &= met
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"target: resolve <= {LIMIT}x uv lock at {' and '.join(f'{d} ms' for d in TARGETED)}")
    return verdict(ok)


if __name__ == "__main__":
    raise SystemExit(main())
