"""The whole chain on a real NVIDIA machine (`pytest -m gpu`, or `nox -s gpu`); skipped elsewhere.

1. The probes agree: NVML (when nvidia-ml-py is installed), `/sys/module/nvidia/version` or
   `/proc/driver/nvidia/version`, and `nvidia-smi` report the same driver and the same GPUs.
2. `resolve --dry-run --json` for the detected host picks a build whose arch list (matrix) serves
   every GPU.
3. `check --smoke` on the machine's own torch passes: CUDA available, the device count CUDA sees,
   arch coverage, a matrix product on every GPU, a tiny transformers model built from a config
   (no download) on the GPU when transformers is installed, and an NCCL all-reduce when there are
   several GPUs. The interpreter is `$STACK_RESOLVER_GPU_PYTHON`, else `$VIRTUAL_ENV`'s, else this
   one, else `python3` on PATH, the first that imports torch.

Nothing here reaches the network. With `STACK_RESOLVER_GPU_CAPTURE=DIR` the raw probe outputs are
written to DIR, to become parser fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.host import model as h
from resolver.host import overrides
from resolver.host import parse as hp
from resolver.host import probes as p
from resolver.matrix.arch import Coverage, coverage
from resolver.matrix.load import load_matrix
from tests.fixtures.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _clean_environ() -> dict[str, str]:
    """This process's environment without the tool's overrides, which could fake a GPU."""
    return {k: v for k, v in os.environ.items() if k not in overrides.ENV_VARS}


def _detected() -> p.Detection:
    return p.detect(p.Probes.system(Path.cwd(), _clean_environ()))


def _why_no_gpu() -> str | None:
    try:
        host = _detected().host
    except Exception as exc:  # a broken probe is a reason to skip, shown as such
        return f"host detection failed: {exc}"
    if not host.gpus:
        return "no NVIDIA GPU detected (NVML, /proc/driver/nvidia, nvidia-smi)"
    return None


REASON = _why_no_gpu()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def _capture(name: str, text: str) -> None:
    directory = os.environ.get("STACK_RESOLVER_GPU_CAPTURE")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / name).write_text(text, encoding="utf-8")


def _collect(probe: str) -> p._Collector:
    probes = p.Probes.system(Path.cwd(), _clean_environ())
    out = p._Collector(p._Overrides(values={}, sources={}))
    if probe == "nvml":
        p._probe_nvml(probes, out)
    elif probe == "kernel":
        p._probe_kernel_module(probes, out)
    else:
        p._probe_nvidia_smi(probes, out)
    return out


def test_nvml_proc_and_nvidia_smi_agree() -> None:
    smi = _collect("nvidia-smi")
    assert smi.values.get("gpus"), f"nvidia-smi listed no GPU: {smi.warnings}"
    raw = subprocess.run(["nvidia-smi", *hp.NVIDIA_SMI_ARGS], capture_output=True, text=True, check=True)
    _capture("nvidia-smi.csv", raw.stdout)
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    _capture("nvidia-smi-L.txt", listed.stdout)
    assert hp.parse_nvidia_smi_csv(raw.stdout).gpus == tuple(
        h.Gpu(g.index, g.name, g.compute_capability, g.memory_mib) for g in smi.values["gpus"]
    )

    kernel = _collect("kernel")
    for path in (p.SYS_MODULE_VERSION, p.PROC_DRIVER_VERSION):
        if Path(path).exists():
            _capture(Path(path).parent.name + "-" + Path(path).name, Path(path).read_text(encoding="utf-8"))
    if "nvidia_driver" in kernel.values:  # absent in some containers: nothing to compare
        assert kernel.values["nvidia_driver"] == smi.values["nvidia_driver"]

    nvml = _collect("nvml")
    if p._load_nvml() is None or (not nvml.values and not nvml.warnings):
        return  # nvidia-ml-py or libnvidia-ml absent: two sources agree, the third is absent
    assert not nvml.warnings, nvml.warnings
    assert nvml.values["nvidia_driver"] == smi.values["nvidia_driver"]
    _capture("nvml.json", json.dumps(h.Host("linux", "x86_64", gpus=nvml.values["gpus"]).to_json()["gpus"]))
    by_index = {g.index: g for g in smi.values["gpus"]}
    for gpu in nvml.values["gpus"]:
        other = by_index[gpu.index]
        assert (gpu.name, gpu.compute_capability) == (other.name, other.compute_capability)
        # nvidia-smi prints MiB of the same byte count NVML returns; allow its rounding
        if gpu.memory_mib is not None and other.memory_mib is not None:
            assert abs(gpu.memory_mib - other.memory_mib) <= 1


def test_resolve_dry_run_serves_every_gpu(tmp_path: Path) -> None:
    host = _detected().host
    (tmp_path / "host.json").write_text(host.dumps(), encoding="utf-8")
    proc = run_cli(tmp_path, _clean_environ(), "resolve", "--host", "host.json", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chosen = json.loads(proc.stdout)
    matrix = load_matrix(None)
    release = next(r for r in matrix.torch if r.version.public == chosen["torch"].split("+")[0])
    build = matrix.build(release, chosen["variant"])
    assert build is not None, chosen
    targets = build.arch.get(host.platform, ())
    for gpu in host.gpus:
        how = coverage(targets, gpu.compute_capability, matrix.tegra_rule)
        assert how is not Coverage.NONE, f"{chosen['torch']} does not serve GPU {gpu.index} ({gpu.name})"


def _torch_python() -> str | None:
    candidates = [os.environ.get("STACK_RESOLVER_GPU_PYTHON")]
    if os.environ.get("VIRTUAL_ENV"):
        candidates.append(str(Path(os.environ["VIRTUAL_ENV"]) / "bin" / "python"))
    candidates += [sys.executable, shutil.which("python3")]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "-c", "import torch"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def test_check_smoke_on_the_machines_own_torch(tmp_path: Path) -> None:
    python = _torch_python()
    if python is None:
        pytest.skip("no interpreter here imports torch (set STACK_RESOLVER_GPU_PYTHON)")
    env = _clean_environ()
    env.pop("VIRTUAL_ENV", None)
    proc = run_cli(tmp_path, env, "check", "--python", python, "--smoke", "--json", timeout=900)
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    shown = json.dumps(report["checks"], indent=1)
    # A system CUDA toolkit on LD_LIBRARY_PATH is the machine's finding, not the chain's.
    failing = [
        n for n, c in checks.items() if c["status"] == "fail" and n != "smoke: LD_LIBRARY_PATH hygiene"
    ]
    assert not failing, shown
    assert checks["smoke: CUDA available"]["status"] == "pass", shown
    devices = len(report["devices"])
    assert checks["smoke: CUDA device count"]["found"] == str(devices), shown
    for index in range(devices):
        assert checks[f"smoke: GPU {index} matrix product"]["status"] == "pass", shown
    if "transformers" in report["packages"]:
        assert checks["smoke: transformers forward pass (cuda)"]["status"] == "pass", shown
    if devices > 1:
        assert checks[f"smoke: NCCL all-reduce across {devices} GPUs"]["status"] == "pass", shown
