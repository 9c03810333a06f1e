"""`stack-resolver verify`: the smoke module's pure helpers, the report, and end to end against the
loopback fixture index (real Poetry, a fresh venv, the stub torch/transformers wheels).

GPU checks need an NVIDIA GPU; here their logic is exercised through `smoke.device_checks`,
`smoke.arch_coverage` and `smoke.expected_all_reduce` with fake inputs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from resolver.errors import InputError
from resolver.host.hostfile import parse_host_json
from resolver.lock.poetry.tool import PoetryTool
from resolver.lock.runner import Completed
from resolver.verify import inspect_torch, smoke
from resolver.verify import poetry as verify
from resolver.verify.smoke import Check
from tests.fixtures.catalog import BuiltCatalog
from tests.fixtures.cli import run_cli
from tests.fixtures.isolation import poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).parents[1] / "data" / "verify"
ARCH_CASES = tomllib.loads((DATA / "arch_coverage.toml").read_text(encoding="utf-8"))["case"]

CPU_HOST = parse_host_json('{"os": "linux", "arch": "x86_64", "libc": "glibc", "python": "3.11"}')
H100_HOST = parse_host_json(
    '{"os": "linux", "arch": "x86_64", "libc": "glibc", "python": "3.11", "nvidia_driver": "550.54.15",'
    ' "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}]}'
)


# --- smoke helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [smoke, inspect_torch], ids=["smoke", "inspect_torch"])
def test_smoke_imports_only_the_standard_library(module: Any) -> None:
    """They run in the target's venv, where neither the resolver nor its dependencies exist."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("case", ARCH_CASES, ids=[c["name"] for c in ARCH_CASES])
def test_arch_coverage(case: dict[str, Any]) -> None:
    capability = (case["capability"][0], case["capability"][1])
    assert smoke.arch_coverage(capability, case["arch_list"]) == (case["kind"], case["entry"])


@pytest.mark.parametrize(("devices", "total"), [(1, 1.0), (2, 3.0), (4, 10.0), (8, 36.0)])
def test_all_reduce_expectation(devices: int, total: float) -> None:
    assert smoke.expected_all_reduce(devices) == total


