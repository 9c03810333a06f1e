"""Sessions: thin wrappers that install the tool and call `python -m resolver ...`.

nox -s resolve            detect this machine, solve, write and lock envs/<target>/
nox -s resolve -- --host hosts/a100.json --dry-run
nox -s detect | doctor    describe this machine / check it against [requirements]
nox -s tests              the test suite (what CI runs)
nox -s lint               ruff and mypy
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

# uv makes venvs fast where it is installed; never let it download a Python of its own.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
nox.options.default_venv_backend = "uv|virtualenv" if shutil.which("uv") else "virtualenv"
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

# Pinned so every lock on every machine is made by the same Poetry.
POETRY = "poetry==2.5.1"


def _install_poetry(session: nox.Session) -> None:
    """The pinned Poetry in a venv of its own (its dependencies clash with conda-lock's), handed
    to the tool through STACK_RESOLVER_POETRY."""
    venv_dir = Path(session.virtualenv.location).parent / "_poetry"
    poetry = venv_dir / ("Scripts" if sys.platform == "win32" else "bin") / "poetry"
    if not poetry.exists():
        if shutil.which("uv"):
            session.run("uv", "venv", "--quiet", "--python", sys.executable, str(venv_dir), external=True)
            session.run("uv", "pip", "install", "--quiet", "--python", str(venv_dir), POETRY, external=True)
        else:
            session.run(sys.executable, "-m", "venv", str(venv_dir), external=True)
            session.run(
                str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", POETRY, external=True
            )
    session.env["STACK_RESOLVER_POETRY"] = str(poetry)


def _install_tool(session: nox.Session, *extras: str) -> None:
    target = ".[" + ",".join(extras) + "]" if extras else "."
    # Editable, so the shipped matrices/ next to the package are found.
    session.install("-e", target)


@nox.session
def resolve(session: nox.Session) -> None:
    """Detect this machine, solve, and write envs/<target>/."""
    _install_tool(session)
    _install_poetry(session)
    session.run("python", "-m", "resolver", "resolve", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """One version set for every target of envs/team.toml; lock them all."""
    _install_tool(session)
    _install_poetry(session)
    session.run("python", "-m", "resolver", "lock", *session.posargs)


@nox.session
def detect(session: nox.Session) -> None:
    _install_tool(session)
    session.run("python", "-m", "resolver", "detect", *session.posargs)


@nox.session
def doctor(session: nox.Session) -> None:
    _install_tool(session)
    session.run("python", "-m", "resolver", "doctor", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    _install_tool(session, "test")
    _install_poetry(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    _install_tool(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
