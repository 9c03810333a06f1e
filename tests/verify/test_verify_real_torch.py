"""`verify` for real: a real torch CPU wheel and real transformers, served from the loopback index.

The wheels come from `.cache/test-wheels/` (or `STACK_RESOLVER_TEST_WHEELS`), which `nox -s tests`
fills before pytest runs (`pip download` of torch==2.13.0+cpu, transformers==4.57.6 and their
dependencies for CPython 3.11 on manylinux x86_64; the torch wheel comes from pip's configured
find-links). The test itself never leaves loopback: it serves those files as a `cpu` PyTorch
index plus a general index, resolves a CPU target, locks it with Poetry and runs
`stack-resolver verify`, which installs torch into a fresh venv, multiplies tensors and runs a
tiny BERT built from a config in code. Without the wheels (or Python 3.11, or Poetry) it skips.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.catalog import GENERAL, BuiltCatalog, BuiltWheel, Catalog, WheelSpec
from tests.fixtures.cli import run_cli
from tests.fixtures.isolation import poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex
from tests.fixtures.wheels import read_wheel_metadata

TORCH = "2.13.0"
TRANSFORMERS = "4.57.6"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e]


def wheel_dir() -> Path:
    return Path(os.environ.get("STACK_RESOLVER_TEST_WHEELS") or ROOT / ".cache" / "test-wheels")


def python311() -> str | None:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    return shutil.which("python3.11")


def why_not() -> str | None:
    directory = wheel_dir()
    if not list(directory.glob(f"torch-{TORCH}+cpu-cp311-cp311-*.whl")):
        return f"no torch {TORCH}+cpu cp311 wheel in {directory} (`nox -s tests` downloads it)"
    if not list(directory.glob(f"transformers-{TRANSFORMERS}-*.whl")):
        return f"no transformers {TRANSFORMERS} wheel in {directory} (`nox -s tests` downloads it)"
    if python311() is None:
        return "no Python 3.11 interpreter for the target's venv"
    if not poetry_available():
        return "Poetry is not installed"
    return None


def real_catalog(directory: Path) -> BuiltCatalog:
    """Every wheel in `directory` as a served file: torch on the `cpu` index, the rest on general."""
    specs = []
    built = {}
    for path in sorted(directory.glob("*.whl")):
        name, version, *tags = path.name[: -len(".whl")].split("-")
        if len(tags) != 3:  # a build tag: not something pip download gives for these projects
            continue
        metadata = read_wheel_metadata(path)
        requires_python = email.parser.BytesParser().parsebytes(metadata).get("Requires-Python")
        spec = WheelSpec(
            name=name,
            version=version,
            tags="-".join(tags),
            requires_python=requires_python,
            indexes=("cpu",) if name == "torch" else (GENERAL,),
        )
        assert spec.filename == path.name, (spec.filename, path.name)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        specs.append(spec)
        built[path.name] = BuiltWheel(
            spec=spec,
            path=path,
            sha256=digest.hexdigest(),
            size=path.stat().st_size,
            metadata=metadata,
            metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        )
    return BuiltCatalog(catalog=Catalog(tuple(specs)), directory=directory, wheels=built)


def run_tool(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, env, *args, timeout=900)


def test_verify_installs_real_torch_and_runs_a_tiny_transformers_model(tmp_path: Path) -> None:
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    with FixtureIndex(real_catalog(wheel_dir())) as index:
        envs = tmp_path / "envs"
        envs.mkdir()
        (envs / "team.toml").write_text(
            "packages = []\n\n[indexes]\n"
            f'pytorch = "{index.base_url}/whl/{{variant}}/simple"\n'
            f'general = "{index.url()}"\n',
            encoding="utf-8",
        )
        host = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}
        (tmp_path / "cpu.json").write_text(json.dumps(host), encoding="utf-8")
        env = poetry_env(tmp_path / "home")
        env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "http-cache")
        env["STACK_RESOLVER_NO_GPU"] = "1"
        env.pop("LD_LIBRARY_PATH", None)

        resolved = run_tool(
            tmp_path,
            env,
            "resolve",
            "--team",
            "envs/team.toml",
            "--host",
            "cpu.json",
            "--target",
            "cpu",
            "--constraint",
            f"torch=={TORCH}",
            "--constraint",
            f"transformers=={TRANSFORMERS}",
        )
        assert resolved.returncode == 0, resolved.stdout + resolved.stderr

        verified = run_tool(
            tmp_path,
            env,
            "verify",
            "--team",
            "envs/team.toml",
            "--target",
            "cpu",
            "--python",
            str(python311()),
            "--json",
        )
        assert verified.stdout, verified.stderr
        report = json.loads(verified.stdout)
        checks = {c["name"]: c for c in report["checks"]}
        shown = json.dumps(report["checks"], indent=1)
        assert verified.returncode == 0, shown + verified.stderr
        assert report["ok"] is True
        assert checks["torch version"]["found"] == f"{TORCH}+cpu", shown
        assert checks["transformers version"]["found"] == TRANSFORMERS, shown
        assert (
            checks["torch.version.cuda"]["status"] == "pass"
            and checks["torch.version.cuda"]["found"] == "None"
        )
        assert checks["CPU tensor operation"]["status"] == "pass", shown
        assert checks["transformers forward pass (cpu)"]["status"] == "pass", shown
        assert checks["GPU checks"]["status"] == "skip" and "cpu build" in checks["GPU checks"]["detail"]
        # The torch wheel came from the cpu index, everything else from the general one.
        assert any(f.startswith(f"torch-{TORCH}+cpu") for f in index.served_files("cpu"))
