"""The limits that apply to this process: cgroup v1/v2 files captured as file trees
(`tests/data/cgroup/<case>/`), the pure parsers, detection, and `doctor` measuring against them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from resolver.cli import main
from resolver.host import doctor as d
from resolver.host import limits
from resolver.host.hostfile import parse_host_json
from resolver.host.model import Limits
from resolver.host.parse import ProbeParseError
from tests.host.test_probes import Machine, detect

CGROUP = Path(__file__).parents[1] / "data" / "cgroup"


def reader(case: str) -> tuple[dict[str, str], object]:
    root = CGROUP / case
    files = {
        "/" + str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in root.rglob("*") if p.is_file()
    }
    return files, files.get


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("v1-hybrid-sandbox", Limits(cgroup="v1", affinity_cpus=2, machine_cpus=2)),
        (
            "v1-docker-8g",
            Limits(cgroup="v1", memory_max_mib=8192, cpu_quota=1.5, affinity_cpus=2, machine_cpus=2),
        ),
        (
            "v2-container-16g",
            Limits(cgroup="v2", memory_max_mib=16384, cpu_quota=2.0, affinity_cpus=2, machine_cpus=2),
        ),
        ("v2-slurm-job", Limits(cgroup="v2", memory_max_mib=32768, affinity_cpus=2, machine_cpus=2)),
    ],
)
def test_read_limits(case: str, expected: Limits) -> None:
    _, read = reader(case)
    assert limits.read_limits(read, 2, 2) == expected  # type: ignore[arg-type]


def test_no_cgroup_files_is_no_limit() -> None:
    assert limits.read_limits(lambda path: None, 8, 64) == Limits(affinity_cpus=8, machine_cpus=64)


@pytest.mark.parametrize(
    ("text", "cpus"), [("200000 100000", 2.0), ("max 100000", None), ("50000 100000\n", 0.5), ("max", None)]
)
def test_parse_cpu_max(text: str, cpus: float | None) -> None:
    assert limits.parse_cpu_max(text) == cpus


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (limits.parse_cpu_max, "two cpus"),
        (limits.parse_memory_max, "16G"),
        (limits.parse_v1_memory_limit, "unlimited"),
        (limits.parse_proc_cgroup, "garbage"),
    ],
)
def test_malformed_files_raise_a_parse_error(parse: object, text: str) -> None:
    with pytest.raises(ProbeParseError):
        parse(text)  # type: ignore[operator]


def test_cfs_and_v1_limits() -> None:
    assert limits.parse_cfs_quota("-1", "100000") is None
    assert limits.parse_cfs_quota("250000", "100000") == 2.5
    assert limits.parse_v1_memory_limit("9223372036854771712") is None
    assert limits.parse_v1_memory_limit("17179869184\n") == 17179869184


def test_mountinfo_keeps_cgroup_mounts_and_their_roots() -> None:
    files, _ = reader("v1-docker-8g")
    mounts = limits.parse_mountinfo(files["/proc/self/mountinfo"])
    assert [(m.root, m.point, sorted(m.controllers)) for m in mounts] == [
        ("/docker/3f1a9c", "/sys/fs/cgroup/memory", ["memory", "rw"]),
        ("/docker/3f1a9c", "/sys/fs/cgroup/cpu,cpuacct", ["cpu", "cpuacct", "rw"]),
    ]


def test_detection_records_limits_beside_the_totals() -> None:
    files, _ = reader("v2-container-16g")
    files["/proc/meminfo"] = "MemTotal:       528280020 kB\n"
    machine = Machine(files=files)
    host = detect(machine, cpu_count=lambda: 4, machine_cpu_count=lambda: 64).host
    assert host.memory_mib == 515898 and host.cpu_count == 4
    assert host.limits == Limits(
        cgroup="v2", memory_max_mib=16384, cpu_quota=2.0, affinity_cpus=4, machine_cpus=64
    )
    assert host.effective_memory_mib == 16384 and host.effective_cpus == 2.0
    assert parse_host_json(host.dumps()) == host
    # a malformed limit is a warning, not a crash
    files["/sys/fs/cgroup/cpu.max"] = "lots\n"
    detection = detect(Machine(files=files), cpu_count=lambda: 4, machine_cpu_count=lambda: 64)
    assert detection.host.limits == Limits(affinity_cpus=4, machine_cpus=64)
    assert any(w.startswith("cgroup: cpu.max") for w in detection.warnings)


HOST_16G = {
    "os": "linux",
    "arch": "x86_64",
    "memory_mib": 524288,
    "cpu_count": 64,
    "limits": {
        "cgroup": "v2",
        "memory_max_mib": 16384,
        "cpu_quota": 2.5,
        "affinity_cpus": 64,
        "machine_cpus": 64,
    },
}


def test_doctor_checks_the_limits_not_the_machine(tmp_path: Path) -> None:
    host = parse_host_json(json.dumps(HOST_16G))
    checks = {c.name: c for c in d.check(host, d.Requirements(min_memory_mib=32 * 1024, min_cpu_count=4))}
    assert checks["RAM"].status == "fail"
    assert checks["RAM"].measured == "16 GiB (16384 MiB) cgroup limit; machine 512 GiB"
    assert (
        checks["CPU cores"].status == "fail"
        and checks["CPU cores"].measured == "2.5 (cgroup CPU quota; affinity 64)"
    )
    ok = {c.name: c.status for c in d.check(host, d.Requirements(min_memory_mib=8 * 1024, min_cpu_count=2))}
    assert ok == {"RAM": "pass", "CPU cores": "pass"}

    (tmp_path / "host.json").write_text(json.dumps(HOST_16G), encoding="utf-8")
    (tmp_path / "req.toml").write_text(
        "[requirements]\nmin_ram_gib = 32\nmin_cpu_cores = 2\n", encoding="utf-8"
    )
    out = io.StringIO()
    code = main(
        [
            "doctor",
            "--host",
            str(tmp_path / "host.json"),
            "--requirements",
            str(tmp_path / "req.toml"),
            "--json",
        ],
        out,
        io.StringIO(),
    )
    payload = json.loads(out.getvalue())
    assert code == 5 and payload["ok"] is False
    assert payload["effective_memory_mib"] == 16384 and payload["memory_mib"] == 524288
    assert [(c["name"], c["status"]) for c in payload["checks"]] == [("RAM", "fail"), ("CPU cores", "pass")]
    text = io.StringIO()
    main(
        ["doctor", "--host", str(tmp_path / "host.json"), "--requirements", str(tmp_path / "req.toml")],
        text,
        io.StringIO(),
    )
    assert text.getvalue().startswith(
        "limits: memory 16 GiB of 512 GiB (cgroup v2), CPU quota 2.5 (cgroup v2), CPUs 64 of 64 (affinity)\n"
    )
    shown = io.StringIO()
    main(["detect", "--host", str(tmp_path / "host.json")], shown, io.StringIO())
    assert "Limits     memory 16 GiB of 512 GiB (cgroup v2), CPU quota 2.5 (cgroup v2)" in shown.getvalue()
