"""`stack-resolver check` on small fake environments: a real venv holding stub torch /
torchvision / transformers distributions (built with the fixture wheel builder and unpacked as an
installer would) whose torch reports a chosen version, CUDA build, arch list and devices. The host
is stated with `--host`; the stub's devices honour `CUDA_VISIBLE_DEVICES` as CUDA does."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from resolver.cli import main
from resolver.errors import NoCompatibleCombination
from resolver.host.hostfile import host_from_mapping
from resolver.host.model import ComputeCapability
from resolver.matrix.arch import Coverage
from resolver.matrix.load import load_matrix
from resolver.solve.request import Request
from resolver.solve.search import solve
from resolver.verify import check
from tests.fixtures.wheels import build_wheel_bytes
from tests.verify.test_verify import write_target

MATRIX = load_matrix(None)
ARCH_CU118 = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")
BASE = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
RTX5090 = {"index": 0, "name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}
RTX3090 = {"index": 1, "name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6"}
A100_MIG = {
    "index": 0,
    "name": "NVIDIA A100-SXM4-40GB",
    "compute_capability": "8.0",
    "uuid": "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77",
    "mig": [{"uuid": "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f", "name": "1g.5gb", "memory_mib": 4864}],
}


def _torch_files(
    version: str, cuda: str | None, arch: Sequence[str], devices: Sequence[tuple[int, int]]
) -> dict[str, str]:
    return {
        "torch/__init__.py": "from torch import cuda as cuda\nfrom torch import version as version\n"
        "__version__ = version.__version__\n",
        "torch/version.py": f"__version__ = {version!r}\ncuda = {cuda!r}\nhip = None\n",
        "torch/cuda/__init__.py": (
            "import os\n"
            f"_DEVICES = {list(devices)!r}\n"
            f"_ARCH = {list(arch)!r}\n"
            "def _visible():\n"
            "    value = os.environ.get('CUDA_VISIBLE_DEVICES')\n"
            "    if value is None:\n"
            "        return list(_DEVICES)\n"
            "    seen = []\n"
            "    for token in value.split(','):\n"
            "        token = token.strip()\n"
            "        if token[:4] in ('GPU-', 'MIG-') and _DEVICES:\n"
            "            token = '0'  # enough for these one-GPU fakes\n"
            "        if not token.isdigit() or int(token) >= len(_DEVICES):\n"
            "            break\n"
            "        seen.append(_DEVICES[int(token)])\n"
            "    return seen\n"
            "def is_available():\n    return bool(_visible())\n"
            "def device_count():\n    return len(_visible())\n"
            "def get_device_capability(index):\n    return _visible()[index]\n"
            "def get_arch_list():\n    return list(_ARCH) if is_available() else []\n"
        ),
    }


def _install(site: Path, name: str, version: str, files: dict[str, str] | None = None) -> None:
    _, data = build_wheel_bytes(name, version, files=files)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(site)


def fake_env(
    root: Path,
    torch: str | None = "2.5.1+cu118",
    cuda: str | None = "11.8",
    arch: Sequence[str] = ARCH_CU118,
    devices: Sequence[tuple[int, int]] = ((12, 0),),
    **others: str,
) -> Path:
    """A venv at root/.venv with stub distributions; its python."""
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if torch is not None:
        _install(site, "torch", torch, _torch_files(torch, cuda, arch, devices))
    for name, version in others.items():
        _install(site, name, version)
    return venv / "bin" / "python"


def run_check(
    root: Path, monkeypatch: pytest.MonkeyPatch, host: dict[str, Any] | None, *args: str, **env: str
) -> tuple[int, dict[str, Any], str]:
    monkeypatch.chdir(root)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["check", "--json", *args]
    if host is not None:
        (root / "host.json").write_text(json.dumps(host), encoding="utf-8")
        argv += ["--host", "host.json"]
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out, err)
    payload = json.loads(out.getvalue()) if out.getvalue().strip() else {}
    return code, payload, err.getvalue()


def checks_of(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in payload["checks"]}


def failed(payload: dict[str, Any]) -> list[str]:
    return [c["name"] for c in payload["checks"] if c["status"] == "fail"]


def assert_install_fix_works(fix: dict[str, Any], host: dict[str, Any]) -> None:
    """Applied to the host, the fix's torch solves and its build serves every GPU."""
    assert fix["kind"] == "install"
    torch = Version(fix["apply"]["install"]["torch"])
    resolution = solve(
        host_from_mapping(host),
        MATRIX,
        Request(constraints={"torch": SpecifierSet(f"=={torch.public}")}, python="3.11"),
    )
    assert resolution.torch == str(torch) and fix["apply"]["variant"] == resolution.variant
    assert all(fit.coverage is not Coverage.NONE for fit in resolution.gpu_fit)


