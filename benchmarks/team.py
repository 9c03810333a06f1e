"""Team lock timings on the loopback fixture index, and grouping a large fleet into classes.

    python benchmarks/team.py

Targets (issue "Team-wide lock"): 8 targets locked in at most 2.5 times the time of one;
10,000 host files grouped into machine classes in under 2 s. Exits 1 if a target is missed.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resolver.config import load_team  # noqa: E402
from resolver.matrix.load import load_matrix  # noqa: E402
from resolver.team.solve import load_targets  # noqa: E402
from tests.fixtures.catalog import default_catalog  # noqa: E402
from tests.fixtures.cli import loopback_env  # noqa: E402
from tests.fixtures.pyindex import FixtureIndex  # noqa: E402


def gpu_host(cc: str, driver: str, name: str) -> dict[str, object]:
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


def lock_time(scratch: Path, index: FixtureIndex, names: list[str], jobs: int, run: str) -> float:
    project = scratch / run
    (project / "envs" / "hosts").mkdir(parents=True)
    lines = ['packages = ["safetensors"]']
    for name in names:
        (project / "envs" / "hosts" / f"{name}.json").write_text(json.dumps(HOSTS[name]))
        lines.append(f'[targets.{name}]\nhost = "hosts/{name}.json"')
    (project / "envs" / "team.toml").write_text("\n".join(lines) + "\n")
    env = loopback_env(project, index)  # a cold Poetry cache and HTTP cache per run
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "resolver", "lock", "--team", "envs/team.toml", "--jobs", str(jobs)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return elapsed


def grouping_time(scratch: Path, count: int) -> tuple[float, int]:
    fleet = scratch / "fleet"
    (fleet / "hosts").mkdir(parents=True)
    rng = random.Random(7)
    gpus = ["7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "12.0"]
    drivers = ["470.82.01", "535.104.05", "550.54.15", "570.86.15", "580.65.06"]
    for i in range(count):
        cc = rng.choice(gpus)
        data = gpu_host(cc, rng.choice(drivers), f"gpu-{cc}")
        data["gpus"] = data["gpus"] * rng.choice([1, 2, 4, 8])  # type: ignore[operator]
        data["gpus"] = [dict(g, index=n) for n, g in enumerate(data["gpus"])]  # type: ignore[arg-type]
        data["python"] = rng.choice(["3.10", "3.11", "3.12"])
        (fleet / "hosts" / f"h{i:05d}.json").write_text(json.dumps(data))
    (fleet / "team.toml").write_text('inventory = "hosts/*.json"\n')
    matrix = load_matrix()
    start = time.perf_counter()
    targets = load_targets(load_team(fleet / "team.toml"), matrix)
    return time.perf_counter() - start, len(targets)


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-team-bench-"))
    ok = True
    try:
        built = default_catalog().build(scratch / "wheels")
        names = list(HOSTS)
        with FixtureIndex(built) as index:
            one = lock_time(scratch, index, names[:1], jobs=1, run="one")
            print(f"1 target:                        {one:6.2f} s")
            for count in (4, 8):
                seq = lock_time(scratch, index, names[:count], jobs=1, run=f"seq{count}")
                par = lock_time(scratch, index, names[:count], jobs=8, run=f"par{count}")
                ratio = par / one
                print(
                    f"{count} targets: sequential {seq:6.2f} s   parallel {par:6.2f} s   ({ratio:4.2f}x one)"
                )
                if count == 8:
                    ok &= par <= 2.5 * one
        seconds, classes = grouping_time(scratch, 10_000)
        print(f"10,000 host files -> {classes} machine classes in {seconds:5.2f} s (target < 2 s)")
        ok &= seconds < 2.0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
