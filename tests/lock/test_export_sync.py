"""A target's lock handed to other tools: a hashed requirements.txt installed by pip with
--require-hashes, a pylock.toml installed by uv, `uv lock` on the generated pyproject.toml, and
`sync` making a venv hold exactly the lock. Real Poetry, pip and uv against the loopback index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.fixtures.cli import loopback_env, run_cli, write_project
from tests.fixtures.isolation import poetry_available
from tests.fixtures.pyindex import FixtureIndex

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

uv_package = pytest.importorskip("uv", reason="the uv package (test extra) is not installed")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not poetry_available(), reason="Poetry is not installed"),
]


@pytest.fixture(scope="module")
def locked(
    tmp_path_factory: pytest.TempPathFactory, fixture_index_session: FixtureIndex
) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("project")
    write_project(root, 'packages = ["torchvision"]\n')
    env = loopback_env(root, fixture_index_session)
    env["UV_CACHE_DIR"] = str(root / "uv-cache")
    env["UV_PYTHON_DOWNLOADS"] = "never"
    proc = run_cli(root, env, "resolve", "--host", "cpu.json", "--target", "cpu", timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return root, env


def _installed(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    return json.loads(
        subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout
    )


def _locked_versions(root: Path) -> dict[str, str]:
    lock = tomllib.loads((root / "envs" / "cpu" / "poetry.lock").read_text(encoding="utf-8"))
    return {p["name"]: p["version"] for p in lock["package"] if "Windows" not in str(p.get("markers", ""))}


def _python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def test_requirements_export_installs_with_pip_require_hashes(
    locked: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = locked
    proc = run_cli(
        root, env, "export", "--target", "cpu", "--format", "requirements", "-o", str(tmp_path / "r.txt")
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "r.txt").read_text(encoding="utf-8")
    assert "--index-url http://127.0.0.1" in text and "--extra-index-url http://127.0.0.1" in text
    assert "torch==2.8.0+cpu" in text and "--hash=sha256:" in text
    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")
    python = _python(tmp_path / "venv")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--require-hashes",
         "-r", str(tmp_path / "r.txt")],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    installed = _installed(python)
    for name, version in _locked_versions(root).items():
        assert installed.get(name) == version, name


def test_pylock_export_installs_with_uv(locked: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = locked
    proc = run_cli(root, env, "export", "--target", "cpu", "--format", "pylock")
    assert proc.returncode == 0, proc.stderr
    pylock = root / "envs" / "cpu" / "pylock.toml"
    data = tomllib.loads(pylock.read_text(encoding="utf-8"))
    assert data["lock-version"] == "1.0"
    torch = next(p for p in data["packages"] if p["name"] == "torch")
    assert torch["version"] == "2.8.0+cpu"
    assert all(w["url"].startswith("http://127.0.0.1") and w["hashes"]["sha256"] for w in torch["wheels"])
    uv = uv_package.find_uv_bin()
    made = subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(tmp_path / "venv")],
                          env=env, capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    python = _python(tmp_path / "venv")
    install = subprocess.run([uv, "pip", "install", "--python", str(python), "-r", str(pylock)],
                             env=env, capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stderr
    installed = _installed(python)
    for name, version in _locked_versions(root).items():
        assert installed.get(name) == version, name


def test_uv_lock_works_on_the_generated_pyproject(
    locked: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = locked
    work = tmp_path / "cpu"
    work.mkdir()
    shutil.copy(root / "envs" / "cpu" / "pyproject.toml", work / "pyproject.toml")
    uv = uv_package.find_uv_bin()
    proc = subprocess.run([uv, "lock", "--python", sys.executable], cwd=work, env=env,
                          capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lock = tomllib.loads((work / "uv.lock").read_text(encoding="utf-8"))
    torch = next(p for p in lock["package"] if p["name"] == "torch")
    assert torch["version"] == "2.8.0+cpu"
    assert torch["source"]["registry"].endswith("/whl/cpu/simple")


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_sync_makes_the_venv_hold_exactly_the_lock(
    locked: tuple[Path, dict[str, str]], tmp_path: Path, installer: str
) -> None:
    root, env = locked
    target_venv = tmp_path / "venv"
    extra = ["--no-uv"] if installer == "pip" else []
    first = run_cli(root, env, "sync", "--target", "cpu", "--venv", str(target_venv), *extra)
    assert first.returncode == 0, first.stderr
    python = _python(target_venv)
    wanted = _locked_versions(root)
    # something the lock does not hold, and a locked package at another version
    stray = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--index-url",
         env["STACK_RESOLVER_INDEX_URL"], "colorama"],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert stray.returncode == 0, stray.stderr
    second = run_cli(root, env, "sync", "--target", "cpu", "--venv", str(target_venv), *extra)
    assert second.returncode == 0, second.stderr
    installed = {k: v for k, v in _installed(python).items() if k != "pip"}
    assert installed == wanted
