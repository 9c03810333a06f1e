"""`check --smoke` on a real CPU torch: the 2.13.0 CPU wheel and transformers 4.57.6 from
`.cache/test-wheels/` (or `STACK_RESOLVER_TEST_WHEELS`; `nox -s tests` downloads them), installed
offline into a fresh venv; `check` then multiplies tensors and runs a tiny BERT built from a
config in that environment. Without the wheels or a Python 3.11 it skips."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli
from tests.verify.test_verify_real_torch import TORCH, TRANSFORMERS, python311, wheel_dir

pytestmark = [pytest.mark.e2e]


def why_not() -> str | None:
    directory = wheel_dir()
    if not list(directory.glob(f"torch-{TORCH}+cpu-cp311-cp311-*.whl")):
        return f"no torch {TORCH}+cpu cp311 wheel in {directory} (`nox -s tests` downloads it)"
    if not list(directory.glob(f"transformers-{TRANSFORMERS}-*.whl")):
        return f"no transformers {TRANSFORMERS} wheel in {directory} (`nox -s tests` downloads it)"
    if python311() is None:
        return "no Python 3.11 interpreter for the environment"
    return None


def install_offline(venv: Path) -> Path:
    python = venv / "bin" / "python"
    wanted = [f"torch=={TORCH}+cpu", f"transformers=={TRANSFORMERS}"]
    uv = shutil.which("uv")
    if uv is not None:
        subprocess.run([uv, "venv", "--quiet", "--python", str(python311()), str(venv)], check=True)
        install = [uv, "pip", "install", "--quiet", "--python", str(python), "--offline"]
    else:
        subprocess.run([str(python311()), "-m", "venv", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*install, "--no-index", "--find-links", str(wheel_dir()), *wanted], check=True)
    return python


def test_check_smoke_passes_on_a_real_cpu_torch(tmp_path: Path) -> None:
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    python = install_offline(tmp_path / "env")
    host = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
    (tmp_path / "cpu.json").write_text(json.dumps(host), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "LD_LIBRARY_PATH")}
    env["STACK_RESOLVER_NO_GPU"] = "1"
    proc = run_cli(
        tmp_path,
        env,
        "check",
        "--python",
        str(python),
        "--host",
        "cpu.json",
        "--smoke",
        "--json",
        timeout=900,
    )
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    shown = json.dumps(report["checks"], indent=1)
    assert proc.returncode == 0, shown + proc.stderr
    assert report["torch"]["version"] == f"{TORCH}+cpu" and report["torch"]["variant"] == "cpu"
    assert checks["smoke: torch version"]["found"] == f"{TORCH}+cpu", shown
    assert checks["smoke: CPU tensor operation"]["status"] == "pass", shown
    assert checks["smoke: transformers forward pass (cpu)"]["status"] == "pass", shown
    assert checks["smoke: GPU checks"]["status"] == "skip", shown
    assert checks["transformers fits torch"]["status"] in ("pass", "skip"), shown
