"""`stack-resolver verify`: install a target's lock into a fresh virtual environment and prove it works.

Steps, each a plain function: find `envs/<target>/`, read what it promises (`poetry.lock` for the
versions, `resolution.json` for the variant and CUDA version), create a fresh venv, install the
lock exactly (`poetry sync --no-root`, i.e. `poetry install --sync`), run `resolver/smoke.py` with
the venv's interpreter, and turn its JSON into a report of `Check`s. Every subprocess goes through
the injectable runner; the host (for the GPU count) is passed in.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver import files, progress
from resolver.config import load_toml
from resolver.errors import ExternalToolError, InputError, Location
from resolver.host.model import Host
from resolver.index.client import IndexClient
from resolver.lock.poetry.tool import LOCKFILE, PoetryTool
from resolver.lock.record import RESOLUTION
from resolver.lock.runner import Runner, run_subprocess
from resolver.lock.target import CONDA_LOCKFILE, target_name_for
from resolver.matrix.model import variant_cuda, variant_kind
from resolver.matrix.wheeltags import wheel_fits
from resolver.verify import smoke
from resolver.verify.smoke import PACKAGES, Check
from resolver.verify.vendors import expected_devices, host_gfx, smoke_payload

__all__ = [
    "Check",
    "Expectations",
    "Report",
    "create_venv",
    "find_target",
    "hash_checks",
    "install_lock",
    "interpreter_for",
    "list_targets",
    "lock_checks",
    "lock_format_for",
    "read_expectations",
    "render_report",
    "report_json",
    "run_smoke",
    "verify_target",
]

SMOKE_TIMEOUT_S = 600.0
VENV_TIMEOUT_S = 300.0
FORMATS = ("poetry", "conda")


@dataclass(frozen=True)
class Expectations:
    """What a target promises: locked versions, the resolution's versions, variant and CUDA."""

    target: str
    python: str
    variant: str
    cuda: str | None
    #: package -> version in poetry.lock (only the managed packages the lock holds)
    locked: Mapping[str, str]
    #: package -> version in resolution.json (None where the resolution pins nothing)
    resolved: Mapping[str, str | None]
    # the devices the build should see: those CUDA sees (CUDA_VISIBLE_DEVICES, MIG) for a CUDA
    # build, the AMD GPUs for a ROCm build, the Intel GPUs for an XPU build
    host_gpus: int
    gfx_targets: tuple[str, ...] = ()  # the host's AMD gfx targets (a ROCm build must carry them)

    @property
    def gpu_target(self) -> bool:
        return variant_kind(self.variant) == "cuda"

    def smoke_argument(self) -> str:
        payload = smoke_payload(self.locked, self.variant, self.cuda, self.host_gpus, self.gfx_targets)
        return json.dumps(payload, sort_keys=True)


@dataclass(frozen=True)
class Report:
    target: str
    directory: str
    variant: str
    python: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)


# --- finding the target ------------------------------------------------------------------------


def list_targets(envs_dir: Path) -> list[str]:
    """Names of the target folders under `envs_dir` that hold a poetry.lock or a conda-lock.yml."""
    if not envs_dir.is_dir():
        return []
    return sorted(
        p.name for p in envs_dir.iterdir() if (p / LOCKFILE).is_file() or (p / CONDA_LOCKFILE).is_file()
    )


def _record(directory: Path) -> dict[str, Any]:
    path = directory / RESOLUTION
    if not path.exists():
        raise InputError(
            "the target has no resolution.json",
            location=Location(str(path)),
            hint="run `stack-resolver resolve`",
        )
    data = files.load_json(path, "resolution record", hint="run `stack-resolver resolve` again")
    if not isinstance(data, dict) or not isinstance(data.get("resolution"), dict):
        raise InputError(
            "no 'resolution' object", location=Location(str(path)), hint="run `stack-resolver resolve` again"
        )
    return data


def _derived(host: Host, directory: Path) -> tuple[str, str] | None:
    """(the name `resolve` gives this target on `host`, its variant)."""
    try:
        resolution = _record(directory)["resolution"]
    except InputError:
        return None
    variant, python = str(resolution.get("variant")), str(resolution.get("python"))
    # one naming rule for resolve and verify
    return target_name_for(host, variant, python), variant