# --- each mismatch ---------------------------------------------------------------------------------


def test_a_cu118_build_on_sm_120(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(tmp_path)
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[RTX5090])
    code, payload, err = run_check(tmp_path, monkeypatch, host)
    assert code == 5, err
    arch = checks_of(payload)["cuda:0 GPU 0 (NVIDIA GeForce RTX 5090) sm_120"]
    assert arch["status"] == "fail" and arch["found"] == " ".join(ARCH_CU118)
    (fix,) = arch["fixes"]
    summary = fix["summary"]
    assert summary.startswith(
        "torch 2.5.1+cu118 carries no sm_120 kernels for GPU 0 (NVIDIA GeForce RTX 5090): install torch "
    )
    assert f"install torch {fix['apply']['install']['torch']} or newer" in summary
    assert_install_fix_works(fix, host)
    # the closest such torch: no release between the installed one and it would do
    chosen = Version(Version(fix["apply"]["install"]["torch"]).public)
    for release in MATRIX.torch:
        if Version("2.5.1") < release.version < chosen:
            request = Request(constraints={"torch": SpecifierSet(f"=={release.version}")}, python="3.11")
            with pytest.raises(NoCompatibleCombination):
                solve(host_from_mapping(host), MATRIX, request)
    assert payload["torch"]["variant"] == "cu118" and payload["devices"][0]["compute_capability"] == "12.0"


def test_a_driver_below_the_builds_floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch cannot see the GPU on a driver this old: its arch list then comes from the matrix.
    fake_env(tmp_path, torch="2.7.1+cu128", cuda="12.8", arch=(), devices=())
    host = dict(
        BASE,
        nvidia_driver="470.82.01",
        gpus=[{"index": 0, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}],
    )
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert code == 5
    driver = checks_of(payload)["NVIDIA driver"]
    floor = MATRIX.driver_floor(Version("12.8"), "linux")
    assert driver["status"] == "fail" and driver["expected"] == f">= {floor} (CUDA 12.8)"
    assert driver["found"] == "470.82.01"
    kinds = {fix["kind"]: fix for fix in driver["fixes"]}
    assert kinds["driver"]["apply"] == {"nvidia_driver": str(floor)}
    assert kinds["driver"]["gives"]["torch"] == "2.7.1+cu128"  # what the raised driver runs
    # the other way: a build this driver runs
    other = kinds["install"]
    assert_install_fix_works(other, host)
    variant_cuda = Version(other["apply"]["variant"][2:-1] + "." + other["apply"]["variant"][-1])
    assert MATRIX.driver_floor(variant_cuda, "linux") <= host_from_mapping(host).driver  # type: ignore[operator]
    assert checks_of(payload)["cuda:0 GPU 0 (NVIDIA A100-SXM4-80GB) sm_80"]["status"] == "pass"
    available = checks_of(payload)["CUDA available"]
    assert (available["status"], available["found"]) == ("fail", "False")


