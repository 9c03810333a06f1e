"""`stack-resolver detect` / `doctor` end to end: a real subprocess, a fake nvidia-smi on PATH."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.host.hostfile import parse_host_json
from resolver.host.model import ARCH_NAMES, OS_NAMES
from tests.fixtures.cli import HOSTS, run_cli
from tests.host.test_probes import SMI_FAILED, data, fake_executable

REPO = Path(__file__).resolve().parents[2]
# With nvidia-ml-py installed on a GPU machine, NVML answers before nvidia-smi.
HAS_NVML = importlib.util.find_spec("pynvml") is not None
needs_nvidia_probes = pytest.mark.skipif(sys.platform == "darwin", reason="macOS skips the NVIDIA probes")


def cli(*args: str, cwd: Path, bin_dir: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_RESOLVER_")}
    if bin_dir is not None:
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return run_cli(cwd, env, *args, timeout=120)


def test_detect_json_on_this_machine(tmp_path: Path) -> None:
    result = cli("detect", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    host = parse_host_json(result.stdout, "<stdout>")
    assert host.os in OS_NAMES and host.arch in ARCH_NAMES
    assert host.python and host.python.startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert host.cpu_count and host.cpu_count > 0
    assert host.disk_free_mib is not None
    nvidia_here = any(
        Path(path).exists() for path in ("/proc/driver/nvidia/version", "/sys/module/nvidia/version")
    ) or any((Path(d) / "nvidia-smi").exists() for d in os.environ.get("PATH", "").split(os.pathsep) if d)
    if not nvidia_here:
        # A machine without NVIDIA is a CPU host, not an error.
        assert host.gpus == () and host.nvidia_driver is None and not host.has_nvidia_gpu
        assert host.sources["gpus"] == "none found"


def test_detect_json_round_trips_through_host(tmp_path: Path) -> None:
    first = cli("detect", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    host_file = tmp_path / "host.json"
    host_file.write_text(first.stdout)
    second = cli("detect", "--json", "--host", str(host_file), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


@needs_nvidia_probes
def test_fake_nvidia_smi_on_path_end_to_end(tmp_path: Path) -> None:
    fake_executable(tmp_path, "nvidia-smi", data("nvidia-smi/h100-sxm-x8.csv"))
    result = cli("detect", "--json", cwd=tmp_path, bin_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    if HAS_NVML and payload["sources"].get("gpus") == "nvml":
        pytest.skip("NVML on this machine answered before the fake nvidia-smi")
    assert payload["sources"]["gpus"] == "nvidia-smi"
    assert payload["gpus"] == [
        {
            "index": i,
            "name": "NVIDIA H100 80GB HBM3",
            "vendor": "nvidia",
            "compute_capability": "9.0",
            "memory_mib": 81559,
        }
        for i in range(8)
    ]
    if payload["sources"]["nvidia_driver"] == "nvidia-smi":  # else this machine's kernel module answered
        assert payload["nvidia_driver"] == "550.54.15"

    readable = cli("detect", cwd=tmp_path, bin_dir=tmp_path)
    assert readable.returncode == 0, readable.stderr
    assert "7: NVIDIA H100 80GB HBM3  sm_90 (9.0)  81559 MiB" in readable.stdout


@needs_nvidia_probes
def test_failing_nvidia_smi_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    if HAS_NVML:
        pytest.skip("NVML on this machine may answer before nvidia-smi")
    fake_executable(tmp_path, "nvidia-smi", SMI_FAILED, code=9)
    result = cli("detect", "--json", cwd=tmp_path, bin_dir=tmp_path)
    assert result.returncode == 0
    assert (
        "warning: nvidia-smi: exited 9: NVIDIA-SMI has failed because it couldn't communicate"
        in result.stderr
    )
    parse_host_json(result.stdout)


def test_gpu_override_through_the_cli(tmp_path: Path) -> None:
    result = cli(
        "detect",
        "--json",
        cwd=tmp_path,
        STACK_RESOLVER_GPUS="NVIDIA A100-SXM4-80GB=8.0:81920",
        STACK_RESOLVER_NVIDIA_DRIVER="535.104.05",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["gpus"][0]["name"] == "NVIDIA A100-SXM4-80GB"
    assert payload["sources"]["gpus"] == "STACK_RESOLVER_GPUS"


def test_bad_override_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = cli("detect", "--json", cwd=tmp_path, STACK_RESOLVER_GPUS="sm_86")
    assert result.returncode == 2
    assert result.stderr.startswith("error: $STACK_RESOLVER_GPUS:")
    # under --json the error is also JSON on stdout (issue 18), and nothing else is printed there
    payload = json.loads(result.stdout)
    assert payload["kind"] == "bad_input" and payload["error"].startswith("$STACK_RESOLVER_GPUS:")


def test_malformed_host_file_names_file_and_key(tmp_path: Path) -> None:
    host_file = tmp_path / "host.json"
    host_file.write_text(
        json.dumps({"os": "linux", "arch": "x86_64", "gpus": [{"compute_capability": "86"}]})
    )
    result = cli("detect", "--json", "--host", str(host_file), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{host_file} [gpus[0].compute_capability]" in result.stderr


@pytest.mark.parametrize(
    ("requirements", "code", "line"),
    [
        ('min_compute_capability = "8.0"\nmin_gpu_memory_gib = 40\n', 0, "PASS  compute capability"),
        ('min_compute_capability = "9.0"\n', 5, "FAIL  compute capability"),
        ("min_gpu_memory_gib = 96\n", 5, "FAIL  GPU memory"),
    ],
)
def test_doctor(tmp_path: Path, requirements: str, code: int, line: str) -> None:
    host_file = tmp_path / "host.json"
    host_file.write_text(
        json.dumps(
            {
                "os": "linux",
                "arch": "x86_64",
                "nvidia_driver": "535.104.05",
                "gpus": [
                    {
                        "index": 0,
                        "name": "NVIDIA A100-SXM4-80GB",
                        "compute_capability": "8.0",
                        "memory_mib": 81920,
                    }
                ],
            }
        )
    )
    team = tmp_path / "team.toml"
    team.write_text("[requirements]\n" + requirements)
    result = cli("doctor", "--host", str(host_file), "--requirements", str(team), cwd=tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert line in result.stdout


def test_doctor_bad_requirement_exits_2(tmp_path: Path) -> None:
    team = tmp_path / "team.toml"
    team.write_text("[requirements]\nmin_ram = 16\n")
    host_file = tmp_path / "host.json"
    host_file.write_text('{"os": "linux", "arch": "x86_64"}')
    result = cli("doctor", "--host", str(host_file), "--requirements", str(team), cwd=tmp_path)
    assert result.returncode == 2
    assert "[requirements.min_ram]" in result.stderr and "min_ram_gib" in result.stderr


@pytest.mark.parametrize("argv", [["-m", "resolver"], ["-c", "from resolver.cli import run; run()"]])
def test_the_exit_keeps_every_byte_and_the_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """`python -m resolver` and the console script exit through sys.exit (resolver/cli.py `run`):
    output through a pipe still arrives whole, and the exit status is main()'s."""
    import io

    from resolver.cli import main

    host = tmp_path / "host.json"
    host.write_text(json.dumps(next(iter(HOSTS.values()))), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["resolve", "--dry-run", "--explain", "--host", str(host)]
    expected = io.StringIO()
    assert main(args, out=expected, err=io.StringIO()) == 0

    def run(*cli: str) -> subprocess.CompletedProcess[str]:
        # Buffered as usual (no PYTHONUNBUFFERED).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        return subprocess.run(
            [sys.executable, *argv, *cli], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected.getvalue()
    assert len(proc.stdout) > 500  # more than a pipe write
    bad = run("resolve", "--dry-run", "--host", "absent.json")
    assert bad.returncode == 2 and "absent.json" in bad.stderr


def test_the_exit_runs_the_libraries_exit_handlers(tmp_path: Path) -> None:
    """conda-lock, for one, removes its temporary folders in an atexit handler."""
    marker = tmp_path / "cleaned"
    code = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "sys.argv = ['stack-resolver', 'matrix', 'validate']\n"
        "from resolver.cli import run\n"
        "run()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "yes"