def find_target(envs_dir: Path, name: str | None, host: Host) -> Path:
    """`--target NAME`; else the only target; else the one named for this host."""
    targets = list_targets(envs_dir)
    listed = ", ".join(targets) or "none"
    if name is not None:
        if name not in targets:
            raise InputError(
                f"no locked target '{name}' in {envs_dir}",
                value=name,
                hint=f"locked targets: {listed}; run `stack-resolver resolve --target {name}`",
            )
        return envs_dir / name
    if not targets:
        raise InputError(
            f"no locked target in {envs_dir}", hint="run `stack-resolver resolve` (or `nox -s resolve`) first"
        )
    if len(targets) == 1:
        return envs_dir / targets[0]
    derived = {t: _derived(host, envs_dir / t) for t in targets}
    matching = [t for t, named in derived.items() if named is not None and named[0] == t]
    if len(matching) > 1 and host.gpus:
        # A CPU target's name fits every host; on a GPU machine its CUDA target is the one meant.
        matching = [t for t in matching if (derived[t] or ("", "cpu"))[1] != "cpu"]
    if len(matching) == 1:
        return envs_dir / matching[0]
    raise InputError(
        f"{len(targets)} targets in {envs_dir} and none is named for this machine",
        hint=f"choose one with --target: {listed}",
    )


def read_expectations(directory: Path, host: Host) -> Expectations:
    lock_path = directory / LOCKFILE
    lock = load_toml(lock_path, "lock file")
    locked: dict[str, str] = {}
    for package in lock.get("package", []):
        if isinstance(package, dict) and package.get("name") in PACKAGES:
            locked[str(package["name"])] = str(package.get("version"))
    resolution = _record(directory)["resolution"]
    variant = resolution.get("variant")
    if not isinstance(variant, str) or variant_kind(variant) is None:
        raise InputError(
            "resolution.json names no valid variant",
            location=Location(str(directory / RESOLUTION), key="resolution.variant"),
            value=variant,
            hint="run `stack-resolver resolve` again",
        )
    cuda = variant_cuda(variant)
    resolved = {p: (str(resolution[p]) if resolution.get(p) is not None else None) for p in PACKAGES}
    return Expectations(
        target=directory.name,
        python=str(resolution.get("python")),
        variant=variant,
        cuda=None if cuda is None else str(cuda),
        locked=locked,
        resolved=resolved,
        host_gpus=expected_devices(host, variant),
        gfx_targets=host_gfx(host),
    )


def lock_checks(expect: Expectations) -> list[Check]:
    """The lock holds the versions the resolver chose (a hand-edited or stale lock does not)."""
    checks = []
    for package in PACKAGES:
        locked, resolved = expect.locked.get(package), expect.resolved.get(package)
        if locked is None or resolved is None:
            continue
        checks.append(
            Check(
                f"{package} locked as resolved",
                "pass" if locked == resolved else "fail",
                f"{resolved} (resolution.json)",
                f"{locked} (poetry.lock)",
                "" if locked == resolved else "the lock was edited or is stale: run `stack-resolver resolve`",
            )
        )
    return checks


# --- the environment ------------------------------------------------------------------------------


def _running_matches(python: str) -> bool:
    free_threaded = python.endswith("t")
    running_ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return (
        python.rstrip("t") == f"{sys.version_info[0]}.{sys.version_info[1]}" and free_threaded == running_ft
    )


def interpreter_for(
    python: str, explicit: str | None = None, which: Callable[[str], str | None] = shutil.which
) -> str:
    """The interpreter for the target's Python: `--python`, this one if it matches, else pythonX.Y."""
    if explicit:
        return explicit
    if _running_matches(python):
        return sys.executable
    found = which(f"python{python}")
    if found is None:
        raise InputError(
            f"the target needs Python {python} and no python{python} is on PATH",
            hint="install it, or pass its path with --python",
        )
    return found


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _venv_env(environ: Mapping[str, str], venv: Path) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX"}}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{_venv_python(venv).parent}{os.pathsep}{environ.get('PATH', '')}"
    return env