def test_a_torchvision_of_another_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = MATRIX.companions[Version("2.7.1")]
    other = next(p for p in MATRIX.companions.values() if p.torchvision and p.torchvision != pair.torchvision)
    fake_env(
        tmp_path,
        torch="2.7.1+cu128",
        cuda="12.8",
        arch=("sm_80", "sm_90", "sm_120"),
        torchvision=f"{other.torchvision}+cu128",
    )
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[RTX5090])
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert code == 5 and failed(payload) == ["torchvision pairs with torch"]
    found = checks_of(payload)["torchvision pairs with torch"]
    assert found["expected"] == f"{pair.torchvision}+cu128"
    assert found["detail"] == f"torchvision {other.torchvision}+cu128 is built for torch {other.torch}"
    (fix,) = found["fixes"]
    assert fix["apply"] == {"install": {"torchvision": f"{pair.torchvision}+cu128"}}


def test_transformers_outside_its_torch_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = Version("2.5.1")
    release = next(t for t in MATRIX.transformers if t.torch and not t.torch.contains(torch) and not t.yanked)
    fake_env(tmp_path, torch="2.5.1+cpu", cuda=None, arch=(), devices=(), transformers=str(release.version))
    code, payload, _ = run_check(tmp_path, monkeypatch, BASE)
    assert code == 5 and failed(payload) == ["transformers fits torch"]
    found = checks_of(payload)["transformers fits torch"]
    assert found["expected"] == f"torch{release.torch}" and found["found"] == "torch 2.5.1"
    (fix,) = found["fixes"]
    fitting = MATRIX.transformers_release(Version(fix["apply"]["install"]["transformers"]))
    assert fitting is not None and (not fitting.torch or fitting.torch.contains(torch))
    assert fix["gives"]["torch"] == "2.5.1+cpu"


def test_drift_from_the_target_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_target(tmp_path / "envs", "mine", "cpu")  # locks torch 2.8.0+cpu for Python 3.11
    fake_env(tmp_path, torch="2.7.1+cpu", cuda=None, arch=(), devices=())
    code, payload, _ = run_check(tmp_path, monkeypatch, BASE, "--target", "mine")
    assert code == 5 and payload["target"] == "mine"
    drift = checks_of(payload)["torch as locked (mine)"]
    assert (drift["status"], drift["expected"], drift["found"]) == ("fail", "2.8.0+cpu", "2.7.1+cpu")
    assert drift["fixes"][0]["kind"] == "sync" and drift["fixes"][0]["apply"]["sync"]["target"] == "mine"
    # an unknown target is bad input
    code, _, err = run_check(tmp_path, monkeypatch, BASE, "--target", "other")
    assert code == 2 and "no locked target 'other'" in err


def test_cuda_visible_devices_on_a_two_gpu_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(tmp_path, devices=((12, 0), (8, 6)))
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[RTX5090, RTX3090])
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert code == 5 and "cuda:0 GPU 0 (NVIDIA GeForce RTX 5090) sm_120" in failed(payload)

    code, payload, _ = run_check(tmp_path, monkeypatch, host, CUDA_VISIBLE_DEVICES="1")
    assert code == 0, failed(payload)
    checks = checks_of(payload)
    assert checks["cuda:0 GPU 1 (NVIDIA GeForce RTX 3090) sm_86"]["found"] == "cubin"
    assert checks["CUDA device count"]["status"] == "pass" and checks["CUDA device count"]["found"] == "1"
    assert [d["gpu"] for d in payload["devices"]] == [1] and payload["masked_gpus"] == [0]
    assert payload["cuda_visible_devices"] == "1"

    # The host file says CUDA sees one GPU while torch in this process sees both.
    recorded = dict(host, cuda_visible_devices="1")
    code, payload, _ = run_check(tmp_path, monkeypatch, recorded)
    count = checks_of(payload)["CUDA device count"]
    assert code == 5 and (count["expected"], count["found"]) == ("1", "2")
    assert "CUDA_VISIBLE_DEVICES='1'" in count["detail"]
    assert count["fixes"] == [
        {
            "kind": "env",
            "summary": "run with CUDA_VISIBLE_DEVICES='1', as the host recorded",
            "apply": {"env": {"CUDA_VISIBLE_DEVICES": "1"}},
            "gives": {},
        }
    ]


