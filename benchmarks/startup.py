"""`resolve --dry-run --json --host F` against `python -c pass`, whole processes, interleaved.

    python benchmarks/startup.py [--runs N]

Target (issue 21): under 5x `python -c pass`. A dry run asks no index; the loopback index still
counts what it receives (it must be nothing). One warm-up run of each is not counted: the figures
are those of a user's second and later runs (bytecode written, any user cache filled). Medians;
exits 1 when missed.
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
    machine,
    resolver_argv,
    resolver_env,
    timed,
    verdict,
    write_project,
)

from tests.fixtures.catalog import default_catalog
from tests.fixtures.pyindex import FixtureIndex

LIMIT = 5.0


def main() -> int:
    args = arguments(__doc__ or "", runs=15)
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-bench-startup-"))
    samples = Samples()
    try:
        built = default_catalog().build(scratch / "wheels")
        with FixtureIndex(built) as index:
            project = write_project(scratch / "project", index)
            env = resolver_env(bench_env(scratch / "home"))
            env["STACK_RESOLVER_CACHE_DIR"] = str(scratch / "user-cache")
            steps = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "resolve --dry-run --json": resolver_argv(
                    "resolve", "--dry-run", "--json", "--host", "host.json"
                ),
            }
            for argv in steps.values():  # the warm-up
                timed(argv, project, env)
            index.clear_log()
            samples.interleave(
                args.runs,
                [(label, lambda run, argv=argv: timed(argv, project, env)) for label, argv in steps.items()],
            )
            sent = len(index.requests)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    bare, ours = (samples.median(k) for k in steps)
    ratio = ours / bare
    print(f"start-up, medians of {args.runs} interleaved runs ({machine()})")
    print(f"  python -c pass:           {bare * 1000:6.0f} ms")
    print(f"  resolve --dry-run --json: {ours * 1000:6.0f} ms   ({ratio:.1f}x; requests sent: {sent})")
    print(f"target: < {LIMIT:.0f}x python -c pass")
    return verdict(ratio < LIMIT and sent == 0)


if __name__ == "__main__":
    raise SystemExit(main())
