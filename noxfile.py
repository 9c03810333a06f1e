"""Sessions: thin wrappers that install the tool and call `python -m resolver ...`.

Run nox without installing it, on any system (PEP 668 ones too): `uvx nox -s NAME` or
`pipx run nox -s NAME`.

nox -s resolve            detect this machine, solve, write and lock envs/<target>/
nox -s resolve -- --host hosts/a100.json --dry-run
nox -s detect | doctor    describe this machine / check it against [requirements]
nox -s refresh_matrix     propose matrix rows from the indexes (-- --write applies them)
nox -s verify             install envs/<target>/'s lock into a fresh venv and smoke-test it
nox -s tests              the test suite (what CI runs)
nox -s lint               ruff and mypy
nox -s benchmarks         the performance targets (-- lock: one of them)
nox -s gpu                the GPU tests, on an NVIDIA machine, in the current environment (offline)
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
            # Compiled as pip compiles by default: Poetry starts on every lock, and uv skips it.
            session.run(
                "uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", str(venv_dir), POETRY,
                external=True,
            )  # fmt: skip
        else:
            session.run(sys.executable, "-m", "venv", str(venv_dir), external=True)
            session.run(
                str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", POETRY, external=True
            )
    session.env["STACK_RESOLVER_POETRY"] = str(poetry)


def _install_tool(session: nox.Session, *extras: str) -> None:
    target = ".[" + ",".join(extras) + "]" if extras else "."
    # Editable, so edits to resolver/ and matrices/ take effect at once (an installed wheel
    # carries its own copy of the matrix inside the package).
    session.install("-e", target)


@nox.session
def resolve(session: nox.Session) -> None:
    """Detect this machine, solve, and write envs/<target>/."""
    _install_tool(session, "conda")
    _install_poetry(session)
    session.run("python", "-m", "resolver", "resolve", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """One version set for every target of envs/team.toml; lock them all."""
    _install_tool(session)
    _install_poetry(session)
    session.run("python", "-m", "resolver", "lock", *session.posargs)


@nox.session
def audit(session: nox.Session) -> None:
    """What a proposed bump does to every target: nox -s audit -- torch==2.9.1"""
    _install_tool(session)
    _install_poetry(session)
    session.run("python", "-m", "resolver", "audit", *session.posargs)


@nox.session
def detect(session: nox.Session) -> None:
    _install_tool(session)
    session.run("python", "-m", "resolver", "detect", *session.posargs)


@nox.session
def doctor(session: nox.Session) -> None:
    _install_tool(session)
    session.run("python", "-m", "resolver", "doctor", *session.posargs)


@nox.session
def refresh_matrix(session: nox.Session) -> None:
    """Print the matrix rows the indexes propose (`-- --write` applies them). Not run by default."""
    _install_tool(session)
    session.run("python", "-m", "resolver", "matrix", "refresh", *session.posargs)


@nox.session
def verify(session: nox.Session) -> None:
    """Install a target's lock into a fresh venv and smoke-test it (`-- --target NAME --json`)."""
    _install_tool(session, "conda")
    _install_poetry(session)
    session.run("python", "-m", "resolver", "verify", *session.posargs)


# Real wheels for tests/verify/test_verify_real_torch.py, for CPython 3.11 on manylinux x86_64: the torch
# CPU wheel (from pip's configured find-links; the exact local version keeps pip from taking a
# CUDA build), transformers, and their dependencies; colorama because Poetry locks tqdm's Windows
# marker too. Fetching is installation, not testing: the test serves them from loopback, and skips
# when they are missing.
TEST_WHEELS = Path(".cache") / "test-wheels"
REAL_TORCH_TEST = ("torch==2.13.0+cpu", "transformers==4.57.6", "colorama")


def _fetch_test_wheels(session: nox.Session) -> None:
    platforms = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
    try:
        session.run(
            "python", "-m", "pip", "download", "--quiet", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none",
            *(arg for platform in platforms for arg in ("--platform", platform)),
            "--dest", str(TEST_WHEELS), *REAL_TORCH_TEST,
        )  # fmt: skip
    except nox.command.CommandFailed:
        session.warn(f"could not download {', '.join(REAL_TORCH_TEST)}: the real-torch test will skip")


@nox.session
def tests(session: nox.Session) -> None:
    _install_tool(session, "test", "conda")
    _install_poetry(session)
    _fetch_test_wheels(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The `gpu`-marked tests on a real NVIDIA machine. Nothing is installed (such a machine may
    reach no index): run it from an environment that has `stack-resolver[test]`; the torch to
    smoke-test is found there or named by STACK_RESOLVER_GPU_PYTHON. Skips without a GPU."""
    session.run(
        "python", "-m", "pytest", "-m", "gpu", "tests/verify/test_gpu.py", *session.posargs, external=True
    )


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Every benchmark in benchmarks/, or those named (`-- lock team`); fails when a target is
    missed. Not run by default: timings belong here, never in the tests. uv is installed at the
    version CI pins (.ci/constraints.txt): lock.py and noop.py compare against `uv lock`."""
    _install_tool(session, "test")
    _install_poetry(session)
    session.install("-c", ".ci/constraints.txt", "uv")
    # benchmarks/_shared.py holds their helpers and is no benchmark
    names = session.posargs or sorted(p.stem for p in Path("benchmarks").glob("[!_]*.py"))
    failed = []
    for name in names:
        try:
            session.run("python", f"benchmarks/{name}.py")
        except nox.command.CommandFailed:
            failed.append(name)
    if failed:
        session.error(f"target missed: {', '.join(failed)}")


@nox.session
def lint(session: nox.Session) -> None:
    _install_tool(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