def by_name(checks: Iterable[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_device_checks_pass_on_a_covered_machine() -> None:
    checks = smoke.device_checks(2, True, 2, [(9, 0), (9, 0)], ["sm_80", "sm_90"])
    assert all(c.status == "pass" and c.gpu for c in checks)
    assert by_name(checks)["GPU 1 architecture sm_90"].found == "cubin sm_90"


def test_device_checks_report_count_and_architecture_gaps() -> None:
    checks = by_name(smoke.device_checks(2, True, 1, [(12, 0)], ["sm_80", "sm_90"]))
    count = checks["CUDA device count"]
    assert (count.status, count.expected, count.found) == ("fail", "2", "1")
    arch = checks["GPU 0 architecture sm_120"]
    assert arch.status == "fail" and arch.found == "not in sm_80 sm_90"


def test_device_checks_stop_when_cuda_is_unavailable() -> None:
    checks = smoke.device_checks(1, False, 0, [], [])
    assert [(c.name, c.status, c.found) for c in checks] == [("CUDA available", "fail", "False")]


def test_ptx_only_coverage_passes_and_says_so() -> None:
    (arch,) = [
        c for c in smoke.device_checks(1, True, 1, [(12, 0)], ["compute_90"]) if "architecture" in c.name
    ]
    assert arch.status == "pass" and "PTX" in arch.detail


FAKE_DIRS: Mapping[str, Sequence[str]] = {
    "/usr/local/cuda-12.4/lib64": [
        "libcudart.so.12",
        "libcublas.so.12",
        "libcublasLt.so.12",
        "libnvrtc.so.12",
    ],
    "/usr/lib/x86_64-linux-gnu": ["libcuda.so.1", "libc.so.6", "libnvidia-ml.so.1"],
    "/opt/cudnn/lib": ["libcudnn_ops.so.9", "libcudnn.so.9"],
    "/opt/app/lib": ["libfoo.so"],
}


def fake_listdir(path: str) -> list[str]:
    if path not in FAKE_DIRS:
        raise FileNotFoundError(path)
    return list(FAKE_DIRS[path])


def test_hygiene_names_every_shadowing_directory_on_a_gpu_target() -> None:
    value = "/opt/app/lib:/usr/local/cuda-12.4/lib64::/missing:/usr/lib/x86_64-linux-gnu:/opt/cudnn/lib"
    assert [d for d, _ in smoke.shadowing_library_dirs(value, fake_listdir)] == [
        "/usr/local/cuda-12.4/lib64",
        "/opt/cudnn/lib",
    ]
    check = smoke.hygiene_check(value, fake_listdir, gpu_target=True)
    assert check.status == "fail"
    assert "/usr/local/cuda-12.4/lib64 (libcublas.so.12, libcublasLt.so.12, libcudart.so.12" in check.found
    assert "/opt/cudnn/lib" in check.detail and "libcuda.so" not in check.found  # the driver belongs there


def test_hygiene_passes_clean_paths_and_cpu_builds() -> None:
    clean = smoke.hygiene_check("/opt/app/lib:/usr/lib/x86_64-linux-gnu", fake_listdir, gpu_target=True)
    assert clean.status == "pass"
    unset = smoke.hygiene_check("", fake_listdir, gpu_target=True)
    assert unset.status == "pass" and "(unset)" in unset.found
    cpu = smoke.hygiene_check("/usr/local/cuda-12.4/lib64", fake_listdir, gpu_target=False)
    assert cpu.status == "pass" and "/usr/local/cuda-12.4/lib64" in cpu.found and "CPU" in cpu.detail


@pytest.mark.parametrize(
    ("expected", "found", "dist", "status"),
    [
        ("2.8.0+cpu", "2.8.0+cpu", "2.8.0+cpu", "pass"),
        ("2.8.0+cpu", "2.8.0+cu126", "2.8.0", "fail"),  # the local label counts
        ("2.8.0+cpu", None, None, "fail"),
        (None, None, None, "skip"),
    ],
)
def test_version_check(expected: str | None, found: str | None, dist: str | None, status: str) -> None:
    check = smoke.version_check("torch", expected, found, dist, "import torch failed: boom")
    assert check.status == status
    if found is not None and dist is not None and found != dist:
        assert "module says 2.8.0+cu126" in check.detail


# --- verify: expectations, target choice, report ----------------------------------------------------------


def expectations(**changes: Any) -> verify.Expectations:
    base: dict[str, Any] = {
        "target": "cpu",
        "python": "3.11",
        "variant": "cpu",
        "cuda": None,
        "locked": {"torch": "2.8.0+cpu", "transformers": "5.0.0"},
        "resolved": {
            "torch": "2.8.0+cpu",
            "torchvision": "0.23.0+cpu",
            "torchaudio": None,
            "transformers": "5.0.0",
        },
        "host_gpus": 0,
    }
    base.update(changes)
    return verify.Expectations(**base)


def test_lock_checks_name_the_package_the_lock_disagrees_on() -> None:
    good = verify.lock_checks(expectations())
    assert [(c.name, c.status) for c in good] == [
        ("torch locked as resolved", "pass"),
        ("transformers locked as resolved", "pass"),
    ]
    bad = by_name(verify.lock_checks(expectations(locked={"torch": "2.7.1+cpu", "transformers": "5.0.0"})))
    torch = bad["torch locked as resolved"]
    assert torch.status == "fail"
    assert torch.expected == "2.8.0+cpu (resolution.json)" and torch.found == "2.7.1+cpu (poetry.lock)"


def test_smoke_argument_carries_the_expectations() -> None:
    argument = json.loads(expectations(variant="cu129", cuda="12.9", host_gpus=8).smoke_argument())
    assert argument == {
        "versions": {"torch": "2.8.0+cpu", "transformers": "5.0.0"},
        "variant": "cu129",
        "cuda": "12.9",
        "hip": None,
        "gpu": "cuda",
        "host_gpus": 8,
        "gfx_targets": [],
        "gpu_target": True,
    }


def write_target(envs: Path, name: str, variant: str, python: str = "3.11") -> Path:
    directory = envs / name
    directory.mkdir(parents=True)
    (directory / "poetry.lock").write_text(
        '[[package]]\nname = "torch"\nversion = "2.8.0+cpu"\n\n[metadata]\nlock-version = "2.1"\n',
        encoding="utf-8",
    )
    record = {
        "resolution": {"variant": variant, "python": python, "torch": "2.8.0+cpu", "transformers": "5.0.0"}
    }
    (directory / "resolution.json").write_text(json.dumps(record), encoding="utf-8")
    return directory


def test_find_target(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    with pytest.raises(InputError, match="no locked target"):
        verify.find_target(envs, None, CPU_HOST)
    only = write_target(envs, "mine", "cpu")
    assert verify.find_target(envs, None, CPU_HOST) == only
    write_target(envs, "linux-x86_64-sm90-cu129-py311", "cu129")
    write_target(envs, "linux-x86_64-cpu-py311", "cpu")
    assert verify.find_target(envs, None, H100_HOST).name == "linux-x86_64-sm90-cu129-py311"
    assert verify.find_target(envs, None, CPU_HOST).name == "linux-x86_64-cpu-py311"
    assert verify.find_target(envs, "mine", H100_HOST) == only
    with pytest.raises(InputError, match="no locked target 'other'") as missing:
        verify.find_target(envs, "other", CPU_HOST)
    assert "linux-x86_64-cpu-py311, linux-x86_64-sm90-cu129-py311, mine" in str(missing.value)
    write_target(envs, "linux-x86_64-cpu-py312", "cpu", python="3.12")
    (envs / "mine" / "resolution.json").unlink()
    with pytest.raises(InputError, match="choose one with --target"):
        verify.find_target(envs, None, parse_host_json('{"os": "macos", "arch": "arm64"}'))


def test_read_expectations(tmp_path: Path) -> None:
    directory = write_target(tmp_path / "envs", "gpu", "cu129")
    expect = verify.read_expectations(directory, H100_HOST)
    assert (expect.variant, expect.cuda, expect.host_gpus, expect.gpu_target) == ("cu129", "12.9", 1, True)
    assert expect.locked == {"torch": "2.8.0+cpu"}
    assert expect.resolved["transformers"] == "5.0.0" and expect.resolved["torchaudio"] is None
    (directory / "resolution.json").write_text('{"resolution": {"variant": "cuda12"}}', encoding="utf-8")
    with pytest.raises(InputError, match="no valid variant"):
        verify.read_expectations(directory, H100_HOST)


def test_interpreter_for() -> None:
    assert verify.interpreter_for("3.9", "/opt/py/bin/python3.9") == "/opt/py/bin/python3.9"
    assert verify.interpreter_for("3.9", which=lambda name: f"/usr/bin/{name}") == "/usr/bin/python3.9"
    with pytest.raises(InputError, match=r"no python3\.9 is on PATH"):
        verify.interpreter_for("3.9", which=lambda name: None)
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert verify.interpreter_for(running, which=lambda name: None) == sys.executable


REPORT = verify.Report(
    target="cpu",
    directory="envs/cpu",
    variant="cpu",
    python="3.11.7",
    checks=(
        Check("torch version", "fail", "2.8.0+cpu", "2.7.1+cpu"),
        Check("transformers version", "pass", "5.0.0", "5.0.0"),
        Check("GPU checks", "skip", "-", "-", "no NVIDIA GPU on this machine", gpu=True),
    ),
)


def test_render_report() -> None:
    text = verify.render_report(REPORT)
    assert text.splitlines() == [
        "verify envs/cpu (variant cpu, Python 3.11.7)",
        "FAIL  torch version         expected 2.8.0+cpu, found 2.7.1+cpu",
        "PASS  transformers version  expected 5.0.0, found 5.0.0",
        "SKIP  [gpu] GPU checks      no NVIDIA GPU on this machine",
        "3 checks: 1 passed, 1 failed, 1 skipped",
    ]


def test_report_json() -> None:
    payload = verify.report_json(REPORT)
    assert payload["ok"] is False and REPORT.ok is False
    assert payload["checks"][0] == {
        "name": "torch version",
        "status": "fail",
        "expected": "2.8.0+cpu",
        "found": "2.7.1+cpu",
        "detail": "",
        "gpu": False,
    }
    assert payload["checks"][2]["gpu"] is True


def test_unparsable_smoke_output_is_a_failed_check() -> None:
    python, checks = verify.parse_smoke_output(
        "Segmentation fault\n", "Traceback\nImportError: libc10.so", -11
    )
    assert python == "?"
    (check,) = checks
    assert (check.name, check.status, check.found) == ("smoke test", "fail", "exit -11, no report")
    assert "libc10.so" in check.detail


class FakeRunner:
    """Creates the venv's python, answers Poetry with `poetry_exit`; records every argv."""

    def __init__(self, poetry_exit: int) -> None:
        self.poetry_exit = poetry_exit
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        on_line: Callable[[str], None] | None = None,
    ) -> Completed:
        self.calls.append(tuple(argv))
        if tuple(argv[1:3]) == ("-m", "venv"):
            python = Path(argv[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.write_text("")
            return Completed(tuple(argv), 0, "", "")
        if "sync" in argv:
            assert env["VIRTUAL_ENV"].endswith("venv")
            return Completed(tuple(argv), self.poetry_exit, "", "Installing torch (2.7.1+cpu)\nhash mismatch")
        raise AssertionError(f"unexpected command {argv}")


def test_an_install_failure_is_a_failed_check_and_the_venv_is_removed(tmp_path: Path) -> None:
    directory = write_target(tmp_path / "envs", "cpu", "cpu")
    runner = FakeRunner(poetry_exit=1)
    report = verify.verify_target(
        directory,
        CPU_HOST,
        interpreter="/usr/bin/python3.11",
        runner=runner,
        environ={"PATH": "/usr/bin"},
        tool=PoetryTool(argv=("poetry",), runner=runner),
    )
    checks = by_name(report.checks)
    assert (
        checks["install the lock"].status == "fail" and "hash mismatch" in checks["install the lock"].detail
    )
    assert checks["smoke test"].status == "skip"
    assert not report.ok
    venv = Path(runner.calls[0][-1])
    assert runner.calls[0][0] == "/usr/bin/python3.11" and not venv.exists()


# --- end to end on the loopback fixture index ---------------------------------------------------------

needs_poetry = pytest.mark.skipif(
    not poetry_available(), reason="Poetry is not installed in this interpreter"
)


def run_tool(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, *args, timeout=600)


def resolved_target(root: Path, index: FixtureIndex, host: Mapping[str, Any], target: str) -> dict[str, str]:
    envs = root / "envs"
    envs.mkdir(exist_ok=True)
    (envs / "team.toml").write_text(
        'packages = ["torchvision"]\n\n[indexes]\n'
        f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\ngeneral = "{index.url()}"\n',
        encoding="utf-8",
    )
    (root / f"{target}.json").write_text(json.dumps(host), encoding="utf-8")
    env = poetry_env(root / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(root / "http-cache")
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    env["STACK_RESOLVER_NO_GPU"] = "1"  # this machine's GPUs, whatever the target was resolved for
    env.pop("LD_LIBRARY_PATH", None)
    proc = run_tool(
        root, env, "resolve", "--team", "envs/team.toml", "--host", f"{target}.json", "--target", target
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env


def verify_json(root: Path, env: dict[str, str], target: str) -> tuple[int, dict[str, Check], str]:
    proc = run_tool(root, env, "verify", "--team", "envs/team.toml", "--target", target, "--json")
    assert proc.stdout, proc.stderr
    payload = json.loads(proc.stdout)
    return proc.returncode, {c["name"]: Check(**c) for c in payload["checks"]}, proc.stdout


def retarget_lock(lock: Path, package: str, version: str, wheels: BuiltCatalog, index: str) -> None:
    """Edit one package of poetry.lock to another version, files and hashes included."""
    document = tomlkit.parse(lock.read_text(encoding="utf-8"))
    for entry in document["package"]:
        if entry["name"] == package:
            entry["version"] = version
            files = tomlkit.array()
            for wheel in sorted(wheels.find(package, version), key=lambda w: w.filename):
                if index in wheel.spec.indexes:
                    files.append({"file": wheel.filename, "hash": f"sha256:{wheel.sha256}"})
            entry["files"] = files
    lock.write_text(tomlkit.dumps(document), encoding="utf-8")


CPU = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
H100 = dict(CPU, nvidia_driver="550.54.15", gpus=[{"index": 0, "name": "H100", "compute_capability": "9.0"}])


@pytest.mark.e2e
@needs_poetry
def test_verify_passes_then_names_an_edited_lock(
    tmp_path: Path, fixture_index: FixtureIndex, fixture_wheels: BuiltCatalog
) -> None:
    env = resolved_target(tmp_path, fixture_index, CPU, "cpu")
    code, checks, shown = verify_json(tmp_path, env, "cpu")
    assert code == 0, shown
    assert checks["torch version"].status == "pass" and checks["torch version"].found == "2.8.0+cpu"
    assert checks["torchvision version"].found == "0.23.0+cpu"
    assert checks["transformers version"].status == "pass"
    assert checks["torchaudio version"].status == "skip"  # not in the team's packages
    assert checks["torch.version.cuda"].status == "pass" and checks["torch.version.cuda"].found == "None"
    assert checks["GPU checks"].status == "skip" and checks["GPU checks"].gpu
    assert checks["CPU tensor operation"].detail == "torch is a stub: no tensor support"
    assert checks["transformers forward pass"].status == "skip"

    # The lock edited to another torch (files and hashes too, so Poetry installs it): the report
    # names the package, what the resolution expects and what the lock holds; exit status 5.
    lock = tmp_path / "envs" / "cpu" / "poetry.lock"
    original = lock.read_text(encoding="utf-8")
    retarget_lock(lock, "torch", "2.7.1+cpu", fixture_wheels, "cpu")
    proc = run_tool(tmp_path, env, "verify", "--team", "envs/team.toml", "--target", "cpu")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    named = (
        "torch locked as resolved         expected 2.8.0+cpu (resolution.json), found 2.7.1+cpu (poetry.lock)"
    )
    assert f"FAIL  {named}" in proc.stdout, proc.stdout
    assert "PASS  torch version" in proc.stdout  # what was installed is what the edited lock said

    # Only the version edited: Poetry refuses the download, and the report says so.
    lock.write_text(
        original.replace('name = "torch"\nversion = "2.8.0+cpu"', 'name = "torch"\nversion = "2.7.1+cpu"')
    )
    code, checks, shown = verify_json(tmp_path, env, "cpu")
    assert code == 5
    install = checks["install the lock"]
    assert install.status == "fail" and "torch (2.7.1+cpu)" in install.detail, shown
    assert checks["torch locked as resolved"].found == "2.7.1+cpu (poetry.lock)"


@pytest.mark.e2e
@needs_poetry
def test_verify_names_a_system_cuda_directory_on_ld_library_path(
    tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    env = resolved_target(tmp_path, fixture_index, H100, "gpu")
    toolkit = tmp_path / "usr-local-cuda" / "lib64"
    toolkit.mkdir(parents=True)
    (toolkit / "libcudart.so.12").write_bytes(b"")
    env["LD_LIBRARY_PATH"] = str(toolkit)
    code, checks, shown = verify_json(tmp_path, env, "gpu")
    assert code == 5, shown  # a failed check (ExitCode.CHECK_FAILED)
    hygiene = checks["LD_LIBRARY_PATH hygiene"]
    assert hygiene.status == "fail" and str(toolkit) in hygiene.found and "libcudart.so.12" in hygiene.found
    assert checks["torch.version.cuda"].found == "12.9" and checks["torch.version.cuda"].status == "pass"
    gpu = checks["GPU checks"]
    assert gpu.status == "skip" and gpu.detail == "no NVIDIA GPU on this machine"
    assert [name for name, c in checks.items() if c.status == "fail"] == ["LD_LIBRARY_PATH hygiene"]
