"""Time loading the shipped matrix (parse + row checks + consistency checks).

Usage: python benchmarks/matrix_load.py [MATRIX_DIR] [RUNS]

Target: the best of RUNS loads under 100 ms (it was a timed test; timings belong here). Exits 1
when missed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.matrix.load import default_matrix_dir, load_matrix


def main() -> int:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else default_matrix_dir()
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        matrix = load_matrix(directory)
        times.append(time.perf_counter() - start)
    print(
        f"{directory}: {len(matrix.torch)} torch releases, {len(matrix.builds)} builds, "
        f"{len(matrix.transformers)} transformers releases"
    )
    best, median = min(times) * 1000, statistics.median(times) * 1000
    print(f"load_matrix: best {best:.1f} ms, median {median:.1f} ms ({runs} runs); target < 100 ms")
    return 0 if best < 100 else 1


if __name__ == "__main__":
    raise SystemExit(main())