def test_a_mig_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(
        tmp_path, torch="2.7.1+cu128", cuda="12.8", arch=("sm_90", "sm_100", "sm_120"), devices=((8, 0),)
    )
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[A100_MIG])
    code, payload, _ = run_check(tmp_path, monkeypatch, host, CUDA_VISIBLE_DEVICES="MIG-c6d4f1ef")
    assert code == 5
    name = "cuda:0 MIG 1g.5gb on GPU 0 sm_80"
    found = checks_of(payload)[name]
    assert found["status"] == "fail"
    assert found["fixes"][0]["summary"].startswith(
        "torch 2.7.1+cu128 carries no sm_80 kernels for MIG 1g.5gb on GPU 0: install torch"
    )
    (device,) = payload["devices"]
    assert (
        device["mig"] == "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f" and device["compute_capability"] == "8.0"
    )


def test_a_fitting_environment_passes_and_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = MATRIX.companions[Version("2.7.1")]
    fake_env(
        tmp_path,
        torch="2.7.1+cu128",
        cuda="12.8",
        arch=("sm_80", "sm_90", "sm_100", "sm_120"),
        devices=((8, 0),),
        torchvision=f"{pair.torchvision}+cu128",
    )
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[A100_MIG])
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert code == 0, failed(payload)
    assert payload["ok"] is True and payload["devices"][0]["mig"] is not None  # MIG: one instance
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / ".venv"))  # the active venv is the default
    (tmp_path / "host.json").write_text(json.dumps(host), encoding="utf-8")
    out = io.StringIO()
    assert main(["check", "--host", "host.json"], out, io.StringIO()) == 0
    text = out.getvalue()
    assert text.startswith(f"check {tmp_path / '.venv' / 'bin' / 'python'} (Python 3.")
    assert "PASS  [gpu] cuda:0 MIG 1g.5gb on GPU 0 sm_80" in text


def test_a_cpu_build_on_a_gpu_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(tmp_path, torch="2.7.1+cpu", cuda=None, arch=(), devices=())
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[RTX5090])
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert code == 5 and failed(payload) == ["CUDA build"]
    assert_install_fix_works(checks_of(payload)["CUDA build"]["fixes"][0], host)
    # with every GPU masked, a CPU build is what fits
    code, payload, _ = run_check(tmp_path, monkeypatch, host, CUDA_VISIBLE_DEVICES="")
    assert code == 0 and checks_of(payload)["GPUs"]["detail"] == "no GPU is visible to CUDA"


def test_arch_specific_cubins_count_only_on_their_own_capability() -> None:
    h100, gh = ComputeCapability(9, 0), ComputeCapability(9, 1)
    assert check.torch_arch_targets(["sm_90a", "compute_90"], h100)[0].ptx is False
    assert [t.ptx for t in check.torch_arch_targets(["sm_90a", "compute_90"], gh)] == [True]


@pytest.mark.parametrize("kind", ["missing", "not-python", "text"])
def test_bad_python_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    target = tmp_path / "python"
    if kind == "not-python":
        target.write_text("#!/bin/sh\necho hello\n", encoding="utf-8")
        target.chmod(0o755)
    elif kind == "text":
        target.write_text("just text\n", encoding="utf-8")
    code, payload, err = run_check(tmp_path, monkeypatch, BASE, "--python", str(target))
    assert code == 2 and payload["kind"] == "bad_input"  # errors under --json are JSON too
    assert "--python" in err and str(target) in err


def test_no_environment_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run_check(tmp_path, monkeypatch, BASE)
    assert code == 2 and "no environment to check" in err


