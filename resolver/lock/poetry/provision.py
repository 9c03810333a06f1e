"""The pinned Poetry, installed by the tool itself when none is configured.

Poetry cannot share an environment with conda-lock (their dependencies clash), so it lives in a
venv of its own under the tool's cache, made once per pinned version and reused after. A file
lock keeps parallel runs from installing it twice; a marker written last means a half-made venv
(a killed install) is made again, never used.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from filelock import FileLock

from resolver.dirs import cache_root
from resolver.errors import ExternalToolError
from resolver.lock.runner import Runner, run_subprocess

# The Poetry every lock is made with (noxfile.py installs the same one; a test keeps them equal).
POETRY_VERSION = "2.5.1"
POETRY_REQUIREMENT = f"poetry=={POETRY_VERSION}"
_MARKER = ".stack-resolver-installed"
INSTALL_TIMEOUT = 900.0


def _stderr(message: str) -> None:
    from resolver import progress

    if progress.current().stream is not None:
        progress.say(message)
    else:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def provision_home(environ: Mapping[str, str]) -> Path:
    return cache_root(environ) / "poetry" / POETRY_VERSION


def _bin(venv: Path, name: str) -> Path:
    if sys.platform == "win32":
        return venv / "Scripts" / f"{name}.exe"
    return venv / "bin" / name


def installed_poetry(environ: Mapping[str, str]) -> Path | None:
    """The provisioned Poetry, when a complete install exists."""
    home = provision_home(environ)
    executable = _bin(home, "poetry")
    return executable if (home / _MARKER).is_file() and executable.is_file() else None


def ensure_poetry(
    environ: Mapping[str, str],
    *,
    notify: Callable[[str], None] = _stderr,
    runner: Runner = run_subprocess,
) -> Path:
    """Return the provisioned Poetry's executable, installing it first if needed (and saying so).
    uv makes the venv when it is on PATH; the standard `venv` + pip otherwise. Either reads its
    own configuration (pip.conf, `PIP_INDEX_URL`, uv.toml) for where to download from."""
    found = installed_poetry(environ)
    if found is not None:
        return found
    home = provision_home(environ)
    home.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home) + ".lock"):
        found = installed_poetry(environ)  # another run may have finished it while we waited
        if found is not None:
            return found
        shutil.rmtree(home, ignore_errors=True)
        notify(f"Poetry {POETRY_VERSION} is not configured: installing it into {home} (once)")
        env = {k: v for k, v in environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        uv = shutil.which("uv", path=environ.get("PATH"))
        python = _bin(home, "python")
        steps: list[list[str]]
        if uv is not None:
            steps = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(home)],
                [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python),
                 POETRY_REQUIREMENT],
            ]  # fmt: skip
        else:
            steps = [
                [sys.executable, "-m", "venv", str(home)],
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 POETRY_REQUIREMENT],
            ]  # fmt: skip
        for argv in steps:
            completed = runner(argv, cwd=home.parent, env=env, timeout=INSTALL_TIMEOUT)
            if completed.returncode != 0:
                shutil.rmtree(home, ignore_errors=True)
                tail = "\n".join((completed.stderr.strip() or completed.stdout.strip()).splitlines()[-10:])
                raise ExternalToolError(
                    f"could not install {POETRY_REQUIREMENT} into {home} "
                    f"(`{' '.join(argv[:3])}` exit {completed.returncode}):\n{tail}",
                    hint="check the package index configuration (pip.conf, PIP_INDEX_URL), or point "
                    "STACK_RESOLVER_POETRY at an installed Poetry",
                )
        executable = _bin(home, "poetry")
        if not executable.is_file():
            shutil.rmtree(home, ignore_errors=True)
            raise ExternalToolError(
                f"{POETRY_REQUIREMENT} installed into {home} but has no `poetry` program",
                hint="point STACK_RESOLVER_POETRY at an installed Poetry",
            )
        (home / _MARKER).write_text(POETRY_REQUIREMENT + "\n", encoding="utf-8")
        notify(f"Poetry {POETRY_VERSION} installed: {executable}")
        return executable
