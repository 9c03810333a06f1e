"""Team lock: 8 targets with the default number of jobs against one target, whole runs of
`stack-resolver lock --team`, interleaved, on the loopback fixture index with 30 ms added to
every response.

    python benchmarks/team.py [--runs N]

Target (issue 21): 8 targets in at most 1.5x the time of one. Each run starts cold (its own
Poetry cache and HTTP cache). Medians; exits 1 when missed. (Grouping a large inventory is
benchmarks/inventory.py.)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _shared import (
    Samples,
    arguments,
    bench_env,
    latency,
    machine,
    resolver_argv,
    resolver_env,
    timed,
    verdict,
)

from tests.fixtures.catalog import default_catalog
from tests.fixtures.pyindex import FixtureIndex

LATENCY_MS = 30
LIMIT = 1.5


def gpu_host(cc: str, driver: str, name: str) -> dict[str, Any]:
    return {
        "os": "linux",
        "arch": "x86_64",
        "libc": "glibc",
        "libc_version": "2.35",
        "python": "3.11",
        "nvidia_driver": driver,
        "gpus": [{"index": 0, "name": name, "compute_capability": cc}],
    }


HOSTS = {
    "a100-old-driver": gpu_host("8.0", "470.82.01", "NVIDIA A100"),
    "gtx1080": gpu_host("6.1", "535.183.01", "NVIDIA GeForce GTX 1080"),
    "rtx5090": gpu_host("12.0", "570.133.07", "NVIDIA GeForce RTX 5090"),
    "cpu-laptop": {
        "os": "linux",
        "arch": "x86_64",
        "libc": "glibc",
        "libc_version": "2.39",
        "python": "3.11",
    },
    "mac-laptop": {"os": "macos", "arch": "arm64", "os_version": "14.5", "python": "3.11"},
    "h100": gpu_host("9.0", "550.54.15", "NVIDIA H100"),
    "t4": gpu_host("7.5", "535.104.05", "Tesla T4"),
    "l4": gpu_host("8.9", "550.90.07", "NVIDIA L4"),
}


def lock_time(scratch: Path, index: FixtureIndex, names: list[str], run: str) -> float:
    project = scratch / run
    (project / "envs" / "hosts").mkdir(parents=True)
    lines = [
        'packages = ["safetensors"]',
        "[indexes]",
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"',
        f'general = "{index.url()}"',
    ]
    for name in names:
        (project / "envs" / "hosts" / f"{name}.json").write_text(json.dumps(HOSTS[name]))
        lines.append(f'[targets.{name}]\nhost = "hosts/{name}.json"')
    (project / "envs" / "team.toml").write_text("\n".join(lines) + "\n")
    env = resolver_env(bench_env(project / "home"))
    env["STACK_RESOLVER_CACHE_DIR"] = str(project / "http-cache")
    return timed(resolver_argv("lock", "--team", "envs/team.toml"), project, env)


def main() -> int:
    args = arguments(__doc__ or "", runs=3)
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-bench-team-"))
    names = list(HOSTS)
    samples = Samples()
    try:
        built = default_catalog().build(scratch / "wheels")
        with FixtureIndex(built) as index, latency(index, LATENCY_MS):
            samples.interleave(
                args.runs,
                [
                    ("1 target", lambda run: lock_time(scratch, index, names[:1], f"one-{run}")),
                    ("8 targets", lambda run: lock_time(scratch, index, names, f"eight-{run}")),
                ],
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    one, eight = samples.median("1 target"), samples.median("8 targets")
    ratio = eight / one
    print(f"team lock, default jobs, {LATENCY_MS} ms added, medians of {args.runs} runs ({machine()})")
    print(f"  1 target:  {one:6.2f} s")
    print(f"  8 targets: {eight:6.2f} s   ({ratio:.2f}x one)")
    print(f"target: 8 targets <= {LIMIT}x one")
    return verdict(ratio <= LIMIT)


if __name__ == "__main__":
    raise SystemExit(main())