def create_venv(
    venv: Path, interpreter: str, *, runner: Runner, environ: Mapping[str, str], uv: str | None
) -> Path:
    """A fresh venv at `venv` (uv when given, else the interpreter's own `venv`); its python."""
    if uv is not None:
        env = dict(environ, UV_PYTHON_DOWNLOADS="never")
        argv = [uv, "venv", "--quiet", "--python", interpreter, str(venv)]
    else:
        env = dict(environ)
        argv = [interpreter, "-m", "venv", "--without-pip", str(venv)]
    done = runner(argv, cwd=venv.parent, env=env, timeout=VENV_TIMEOUT_S)
    python = _venv_python(venv)
    if done.returncode != 0 or not python.exists():
        tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-10:])
        raise ExternalToolError(
            f"could not create a virtual environment with {interpreter} (exit {done.returncode}):\n{tail}",
            hint="check the interpreter, or pass another with --python",
        )
    return python


def install_lock(directory: Path, venv: Path, tool: PoetryTool) -> Check:
    """`poetry sync --no-root` into `venv`: exactly the lock, nothing else. A failure is a check."""
    expected = "poetry sync installs the lock"
    poetry = PoetryTool(argv=tool.argv, runner=tool.runner, environ=_venv_env(tool.environ, venv))
    try:
        poetry.run(["sync", "--no-root"], directory)
    except ExternalToolError as exc:
        return Check("install the lock", "fail", expected, "failed", exc.render())
    return Check("install the lock", "pass", expected, "installed")


def hash_checks(
    directory: Path, expect: Expectations, platform: str, output: str, client: IndexClient
) -> list[Check]:
    """After a failed install: download locked files through the index client (streamed, the
    sha256 computed on the way) and compare each with poetry.lock. The files Poetry's output
    names are checked; if it names none, every locked file for this platform and Python. Only
    packages from a source the lock names (a URL) can be checked."""
    lock = load_toml(directory / LOCKFILE, "lock file")
    candidates: list[tuple[str, str, str, str, str]] = []  # package, version, file, hash, index
    for package in lock.get("package", []):
        source = package.get("source") if isinstance(package, dict) else None
        index = source.get("url") if isinstance(source, dict) else None
        if not isinstance(index, str):
            continue
        name, version = str(package.get("name")), str(package.get("version"))
        for entry in package.get("files", []):
            candidates.append((name, version, str(entry.get("file")), str(entry.get("hash", "")), index))
    named = [c for c in candidates if c[2] in output or urllib.parse.quote(c[2]) in output]
    chosen = named or [c for c in candidates if wheel_fits(c[2], c[1], expect.python, platform)]
    checks: list[Check] = []
    try:
        for number, (name, version, filename, locked, index) in enumerate(chosen, 1):
            progress.status(f"checking hashes: downloading {number}/{len(chosen)} files")
            listed = {f.filename: f for f in client.files(index, name)}
            if filename not in listed:
                checks.append(
                    Check(f"hash of {filename}", "fail", f"{locked} (poetry.lock)", "not listed", index)
                )
                continue
            url = listed[filename].url.split("#", 1)[0]
            actual = "sha256:" + client.file_sha256(url)
            if actual != locked:
                checks.append(
                    Check(
                        f"hash of {filename}",
                        "fail",
                        f"{locked} (poetry.lock)",
                        f"{actual} (served)",
                        f"{name} {version}: the index serves other bytes than were locked: {url}",
                    )
                )
    except ExternalToolError as exc:
        return [Check("hashes of the locked files", "skip", "-", "-", f"cannot download: {exc.render()}")]
    if not checks and chosen:
        checks.append(
            Check(
                "hashes of the locked files",
                "pass",
                "sha256 as in poetry.lock",
                f"{len(chosen)} files match",
                "the install failed for another reason",
            )
        )
    return checks


def run_smoke(
    python: Path, expect: Expectations, *, runner: Runner, environ: Mapping[str, str]
) -> tuple[str, list[Check]]:
    """Run smoke.py in the target's interpreter; (its Python version, its checks)."""
    venv = python.parent.parent
    env = _venv_env(environ, venv)
    # Never fetch a model or talk to the Hub: the smoke model is built from a config in code.
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})
    argv = [str(python), "-I", str(Path(smoke.__file__).resolve()), expect.smoke_argument()]
    done = runner(argv, cwd=venv, env=env, timeout=SMOKE_TIMEOUT_S)
    return parse_smoke_output(done.stdout, done.stderr, done.returncode)


def parse_smoke_output(stdout: str, stderr: str, returncode: int) -> tuple[str, list[Check]]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        payload = json.loads(lines[-1])
        checks = [Check(**item) for item in payload["checks"]]
        return str(payload.get("python", "?")), checks
    except (IndexError, ValueError, KeyError, TypeError):
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        return "?", [
            Check("smoke test", "fail", "a JSON report", f"exit {returncode}, no report", tail or "no output")
        ]