def test_no_build_fits_this_driver_names_the_driver_that_unlocks_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_env(tmp_path)
    host = dict(BASE, nvidia_driver="470.82.01", gpus=[RTX5090])
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert code == 5
    (fix,) = checks_of(payload)["cuda:0 GPU 0 (NVIDIA GeForce RTX 5090) sm_120"]["fixes"]
    assert fix["kind"] == "driver" and "upgrade the NVIDIA driver to" in fix["summary"]
    raised = dict(host, nvidia_driver=fix["apply"]["nvidia_driver"])
    assert_install_fix_works(dict(fix, kind="install"), raised)
    with pytest.raises(NoCompatibleCombination):
        solve(host_from_mapping(host), MATRIX, Request(python="3.11"))


def test_no_torch_installed_gets_the_solvers_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(tmp_path, torch=None)
    code, payload, _ = run_check(tmp_path, monkeypatch, BASE)
    assert code == 5 and failed(payload) == ["torch"]
    (fix,) = checks_of(payload)["torch"]["fixes"]
    best = solve(host_from_mapping(BASE), MATRIX, Request(python="3.11"))
    assert fix["apply"]["install"]["torch"] == best.torch and "or newer" not in fix["summary"]


def test_the_target_named_for_this_host_is_compared_without_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resolver.lock.target import target_name_for

    name = target_name_for(host_from_mapping(BASE), "cpu", "3.11")
    write_target(tmp_path / "envs", name, "cpu")
    write_target(tmp_path / "envs", "someone-elses", "cu129")
    fake_env(tmp_path, torch="2.8.0+cpu", cuda=None, arch=(), devices=())
    code, payload, _ = run_check(tmp_path, monkeypatch, BASE)
    assert code == 0 and payload["target"] == name
    assert checks_of(payload)[f"torch as locked ({name})"]["status"] == "pass"


def test_the_team_target_this_machine_is_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    team_hosts = Path(__file__).parents[1] / "data" / "team" / "hosts"
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "team.toml").write_text(
        f'[targets.workstation]\nhost = "{team_hosts / "rtx5090.json"}"\n'
        f'[targets.laptop]\nhost = "{team_hosts / "cpu-laptop.json"}"\n',
        encoding="utf-8",
    )
    write_target(envs, "workstation", "cu128")  # locks torch 2.8.0+cpu, as write_target does
    fake_env(tmp_path, torch="2.7.1+cu128", cuda="12.8", arch=("sm_120",), devices=((12, 0),))
    host = json.loads((team_hosts / "rtx5090.json").read_text(encoding="utf-8"))
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    assert payload["target"] == "workstation" and code == 5
    assert checks_of(payload)["torch as locked (workstation)"]["found"] == "2.7.1+cu128"


def test_the_same_release_in_another_variant_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_env(tmp_path, torch="2.7.1+cu118", cuda="11.8")
    host = dict(BASE, nvidia_driver="575.57.08", gpus=[RTX5090])
    code, payload, _ = run_check(tmp_path, monkeypatch, host)
    (fix,) = checks_of(payload)["cuda:0 GPU 0 (NVIDIA GeForce RTX 5090) sm_120"]["fixes"]
    assert code == 5 and Version(fix["apply"]["install"]["torch"]).public == "2.7.1"
    assert "or newer" not in fix["summary"]
    assert_install_fix_works(fix, host)


def test_a_conda_only_target_is_not_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resolver.lock.target import target_name_for

    name = target_name_for(host_from_mapping(BASE), "cpu", "3.11")
    directory = write_target(tmp_path / "envs", name, "cpu")
    (directory / "poetry.lock").rename(directory / "conda-lock.yml")
    fake_env(tmp_path, torch="2.8.0+cpu", cuda=None, arch=(), devices=())
    code, payload, _ = run_check(tmp_path, monkeypatch, BASE)
    assert code == 0 and payload["target"] is None
    code, _, err = run_check(tmp_path, monkeypatch, BASE, "--target", name)
    assert code == 2 and "has no poetry.lock" in err
