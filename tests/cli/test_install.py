"""The wheel is the product: built from this checkout (and again from its sdist), installed into a
fresh venv outside the checkout, and run from a project in a temporary folder against the
loopback indexes. Also: the pinned Poetry the tool installs by itself when none is configured.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from resolver.errors import ExternalToolError
from resolver.lock.poetry import provision
from tests.fixtures.cli import write_project
from tests.fixtures.isolation import offline_env, poetry_available, poetry_env
from tests.fixtures.pyindex import FixtureIndex
from tests.fixtures.wheels import build_wheel

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (ROOT / "matrices").glob("*.toml"))


def _build(kind: str, source: Path, out: Path) -> Path:
    """Build with poetry-core's PEP 517 hooks, as pip and `python -m build` do (offline: the
    backend is this environment's poetry-core, a runtime dependency of the tool)."""
    out.mkdir(parents=True, exist_ok=True)
    code = f"from poetry.core.masonry import api; print(api.build_{kind}({str(out)!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=source, capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return out / proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    return _build("wheel", ROOT, out), _build("sdist", ROOT, out)


def test_the_wheel_carries_the_matrix_inside_the_package_and_the_license(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in SHIPPED:
            assert archive.read(f"resolver/matrices/{name}") == (ROOT / "matrices" / name).read_bytes()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)
    # Nothing outside the package: no top-level matrices/ in site-packages.
    assert not [n for n in names if n.startswith("matrices/")]


def test_the_sdist_builds_the_same_wheel(built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, sdist = built
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
        top = members[0].split("/")[0]
        assert f"{top}/LICENSE" in members
        assert {f"{top}/matrices/{name}" for name in SHIPPED} <= set(members)
        archive.extractall(tmp_path, filter="data")
    again = _build("wheel", tmp_path / top, tmp_path / "dist")
    assert again.name == wheel.name
    assert again.read_bytes() == wheel.read_bytes()


def test_nox_installs_the_poetry_the_tool_provisions() -> None:
    """One pin: noxfile.py's POETRY equals the Poetry the tool installs by itself."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    pins = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "POETRY" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert pins == [provision.POETRY_REQUIREMENT]


# --- the installed wheel, run from anywhere ---------------------------------------------------


def _fresh_venv(wheel: Path, where: Path) -> Path:
    """A venv outside the checkout holding the built wheel. The tool's dependencies come from this
    test environment through a path file (the tests never reach the internet); a path line is not
    a site dir, so this environment's editable install of the checkout stays invisible."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    return python


def _script(python: Path) -> Path:
    return python.parent / ("stack-resolver.exe" if sys.platform == "win32" else "stack-resolver")


@pytest.mark.e2e
def test_the_installed_wheel_runs_from_a_project_anywhere(
    built: tuple[Path, Path], tmp_path: Path, fixture_index: FixtureIndex
) -> None:
    python = _fresh_venv(built[0], tmp_path / "venv")
    project = tmp_path / "project"
    write_project(
        project,
        'packages = ["torchvision"]\n\n[indexes]\n'
        f'pytorch = "{fixture_index.base_url}/whl/{{variant}}/simple"\n'
        f'general = "{fixture_index.url()}"\n',
    )
    env = poetry_env(tmp_path / "home")
    env["STACK_RESOLVER_CACHE_DIR"] = str(tmp_path / "cache" / "http")
    env["STACK_RESOLVER_HTTP_RETRIES"] = "0"
    env.pop("STACK_RESOLVER_MATRIX", None)

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_script(python)), *args], cwd=project, env=env, capture_output=True, text=True,
            check=False, timeout=600,
        )  # fmt: skip

    where = subprocess.run(
        [str(python), "-c", "import resolver.matrix.load as m; print(m.__file__, m.default_matrix_dir())"],
        cwd=project, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), where
    validated = tool("matrix", "validate")
    assert validated.returncode == 0, validated.stderr
    assert "matrix OK" in validated.stdout
    dry = tool("resolve", "--dry-run", "--json", "--host", "h100.json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["variant"].startswith("cu")
    if not poetry_available():
        pytest.skip("Poetry is not installed: the real resolve is not run")
    if os.environ.get("STACK_RESOLVER_POETRY"):
        env["STACK_RESOLVER_POETRY"] = os.environ["STACK_RESOLVER_POETRY"]
    real = tool("resolve", "--host", "cpu.json", "--target", "cpu", "--json")
    assert real.returncode == 0, real.stderr + real.stdout
    assert json.loads(real.stdout)["torch"].endswith("+cpu")
    assert (project / "envs" / "cpu" / "poetry.lock").is_file()


# --- the pinned Poetry, provisioned once ------------------------------------------------------


def _fake_poetry_links(where: Path) -> Path:
    """A find-links folder holding a stand-in `poetry` 2.5.1 whose program prints its version."""
    data = f"poetry-{provision.POETRY_VERSION}.data/scripts/poetry"
    script = f"#!python\nprint('Poetry (version {provision.POETRY_VERSION})')\n"
    files = {"poetry/__init__.py": "", data: script}
    wheel = build_wheel(where, "poetry", provision.POETRY_VERSION, files=files)
    # pip makes a script executable only when its archive entry says so.
    with zipfile.ZipFile(wheel) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(wheel, "w") as archive:
        for info, content in entries:
            if info.filename == data:
                info.external_attr = 0o100755 << 16
            archive.writestr(info, content)
    return where


def _provision_env(tmp_path: Path, links: Path) -> dict[str, str]:
    env = offline_env(tmp_path / "home")
    empty = tmp_path / "empty-index"
    empty.mkdir(exist_ok=True)
    env.update(
        {
            "STACK_RESOLVER_CACHE_DIR": str(tmp_path / "cache" / "http"),
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(links),
            # uv has no variable for --no-index: its default index is an empty local folder, so
            # it never races the find-links folder against a network request
            "UV_DEFAULT_INDEX": empty.as_uri(),
            "UV_FIND_LINKS": str(links),
            # no uv.toml or pyproject.toml found above the working folder may add an index
            "UV_NO_CONFIG": "1",
            "PIP_CONFIG_FILE": os.devnull,
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "UV_PYTHON_DOWNLOADS": "never",
            "PATH": os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p) or os.defpath,
        }
    )
    return env


@pytest.mark.e2e
def test_the_pinned_poetry_is_installed_once_into_the_cache(tmp_path: Path) -> None:
    env = _provision_env(tmp_path, _fake_poetry_links(tmp_path / "links"))
    said: list[str] = []
    executable = provision.ensure_poetry(env, notify=said.append)
    assert executable.is_relative_to(tmp_path / "cache" / "poetry" / provision.POETRY_VERSION)
    assert any("installing it into" in line for line in said), said
    ran = subprocess.run([str(executable), "--version"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == f"Poetry (version {provision.POETRY_VERSION})"
    again: list[str] = []
    assert provision.ensure_poetry(env, notify=again.append) == executable
    assert again == []  # once: the second run says nothing and installs nothing
    assert provision.installed_poetry(env) == executable


@pytest.mark.e2e
def test_a_failed_poetry_install_leaves_nothing_half_made(tmp_path: Path) -> None:
    env = _provision_env(tmp_path, tmp_path / "empty-links")
    (tmp_path / "empty-links").mkdir()
    with pytest.raises(ExternalToolError, match="could not install poetry=="):
        provision.ensure_poetry(env, notify=lambda _: None)
    assert not provision.provision_home(env).exists()
    assert provision.installed_poetry(env) is None
