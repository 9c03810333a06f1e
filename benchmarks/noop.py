"""An unchanged re-run: after one real `resolve`, the same command again, as a whole process,
with the requests the loopback index receives during it counted; beside it `uv lock` re-run on
its own unchanged project, and `python -c pass`, interleaved.

    python benchmarks/noop.py [--runs N]

Target (issue 21): the re-run sends no request and takes under 60 ms (decided from the recorded
input hash, the lock's own hash and the matrix hash alone, like `uv lock --check`). The index
answers at once (0 ms added): any request at all misses the target. Medians; exits 1 when missed.
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
    uv_bin,
    verdict,
    write_project,
)

from tests.fixtures.catalog import default_catalog
from tests.fixtures.pyindex import FixtureIndex

LIMIT_S = 0.060


def main() -> int:
    args = arguments(__doc__ or "", runs=15)
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-bench-noop-"))
    samples = Samples()
    requests: dict[str, list[int]] = {"resolve": [], "uv lock": []}
    try:
        built = default_catalog().build(scratch / "wheels")
        with FixtureIndex(built) as index:
            project = write_project(scratch / "project", index)
            env = resolver_env(bench_env(scratch / "home"))
            env["STACK_RESOLVER_CACHE_DIR"] = str(scratch / "http-cache")
            resolve = resolver_argv("resolve", "--host", "host.json", "--target", "b")
            first = timed(resolve, project, env)
            uv_project = scratch / "uv-project"
            uv_project.mkdir()
            shutil.copy(project / "envs" / "b" / "pyproject.toml", uv_project / "pyproject.toml")
            uv_env = bench_env(scratch / "uv-home")
            uv_lock = [uv_bin(), "lock", "--python", sys.executable]
            timed(uv_lock, uv_project, uv_env)

            def counted(label: str, argv: list[str], cwd: Path, run_env: dict[str, str]) -> float:
                index.clear_log()
                elapsed = timed(argv, cwd, run_env)
                requests[label].append(len(index.requests))
                return elapsed

            samples.interleave(
                args.runs,
                [
                    ("resolve", lambda run: counted("resolve", resolve, project, env)),
                    ("uv lock", lambda run: counted("uv lock", uv_lock, uv_project, uv_env)),
                    ("python -c pass", lambda run: timed([sys.executable, "-c", "pass"], project, env)),
                ],
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ours, uv, bare = (samples.median(k) for k in ("resolve", "uv lock", "python -c pass"))
    print(f"unchanged re-run, medians of {args.runs} interleaved runs, 0 ms added ({machine()})")
    print(f"  first resolve (cold, not counted): {first * 1000:7.0f} ms")
    for label, value in (("resolve re-run", ours), ("uv lock re-run", uv), ("python -c pass", bare)):
        key = label.split(" re-run")[0] if "re-run" in label else None
        sent = f"   requests: {max(requests[key])} (max of the runs)" if key else ""
        print(f"  {label:33s} {value * 1000:7.0f} ms{sent}")
    print(f"  ours / uv lock: {ours / uv:.1f}x")
    ok = ours < LIMIT_S and max(requests["resolve"]) == 0
    print(f"target: the re-run sends 0 requests and takes < {LIMIT_S * 1000:.0f} ms")
    return verdict(ok)


if __name__ == "__main__":
    raise SystemExit(main())