def lock_format_for(directory: Path, requested: str | None) -> str:
    """`--format`, else poetry when the target has a poetry.lock, else conda."""
    files = {"poetry": LOCKFILE, "conda": CONDA_LOCKFILE}
    if requested is not None:
        if requested not in files:
            raise InputError("unknown lock format", value=requested, hint=f"one of {', '.join(FORMATS)}")
        if not (directory / files[requested]).is_file():
            raise InputError(
                f"target '{directory.name}' has no {files[requested]}",
                location=Location(str(directory)),
                hint=f"resolve it with --format {requested}, or verify another format",
            )
        return requested
    return "poetry" if (directory / LOCKFILE).is_file() else "conda"


def verify_target(
    directory: Path,
    host: Host,
    *,
    interpreter: str | None = None,
    runner: Runner = run_subprocess,
    environ: Mapping[str, str] | None = None,
    tool: PoetryTool | None = None,
    uv: str | None = None,
    keep: Path | None = None,
    which: Callable[[str], str | None] = shutil.which,
    client: IndexClient | None = None,
    lock_format: str | None = None,
) -> Report:
    """Install `directory`'s lock into a fresh venv and run the smoke test there.

    The venv lives in a scratch folder that is removed afterwards, or at `keep` (which must not
    exist yet) and stays. When the install fails, `hash_checks` tells whether an index serves
    files whose bytes differ from the lock's hashes (through `client`, by default one with the
    HTTP settings of the environment). A conda target goes to `resolver/verify/conda.py`, chosen
    by `resolver.verify.target.verify_target`; this function verifies a Poetry lock only."""
    environ = dict(os.environ) if environ is None else dict(environ)
    tool = tool or PoetryTool(runner=runner, environ=environ)
    expect = read_expectations(directory, host)
    checks = lock_checks(expect)
    python = interpreter_for(expect.python, interpreter, which)
    if keep is not None and keep.exists():
        raise InputError("the venv folder already exists", value=str(keep), hint="give a new path to --keep")
    scratch: Path | None = None
    if keep is None:
        scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-verify-"))
        venv = scratch / "venv"
    else:
        venv = keep.resolve()
        venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        venv_python = create_venv(venv, python, runner=runner, environ=environ, uv=uv)
        install = install_lock(directory, venv, tool)
        checks.append(install)
        version = f"{expect.python} (not installed)"
        if install.status == "pass":
            version, found = run_smoke(venv_python, expect, runner=runner, environ=environ)
            checks.extend(found)
        else:
            if client is None:
                from resolver.clients import make_client

                client = make_client(environ, offline=False)
            checks.extend(hash_checks(directory, expect, host.platform, install.detail, client))
            checks.append(Check("smoke test", "skip", "-", "-", "the lock did not install"))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return Report(expect.target, str(directory), expect.variant, version, tuple(checks))


# --- rendering ----------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    return {
        "target": report.target,
        "directory": report.directory,
        "variant": report.variant,
        "python": report.python,
        "ok": report.ok,
        "checks": [
            {
                "name": c.name,
                "status": c.status,
                "expected": c.expected,
                "found": c.found,
                "detail": c.detail,
                "gpu": c.gpu,
            }
            for c in report.checks
        ],
    }


def render_report(report: Report) -> str:
    head = f"verify {report.directory} (variant {report.variant}, Python {report.python})"
    names = [("[gpu] " if c.gpu else "") + c.name for c in report.checks]
    name_width = max((len(n) for n in names), default=0) + 2
    lines = [head]
    for check, name in zip(report.checks, names, strict=True):
        line = f"{check.status.upper():<6}{name:<{name_width}}"
        if check.status == "skip" and check.found == "-":
            line += check.detail
        else:
            line += f"expected {check.expected}, found {check.found}"
            if check.detail:
                line += f"  ({_one_line(check.detail)})"
        lines.append(line.rstrip())
    counts = {s: sum(c.status == s for c in report.checks) for s in ("pass", "fail", "skip")}
    summary = f"{len(report.checks)} checks: {counts['pass']} passed, {counts['fail']} failed"
    if counts["skip"]:
        summary += f", {counts['skip']} skipped"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-8:])
