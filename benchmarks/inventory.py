"""Grouping an inventory of 50,000 host files into machine classes: `load_targets` on a team file
with `inventory = "hosts/*.json"`, timed in a child process that also reports its peak memory.

    python benchmarks/inventory.py [--runs N] [--hosts COUNT] [--reference N]

Target (issue 21): under 2 s and under 100 MiB. The memory figure is the child's peak resident
set (the interpreter, the imports and the matrix included: the whole cost of the command's
grouping step); the Python allocation peak of the grouping alone (tracemalloc, in a run of its
own) is printed beside it. For scale, `--reference N` runs (default 1) of the plain way, interleaved
with the others: every file made a Host and held, then `group_hosts` and `representative` (what
`load_targets` did before it streamed). Medians; exits 1 when a target is missed.
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import ROOT, arguments, machine, median, verdict

LIMIT_S = 2.0
LIMIT_MIB = 100.0


def write_fleet(root: Path, count: int) -> Path:
    """`count` GPU hosts (1-8 GPUs of 7 capabilities, 5 drivers, 3 Pythons) and a team file."""
    (root / "hosts").mkdir(parents=True)
    rng = random.Random(7)
    ccs = ["7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "12.0"]
    drivers = ["470.82.01", "535.104.05", "550.54.15", "570.86.15", "580.65.06"]
    for i in range(count):
        cc = rng.choice(ccs)
        gpus = [
            {"index": n, "name": f"gpu-{cc}", "compute_capability": cc}
            for n in range(rng.choice([1, 2, 4, 8]))
        ]
        data = {
            "os": "linux",
            "arch": "x86_64",
            "libc": "glibc",
            "libc_version": "2.35",
            "python": rng.choice(["3.10", "3.11", "3.12"]),
            "nvidia_driver": rng.choice(drivers),
            "gpus": gpus,
        }
        (root / "hosts" / f"h{i:05d}.json").write_text(json.dumps(data))
    (root / "team.toml").write_text('inventory = "hosts/*.json"\n')
    return root / "team.toml"


def child(mode: str, team_file: str) -> None:
    """In the child: load the matrix, then time the grouping alone; print the figures as JSON."""
    from resolver.config import load_team
    from resolver.matrix.load import load_matrix
    from resolver.team.machine_classes import Bands, group_hosts, representative
    from resolver.team.targets import load_targets

    matrix = load_matrix()
    team = load_team(Path(team_file))
    if mode == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    if mode == "reference":
        from resolver.host.hostfile import read_host_file
        from resolver.team.inventory import inventory_paths

        hosts = [
            read_host_file(p, missing_hint="")
            for p in inventory_paths(Path(team_file).parent, ["hosts/*.json"])
        ]
        groups = group_hosts(hosts, Bands.from_matrix(matrix))
        found = [(k.name(), len(m), representative(m)) for k, m in groups.items()]
    else:
        found = [(t.name, t.members, t.host) for t in load_targets(team, matrix)]
    figures: dict[str, Any] = {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "classes": len(found),
        "members": sum(members for _, members, _ in found),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if mode == "tracemalloc":
        figures["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps(figures))


def run_child(mode: str, team_file: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(team_file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"inventory child ({mode}) failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
        return 0
    args = arguments(__doc__ or "", runs=3, hosts=50_000, reference=1)
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-bench-inventory-"))
    results: dict[str, list[dict[str, Any]]] = {"streamed": [], "reference": []}
    try:
        team_file = write_fleet(scratch / "fleet", args.hosts)

        for run in range(args.runs):  # interleaved
            results["streamed"].append(run_child("streamed", team_file))
            if run < args.reference:
                results["reference"].append(run_child("reference", team_file))
        traced = run_child("tracemalloc", team_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"inventory of {args.hosts:,} host files, medians of interleaved runs ({machine()})")
    ok = True
    for mode, rows in results.items():
        if not rows:
            continue
        seconds = median([r["seconds"] for r in rows])
        cpu = median([r["cpu"] for r in rows])
        peak = max(r["peak_rss_mib"] for r in rows)
        line = (
            f"  {mode:9s} ({len(rows)} runs): {seconds:6.2f} s (CPU {cpu:5.2f} s), peak RSS {peak:5.1f} MiB, "
            f"{rows[0]['classes']} classes of {rows[0]['members']:,} hosts"
        )
        print(line)
        if mode == "streamed":
            ok = seconds < LIMIT_S and peak < LIMIT_MIB
    print(f"  grouping's own Python allocations (tracemalloc): peak {traced['traced_peak_mib']:.1f} MiB")
    if results["reference"]:
        ratio = median([r["seconds"] for r in results["streamed"]]) / median(
            [r["seconds"] for r in results["reference"]]
        )
        print(f"  streamed / reference: {ratio:.2f}x")
    print(f"target: < {LIMIT_S:.0f} s and < {LIMIT_MIB:.0f} MiB peak")
    return verdict(ok)


if __name__ == "__main__":
    raise SystemExit(main())
