"""An inventory grouped in one pass over its files gives what grouping every parsed host gives:
the same machine classes, member counts and representatives, in the same order."""

from __future__ import annotations

import glob
import json
import random
from pathlib import Path
from typing import Any

import pytest

from resolver.config import load_team
from resolver.host.hostfile import host_from_mapping
from resolver.matrix.load import load_matrix
from resolver.matrix.model import Matrix
from resolver.team.machine_classes import Bands, group_hosts, representative
from resolver.team.targets import load_targets

PATTERNS = ["hosts/*.json", "racks/*/*.json", "hosts/a*.json"]  # the last overlaps the first


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix()


def _gpu(rng: random.Random, index: int) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.8:
        gpu: dict[str, Any] = {
            "index": index,
            "name": rng.choice(["NVIDIA A100", "Tesla T4", "NVIDIA H100", ""]),
            "compute_capability": rng.choice(
                ["3.7", "6.1", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "12.0"]
            ),
        }
        if rng.random() < 0.5:
            gpu["uuid"] = f"GPU-{rng.getrandbits(64):016x}"
        if rng.random() < 0.1:
            gpu["mig"] = [{"uuid": f"MIG-{rng.getrandbits(32):08x}", "name": "1g.10gb", "memory_mib": 9856}]
        if rng.random() < 0.2:
            gpu["vendor"] = "NVIDIA"
    elif kind < 0.9:
        gpu = {
            "index": index,
            "name": "AMD Instinct MI300X",
            "vendor": "amd",
            "gfx_target": "gfx942:sramecc+",
        }
    else:
        gpu = {"index": index, "name": "Intel Arc", "vendor": "intel"}
    if rng.random() < 0.5:
        gpu["memory_mib"] = rng.choice([16384, 24576, 81920])
    return gpu


def _host(rng: random.Random) -> dict[str, Any]:
    system = rng.choice(["linux", "linux", "linux", "Linux", "darwin", "macos", "windows"])
    data: dict[str, Any] = {"os": system}
    if system in ("darwin", "macos"):
        data["arch"] = rng.choice(["arm64", "aarch64", "x86_64"])
        data["os_version"] = rng.choice(["12.7", "13.6", "14.5", "15.1"])
    else:
        data["arch"] = rng.choice(["x86_64", "amd64", "aarch64"])
    if system.lower() == "linux":
        data["libc"] = rng.choice(["glibc", "glibc", "glibc", "musl", None])
        if rng.random() < 0.9:
            data["libc_version"] = rng.choice(["2.17", "2.28", "2.31", "2.35", "2.39"])
    if rng.random() < 0.9:
        data["python"] = rng.choice(["3.9", "3.10", "3.11", "3.11.9", "3.12", "3.13t"])
    if system.lower() in ("linux", "windows") and rng.random() < 0.8:
        data["nvidia_driver"] = rng.choice(
            ["418", "450.80.02", "470.82.01", "525.60.13", "535.104.05", "550.54.15", "580.65.06"]
        )
        data["gpus"] = [_gpu(rng, i) for i in range(rng.choice([0, 1, 1, 2, 4, 8]))]
    if rng.random() < 0.5:  # fields that do not decide the class, so ties between members differ
        data["memory_mib"] = rng.choice([16384, 65536, 262144])
        data["cpu_count"] = rng.choice([8, 64])
        data["sources"] = {"gpus": "nvml"}
    return data


def _fleet(root: Path, count: int) -> Path:
    rng = random.Random(21)
    folders = [root / "hosts", root / "racks" / "a", root / "racks" / "a-b", root / "racks" / "a.b"]
    for folder in folders:
        folder.mkdir(parents=True)
    for i in range(count):
        folder = rng.choice(folders)
        name = rng.choice(["a", "b", "a-", "a.", "z"]) + f"{i:04d}.json"
        (folder / name).write_text(json.dumps(_host(rng)), encoding="utf-8")
    team = root / "team.toml"
    team.write_text("inventory = [" + ", ".join(f'"{p}"' for p in PATTERNS) + "]\n", encoding="utf-8")
    return team


def _every_host_parsed(team: Path, matrix: Matrix) -> list[tuple[str, int, Any]]:
    """The grouping as it was: every file a Host, sorted as Paths, grouped, weakest chosen."""
    files = sorted({Path(f) for p in PATTERNS for f in glob.glob(str(team.parent / p))})
    hosts = [host_from_mapping(json.loads(f.read_text(encoding="utf-8")), str(f)) for f in files]
    groups = group_hosts(hosts, Bands.from_matrix(matrix))
    return [(klass.name(), len(members), representative(members)) for klass, members in groups.items()]


def test_streamed_grouping_equals_grouping_every_host(tmp_path: Path, matrix: Matrix) -> None:
    team = _fleet(tmp_path, 1500)
    expected = _every_host_parsed(team, matrix)
    targets = load_targets(load_team(team), matrix)
    assert [(t.name, t.members, t.host) for t in targets] == expected
    assert sum(t.members for t in targets) == len(
        {Path(f) for p in PATTERNS for f in glob.glob(str(tmp_path / p))}
    )
    # a varied fleet: many classes, several with more than one member, ties among the weakest
    assert len(targets) > 40 and sum(t.members > 5 for t in targets) > 10
