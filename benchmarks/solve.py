"""Time one solve over the shipped matrix and over a synthetic matrix ten times larger.

    python benchmarks/solve.py

Targets (issue "Solve"): one solve under 20 ms in-process; ten times the matrix costs at most
three times the time. Prints both timings and the ratio; exits 1 if a target is missed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packaging.version import Version

from resolver.errors import NoCompatibleCombination
from resolver.host.model import ComputeCapability, Gpu, Host
from resolver.matrix.load import load_matrix
from resolver.matrix.model import Matrix
from resolver.solve.request import Request
from resolver.solve.search import solve

HOSTS = {
    # A host whose answer sits deep in the matrix: many candidates are examined and rejected.
    "gtx1080-driver-470": Host(
        os="linux",
        arch="x86_64",
        libc="glibc",
        libc_version="2.35",
        python="3.10",
        nvidia_driver="470.82.01",
        gpus=(Gpu(0, "NVIDIA GeForce GTX 1080", ComputeCapability(6, 1)),),
    ),
    "h100-driver-580": Host(
        os="linux",
        arch="x86_64",
        libc="glibc",
        libc_version="2.35",
        python="3.11",
        nvidia_driver="580.65.06",
        gpus=(Gpu(0, "NVIDIA H100", ComputeCapability(9, 0)),),
    ),
}


def scaled(matrix: Matrix, factor: int) -> Matrix:
    """Copies of every torch release (and its builds/companions) under new, older version numbers."""
    releases = list(matrix.torch)
    builds = dict(matrix.builds)
    companions = dict(matrix.companions)
    for copy in range(1, factor):
        for release in matrix.torch:
            version = Version(
                f"{release.version.major}.{release.version.minor}.{release.version.micro}.{copy}"
            )
            fake = dataclasses.replace(release, version=version)
            # series stays the same, so the copies reuse the real build rows
            releases.append(fake)
            if release.version in matrix.companions:
                companions[version] = dataclasses.replace(matrix.companions[release.version], torch=version)
    releases.sort(key=lambda r: r.version, reverse=True)
    return dataclasses.replace(matrix, torch=tuple(releases), builds=builds, companions=companions)


def best_of(matrix: Matrix, host: Host, runs: int = 30) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(NoCompatibleCombination):  # a failed solve is timed the same way
            solve(host, matrix, Request())
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> int:
    matrix = load_matrix()
    big = scaled(matrix, 10)
    ok = True
    for name, host in HOSTS.items():
        small_t = best_of(matrix, host)
        big_t = best_of(big, host)
        ratio = big_t / small_t
        print(
            f"{name:22s} shipped ({len(matrix.torch)} releases): {small_t * 1000:7.2f} ms   "
            f"10x ({len(big.torch)} releases): {big_t * 1000:7.2f} ms   ratio {ratio:4.2f}"
        )
        ok &= small_t < 0.020 and ratio <= 3.0
    print("targets met" if ok else "TARGET MISSED: one solve must take < 20 ms and 10x at most 3x")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
