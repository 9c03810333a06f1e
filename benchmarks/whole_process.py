"""Whole-process times of `detect`, `resolve --dry-run` and `resolve`, this tree beside another
revision (the restructure's "before"), interleaved in one run on the loopback fixture index.

    python benchmarks/whole_process.py [--base REV] [--runs N]

REV defaults to 36aca64, the last commit before the restructure. Prints each median, the ratio
of this tree to REV, and `python -c pass` for scale. A report, not a target: exits 0 unless a
command fails.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _shared import ROOT, bench_env, timed, write_project

from tests.fixtures.catalog import default_catalog
from tests.fixtures.pyindex import FixtureIndex


def checkout(rev: str, into: Path) -> Path:
    """The package and matrix of `rev`, exported (not a worktree: nothing to clean in .git)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "resolver", "matrices", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="36aca64")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-whole-"))
    try:
        trees = {"this tree": ROOT, args.base: checkout(args.base, scratch / "base")}
        built = default_catalog().build(scratch / "wheels")
        samples: dict[tuple[str, str], list[float]] = {}
        with FixtureIndex(built) as index:
            for run in range(args.runs):
                for number, (label, tree) in enumerate(trees.items()):
                    project = write_project(scratch / f"p-{run}-{number}", index)
                    env = bench_env(scratch / f"home-{run}-{number}")
                    env["PYTHONPATH"] = str(tree)
                    env["STACK_RESOLVER_CACHE_DIR"] = str(project / "http-cache")
                    tool = [sys.executable, "-m", "resolver"]
                    steps = {
                        "python -c pass": [sys.executable, "-c", "pass"],
                        "detect --host": [*tool, "detect", "--host", "host.json"],
                        "resolve --dry-run": [*tool, "resolve", "--host", "host.json", "--dry-run"],
                        "resolve (lock, cold)": [*tool, "resolve", "--host", "host.json", "--target", "b"],
                    }
                    for step, argv in steps.items():
                        samples.setdefault((label, step), []).append(timed(argv, project, env))
        names = list(trees)
        print(f"whole-process medians of {args.runs} interleaved runs (loopback index, 0 ms latency)")
        print(f"{'command':24s} {names[0]:>12s} {names[1]:>12s} {'ratio':>7s}")
        for step in ("python -c pass", "detect --host", "resolve --dry-run", "resolve (lock, cold)"):
            now, before = (statistics.median(samples[(label, step)]) for label in names)
            print(f"{step:24s} {now * 1000:10.0f} ms {before * 1000:10.0f} ms {now / before:6.2f}x")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
