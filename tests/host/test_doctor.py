"""Requirements: reading `[requirements]`, checking a host, rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from resolver.errors import ConfigError
from resolver.host import doctor as d
from resolver.host.model import ComputeCapability, DriverVersion, Gpu, Host


def gpu(index: int, name: str, cc: str, memory: int | None) -> Gpu:
    return Gpu(index, name, ComputeCapability.parse(cc), memory)


CPU_LAPTOP = Host(os="linux", arch="x86_64", cpu_count=8, memory_mib=15731, disk_free_mib=40960)
MIXED_BOX = Host(
    os="linux",
    arch="x86_64",
    nvidia_driver="535.129.03",
    gpus=(
        gpu(0, "NVIDIA GeForce RTX 3090", "8.6", 24576),
        gpu(1, "NVIDIA GeForce GTX 1080 Ti", "6.1", 11264),
    ),
    cpu_count=24,
    memory_mib=128000,
    disk_free_mib=512000,
)
H100_BOX = Host(
    os="linux",
    arch="x86_64",
    nvidia_driver="550.54.15",
    gpus=tuple(gpu(i, "NVIDIA H100 80GB HBM3", "9.0", 81559) for i in range(8)),
    cpu_count=224,
    memory_mib=2063660,
    disk_free_mib=20000000,
)
BARE_HOST_FILE = Host(os="linux", arch="x86_64")


# --- reading ------------------------------------------------------------------------------


def test_all_keys() -> None:
    req = d.requirements_from_mapping(
        {
            "min_ram_gib": 32,
            "min_gpu_memory_gib": 23.5,
            "min_disk_free_gib": 100,
            "min_cpu_cores": 8,
            "min_compute_capability": "8.0",
            "min_driver": "535",
        },
        "team.toml",
    )
    assert req == d.Requirements(
        min_memory_mib=32768,
        min_gpu_memory_mib=24064,
        min_disk_free_mib=102400,
        min_cpu_count=8,
        min_compute_capability=ComputeCapability(8, 0),
        min_driver=DriverVersion((535,)),
    )


def test_integer_driver_is_accepted() -> None:
    assert d.requirements_from_mapping({"min_driver": 550}, "t").min_driver == DriverVersion((550,))


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        ({"min_ram": 16}, "min_ram", "did you mean 'min_ram_gib'?"),
        ({"gpu_memory": 16}, "gpu_memory", "known: min_ram_gib"),
        ({"min_ram_gib": "16"}, "min_ram_gib", "non-negative number of GiB"),
        ({"min_ram_gib": -1}, "min_ram_gib", "non-negative number of GiB"),
        ({"min_ram_gib": True}, "min_ram_gib", "non-negative number of GiB"),
        ({"min_cpu_cores": 4.5}, "min_cpu_cores", "whole number"),
        ({"min_compute_capability": 8.0}, "min_compute_capability", "quoted MAJOR.MINOR"),
        ({"min_compute_capability": "sm_80"}, "min_compute_capability", "quoted MAJOR.MINOR"),
        ({"min_driver": 535.1}, "min_driver", "quoted version"),
        ({"min_driver": "latest"}, "min_driver", "quoted version"),
    ],
)
def test_bad_requirements_name_file_key_and_value(data: dict[str, object], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        d.requirements_from_mapping(data, "envs/team.toml")
    rendered = info.value.render()
    assert rendered.startswith(f"envs/team.toml [requirements.{key}]:")
    assert text in rendered
    assert "Hint:" in rendered


def test_read_requirements(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(
        '[project]\nname = "x"\n\n[requirements]\nmin_ram_gib = 16\nmin_compute_capability = "7.5"\n'
    )
    req = d.read_requirements(path)
    assert req == d.Requirements(min_memory_mib=16384, min_compute_capability=ComputeCapability(7, 5))


def test_missing_table_is_no_requirements(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text('[project]\nname = "x"\n')
    req = d.read_requirements(path)
    assert req.empty
    assert d.check(MIXED_BOX, req) == ()
    assert "no requirements set" in d.render_checks(())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[requirements\nmin_ram_gib = 1\n", "not valid TOML"),
        ("requirements = 3\n", "[requirements] must be a table"),
    ],
)
def test_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "team.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        d.read_requirements(path)
    assert str(path) in info.value.render()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        d.read_requirements(tmp_path / "nope.toml")


# --- checking -----------------------------------------------------------------------------

FULL = d.Requirements(
    min_memory_mib=32 * 1024,
    min_gpu_memory_mib=20 * 1024,
    min_disk_free_mib=100 * 1024,
    min_cpu_count=16,
    min_compute_capability=ComputeCapability(7, 5),
    min_driver=DriverVersion((535,)),
)


def statuses(host: Host, req: d.Requirements) -> dict[str, str]:
    return {c.name: c.status for c in d.check(host, req)}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (
            H100_BOX,
            {
                "RAM": "pass",
                "CPU cores": "pass",
                "free disk": "pass",
                "NVIDIA driver": "pass",
                "compute capability": "pass",
                "GPU memory": "pass",
            },
        ),
        (
            MIXED_BOX,
            {
                "RAM": "pass",
                "CPU cores": "pass",
                "free disk": "pass",
                "NVIDIA driver": "pass",
                "compute capability": "fail",  # the 1080 Ti is sm_61
                "GPU memory": "fail",  # the 1080 Ti has 11 GiB
            },
        ),
        (
            CPU_LAPTOP,
            {
                "RAM": "fail",
                "CPU cores": "fail",
                "free disk": "fail",
                "NVIDIA driver": "fail",
                "compute capability": "fail",
                "GPU memory": "fail",
            },
        ),
        (
            BARE_HOST_FILE,
            {
                "RAM": "skip",
                "CPU cores": "skip",
                "free disk": "skip",
                "NVIDIA driver": "fail",
                "compute capability": "fail",
                "GPU memory": "fail",
            },
        ),
    ],
    ids=["h100", "mixed", "cpu-laptop", "bare-host-file"],
)
def test_check_table(host: Host, expected: dict[str, str]) -> None:
    assert statuses(host, FULL) == expected


def test_gpu_checks_name_the_weakest_gpu() -> None:
    checks = {c.name: c for c in d.check(MIXED_BOX, FULL)}
    cc = checks["compute capability"]
    assert cc.measured == "6.1 (sm_61) on GPU 1 (NVIDIA GeForce GTX 1080 Ti)"
    assert cc.required == ">= 7.5 (sm_75)"
    memory = checks["GPU memory"]
    assert memory.measured == "11 GiB (11264 MiB) on GPU 1 (NVIDIA GeForce GTX 1080 Ti)"
    assert memory.detail == "short by 9 GiB"


def test_no_gpu_fails_gpu_requirements_with_a_clear_value() -> None:
    checks = {c.name: c for c in d.check(CPU_LAPTOP, FULL)}
    assert checks["GPU memory"].measured == "no NVIDIA GPU"
    assert checks["compute capability"].measured == "no NVIDIA GPU"
    assert checks["NVIDIA driver"].measured == "no NVIDIA driver"


@pytest.mark.parametrize(
    ("driver", "minimum", "status"),
    [
        ("535.104.05", "535", "pass"),
        ("535.104.05", "535.104.05", "pass"),
        ("535.104.05", "535.129", "fail"),
        ("550.54.15", "535.129.03", "pass"),
        ("470.82.01", "535", "fail"),
        ("560.94", "560.70", "pass"),
    ],
)
def test_driver_comparison(driver: str, minimum: str, status: str) -> None:
    host = Host(os="linux", arch="x86_64", nvidia_driver=driver)
    (result,) = d.check(host, d.Requirements(min_driver=DriverVersion.parse(minimum)))
    assert result.status == status


def test_near_miss_explains_reserved_memory() -> None:
    # An "80GB" H100 reports 81559 MiB, short of 80 GiB: say why rather than just "fail".
    (result,) = d.check(H100_BOX, d.Requirements(min_gpu_memory_mib=80 * 1024))
    assert result.status == "fail"
    assert "within 5%" in result.detail


def test_unmeasured_gpu_memory_is_skipped() -> None:
    host = Host(os="linux", arch="aarch64", gpus=(gpu(0, "NVIDIA GB10", "12.1", None),))
    (result,) = d.check(host, d.Requirements(min_gpu_memory_mib=1024))
    assert result.status == "skip"


def test_render_checks() -> None:
    text = d.render_checks(d.check(MIXED_BOX, FULL))
    lines = text.splitlines()
    assert lines[0].startswith("PASS  RAM")
    assert "need >= 32 GiB" in lines[0]
    assert any(line.startswith("FAIL  compute capability") and "sm_61" in line for line in lines)
    assert lines[-1] == "6 checks: 4 passed, 2 failed"
    assert (
        d.render_checks(d.check(BARE_HOST_FILE, FULL)).splitlines()[-1]
        == "6 checks: 0 passed, 3 failed, 3 skipped"
    )
