"""The team: targets, machine classes, one version set, the team lock end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from resolver.config import load_team
from resolver.errors import NoCompatibleCombination
from resolver.explain.failure import causes
from resolver.host.hostfile import host_from_mapping
from resolver.lock.guard import ENVS_LOCK
from resolver.matrix.load import load_matrix
from resolver.solve.request import Request
from resolver.sources import Indexes
from resolver.team.lock import team_json
from resolver.team.machine_classes import Bands, group_hosts, machine_class
from resolver.team.solve import solve_team
from resolver.team.targets import Target, load_targets, match_target
from tests.fixtures.cli import file_tree, loopback_env, run_cli
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import FixtureIndex

TEAM = Path(__file__).parents[1] / "data" / "team"


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load_matrix()


def host(**data: Any) -> Any:
    base = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
    return host_from_mapping({**base, **data})


def test_team_version_set_is_valid_everywhere(matrix: Any) -> None:
    team = load_team(TEAM / "team.toml")
    targets = load_targets(team, matrix)
    assert [t.name for t in targets] == ["a100-old-driver", "gtx1080", "rtx5090", "cpu-laptop", "mac-laptop"]
    result = solve_team(targets, matrix, Request())
    # cu118 (the old driver's only CUDA) ends at 2.7; sm_120 starts at 2.7 cu128.
    assert result.versions["torch"] == "2.7.1"
    assert {name: res.torch for name, res in result.targets.items()} == {
        "a100-old-driver": "2.7.1+cu118",
        "gtx1080": "2.7.1+cu126",
        "rtx5090": "2.7.1+cu128",
        "cpu-laptop": "2.7.1+cpu",
        "mac-laptop": "2.7.1",
    }
    assert len({str(res.transformers.version) for res in result.targets.values()}) == 1


def test_pull_apart_names_targets_reasons_and_split(matrix: Any) -> None:
    targets = [
        Target("gtx1080-py38", host_from_mapping(json.loads((TEAM / "hosts/gtx1080-py38.json").read_text()))),
        Target("rtx5090", host_from_mapping(json.loads((TEAM / "hosts/rtx5090.json").read_text()))),
        Target("cpu-laptop", host_from_mapping(json.loads((TEAM / "hosts/cpu-laptop.json").read_text()))),
    ]
    with pytest.raises(NoCompatibleCombination) as caught:
        solve_team(targets, matrix, Request())
    details = causes(caught.value)
    assert any(d.startswith("gtx1080-py38 needs torch <= 2.4.1 (") and "Python 3.8" in d for d in details)
    assert any(d.startswith("rtx5090 needs torch >= 2.7.0 (") and "sm_120" in d for d in details)
    split = [d for d in details if d.startswith("smallest split: 2 locks")]
    assert split and "{cpu-laptop, gtx1080-py38} at torch 2.4.1" in split[0]
    # cpu-laptop's own bounds do not bind, so they are not reported
    assert not any(d.startswith("cpu-laptop needs") for d in details)


def test_machine_classes_group_equivalent_hosts(matrix: Any) -> None:
    bands = Bands.from_matrix(matrix)
    a = host(nvidia_driver="535.104.05", gpus=[{"compute_capability": "8.0", "name": "A100"}])
    b = host(nvidia_driver="550.54.15", gpus=[{"compute_capability": "8.0", "name": "A100 80GB"}])
    c = host(nvidia_driver="580.65.06", gpus=[{"compute_capability": "8.0", "name": "A100"}])  # 13.x band
    d = host(nvidia_driver="535.104.05", gpus=[{"compute_capability": "8.6", "name": "A40"}])
    e = host(libc_version="2.17", nvidia_driver="535.104.05", gpus=[{"compute_capability": "8.0"}])
    assert machine_class(a, bands) == machine_class(b, bands)
    groups = group_hosts([a, b, c, d, e], bands)
    assert sorted(len(members) for members in groups.values()) == [1, 1, 1, 2]
    assert machine_class(a, bands).name() == "linux-x86_64-sm80-py311-drv525.60.13-glibc2.28"


def test_host_finds_its_target_or_says_what_differs(matrix: Any) -> None:
    targets = load_targets(load_team(TEAM / "team.toml"), matrix)
    same = host(libc_version="2.36", nvidia_driver="550.1.2", gpus=[{"compute_capability": "6.1"}])
    match = match_target(same, targets, matrix)
    assert match.target is not None and match.target.name == "gtx1080"
    other = host(nvidia_driver="550.1.2", gpus=[{"compute_capability": "8.9"}])
    miss = match_target(other, targets, matrix)
    assert miss.target is None and "no declared target" in miss.why
    assert any("compute_capabilities" in " ".join(diff) for _, diff in miss.nearest)


def test_inventory_becomes_targets(tmp_path: Path, matrix: Any) -> None:
    inventory = tmp_path / "hosts"
    inventory.mkdir()
    for i in range(30):
        gpu = "8.0" if i % 3 else "9.0"
        data = {
            "os": "linux",
            "arch": "x86_64",
            "libc": "glibc",
            "libc_version": "2.35",
            "python": "3.11",
            "nvidia_driver": f"550.{i}.01",
            "gpus": [{"index": 0, "name": "x", "compute_capability": gpu}],
        }
        (inventory / f"host{i}.json").write_text(json.dumps(data))
    (tmp_path / "team.toml").write_text('inventory = "hosts/*.json"\n')
    targets = load_targets(load_team(tmp_path / "team.toml"), matrix)
    assert sorted((t.name, t.members) for t in targets) == [
        ("linux-x86_64-sm80-py311-drv525.60.13-glibc2.28", 20),
        ("linux-x86_64-sm90-py311-drv525.60.13-glibc2.28", 10),
    ]
    # the weakest member stands for the class
    assert all(t.host.nvidia_driver in ("550.1.01", "550.0.01") for t in targets)


# --- end to end ------------------------------------------------------------------------------


def _copy_team(dest: Path) -> Path:
    shutil.copytree(TEAM, dest / "envs")
    return dest / "envs" / "team.toml"


@pytest.mark.e2e
@pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed in this interpreter")
def test_team_lock_end_to_end_is_deterministic(tmp_path: Path, fixture_index: FixtureIndex) -> None:
    env = loopback_env(tmp_path, fixture_index)
    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        _copy_team(root)
        proc = run_cli(root, env, "lock", "--team", "envs/team.toml", "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["versions"]["torch"] == "2.7.1"
    # the fixture index carries transformers 4.46.3, 4.57.6 and 5.0.0: the newest that fits all
    assert payload["versions"]["transformers"] == "5.0.0"
    assert {n: t["variant"] for n, t in payload["targets"].items()} == {
        "a100-old-driver": "cu118",
        "cpu-laptop": "cpu",
        "gtx1080": "cu126",
        "mac-laptop": "cpu",
        "rtx5090": "cu128",
    }
    # Two runs from scratch produce byte-identical files.
    assert file_tree(first / "envs") == file_tree(second / "envs")
    summary = json.loads((first / "envs" / "team.lock.json").read_text())
    for name, entry in summary["targets"].items():
        lock = first / "envs" / name / "poetry.lock"
        assert entry["files"] == ["poetry.lock", "pyproject.toml", "resolution.json"]
        import hashlib

        assert entry["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    # The macOS laptop takes the unlabelled build from the general index.
    mac = (first / "envs" / "mac-laptop" / "pyproject.toml").read_text()
    assert '"torch==2.7.1"' in mac and "pytorch-" not in mac

    # Re-running with nothing changed rewrites nothing.
    def stamps() -> dict[Path, int]:
        # every file but the advisory lock of envs/, which each writing run takes
        files = (first / "envs").rglob("*")
        return {p: p.stat().st_mtime_ns for p in files if p.is_file() and p.name != ENVS_LOCK}

    before = stamps()
    asked = len(fixture_index.requests)
    again = run_cli(first, env, "lock", "--team", "envs/team.toml")
    assert again.returncode == 0, again.stderr
    assert "team.lock.json: unchanged" in again.stdout
    assert stamps() == before
    assert len(fixture_index.requests) == asked  # decided from the recorded inputs digest alone
    assert json.loads((first / "envs" / "team.lock.json").read_text())["fresh"]["request_hash"]

    # A changed host file is a changed input: the index is asked again (and nothing else changes).
    host_file = first / "envs" / "hosts" / "cpu-laptop.json"
    host_file.write_text(host_file.read_text().rstrip() + "\n\n")  # the same host, other bytes
    same = run_cli(first, env, "lock", "--team", "envs/team.toml")
    assert same.returncode == 0 and len(fixture_index.requests) == asked, same.stderr
    data = json.loads(host_file.read_text())
    data["libc_version"] = "2.40"
    host_file.write_text(json.dumps(data))
    changed = run_cli(first, env, "lock", "--team", "envs/team.toml")
    assert changed.returncode == 0, changed.stderr
    assert len(fixture_index.requests) > asked
    asked = len(fixture_index.requests)
    assert run_cli(first, env, "lock", "--team", "envs/team.toml").returncode == 0
    assert len(fixture_index.requests) == asked

    # A machine of the team finds its target and uses the team's lock instead of solving afresh.
    env_machine = dict(env, STACK_RESOLVER_HOST=str(first / "envs" / "hosts" / "rtx5090.json"))
    found = run_cli(first, env_machine, "resolve", "--team", "envs/team.toml")
    assert found.returncode == 0, found.stderr
    assert "target 'rtx5090'" in found.stdout and "no fresh solve" in found.stdout


@pytest.mark.e2e
def test_team_lock_without_common_set_exits_3(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "team.toml").write_text(
        f'[targets.gtx1080-py38]\nhost = "{TEAM / "hosts/gtx1080-py38.json"}"\n'
        f'[targets.rtx5090]\nhost = "{TEAM / "hosts/rtx5090.json"}"\n'
    )
    proc = run_cli(
        tmp_path, dict(__import__("os").environ), "lock", "--team", "envs/team.toml", "--dry-run", "--json"
    )
    assert proc.returncode == 3, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload) == {"error", "causes"}
    assert any(c.startswith("gtx1080-py38 needs torch <= 2.4.1") for c in payload["causes"])
    assert any(c.startswith("rtx5090 needs torch >= 2.7.0") for c in payload["causes"])


# --- AMD and Intel machine classes ----------------------------------------------------------------

MI300X = {"index": 0, "vendor": "amd", "name": "AMD Instinct MI300X", "gfx_target": "gfx942"}
MI250 = {"index": 0, "vendor": "amd", "name": "AMD Instinct MI250X/MI250", "gfx_target": "gfx90a"}
ARC = {"index": 0, "vendor": "intel", "name": "Intel(R) Arc(TM) A770 Graphics"}


def test_amd_and_intel_gpus_make_their_own_machine_classes(tmp_path: Path, matrix: Any) -> None:
    """An MI300X class is not a CPU class: its target gets a ROCm build checked against gfx942, and
    the team lock records that build, not a CPU one."""
    inventory = tmp_path / "hosts"
    inventory.mkdir()
    base = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.12"}
    machines = {
        "mi300x-a": [MI300X, dict(MI300X, index=1)],
        "mi300x-b": [MI300X, dict(MI300X, index=1)],
        "mi250": [MI250],
        "arc": [ARC],
        "laptop": [],
    }
    for name, gpus in machines.items():
        (inventory / f"{name}.json").write_text(json.dumps({**base, "gpus": gpus}))
    (tmp_path / "team.toml").write_text('inventory = "hosts/*.json"\n')
    targets = load_targets(load_team(tmp_path / "team.toml"), matrix)
    assert sorted((t.name, t.members) for t in targets) == [
        ("linux-x86_64-gfx90a-py312-glibc2.28", 1),
        ("linux-x86_64-gfx942-py312-glibc2.28", 2),
        ("linux-x86_64-nogpu-py312-nodriver-glibc2.28", 1),
        ("linux-x86_64-xpu-py312-glibc2.28", 1),
    ]
    result = solve_team(targets, matrix, Request())
    by_class = {name.split("-")[2]: res for name, res in result.targets.items()}
    assert by_class["gfx942"].variant.startswith("rocm") and by_class["gfx90a"].variant.startswith("rocm")
    fits = {(fit.gpu.gfx_target, fit.via) for fit in by_class["gfx942"].gpu_fit}
    assert fits == {("gfx942", "gfx942")}  # checked against the build's gfx list, both GPUs
    assert by_class["xpu"].variant == "xpu" and by_class["nogpu"].variant == "cpu"
    lock = team_json(result, Indexes())
    records = {name.split("-")[2]: record for name, record in lock["targets"].items()}
    assert records["gfx942"]["variant"] == by_class["gfx942"].variant
    assert records["gfx942"]["index_url"].endswith("/" + by_class["gfx942"].variant)
    assert records["gfx942"]["torch"].endswith("+" + by_class["gfx942"].variant)


def test_an_amd_host_matches_its_gfx_class_not_the_cpu_class(matrix: Any) -> None:
    targets = [
        Target("mi300x", host(python="3.12", gpus=[MI300X])),
        Target("cpu", host(python="3.12")),
        Target("arc", host(python="3.12", gpus=[ARC])),
    ]
    match = match_target(
        host(python="3.12", gpus=[dict(MI300X, name="AMD Instinct MI300X VF")]), targets, matrix
    )
    assert match.target is not None and match.target.name == "mi300x"
    assert match_target(host(python="3.12", gpus=[ARC]), targets, matrix).target.name == "arc"  # type: ignore[union-attr]
    miss = match_target(host(python="3.12", gpus=[MI250]), targets, matrix)
    assert miss.target is None
    assert any(
        "gfx_targets: ('gfx90a',) vs ('gfx942',)" in diff for _, diffs in miss.nearest for diff in diffs
    )


def test_a_declared_target_with_an_inline_amd_host(tmp_path: Path, matrix: Any) -> None:
    (tmp_path / "team.toml").write_text(
        '[targets.mi300x]\nhost = { os = "linux", arch = "x86_64", libc = "glibc", libc_version = "2.35", '
        'python = "3.12", gpus = [{ vendor = "amd", name = "AMD Instinct MI300X", gfx_target = "gfx942" }] '
        "}\n"
    )
    (target,) = load_targets(load_team(tmp_path / "team.toml"), matrix)
    result = solve_team([target], matrix, Request())
    chosen = result.targets["mi300x"]
    assert chosen.variant.startswith("rocm") and [f.gpu.gfx_target for f in chosen.gpu_fit] == ["gfx942"]


@pytest.mark.parametrize(("cpus", "jobs"), [(None, 8), (1, 8), (2, 8), (8, 8), (12, 12), (64, 64)])
def test_the_team_lock_runs_eight_targets_at_once_or_one_per_cpu(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, jobs: int
) -> None:
    """The default of `lock --jobs` (docs/commands.md): 8, or the CPU count where it is higher
    (an unknown count counts as 1)."""
    from resolver.team import lock as team_lock

    monkeypatch.setattr(team_lock.os, "cpu_count", lambda: cpus)
    assert team_lock.default_jobs() == jobs
