"""The environment `check` inspects: find its interpreter, run `inspect_torch.py` in it, and
read the answer into `Installed` (what is installed, torch's build, what torch sees)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from resolver.errors import InputError, Location
from resolver.lock.runner import Runner, run_subprocess
from resolver.verify import inspect_torch
from resolver.verify.inspect_torch import PACKAGES

PROBE_TIMEOUT_S = 120.0
_SCRUBBED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")


@dataclass(frozen=True)
class Installed:
    """What `inspect_torch.py` found in the environment."""

    executable: str
    python: str  # "3.11.7"
    free_threaded: bool
    versions: Mapping[str, str]  # distribution versions of the managed packages installed
    torch_module: str | None  # torch.__version__ (None: torch did not import)
    torch_error: str
    cuda: str | None
    hip: str | None
    available: bool
    device_count: int
    capabilities: tuple[tuple[int, int], ...]
    arch_list: tuple[str, ...]
    arch_source: str
    cuda_error: str = ""  # what torch.cuda raised while asked about devices
    # a ROCm build: each device's gcnArchName ("gfx942:sramecc+:xnack-"), as HIP numbers them
    gfx: tuple[str, ...] = ()
    xpu_available: bool = False  # torch.xpu.is_available() (Intel GPUs)
    xpu_device_count: int = 0
    xpu_error: str = ""

    @property
    def python_tag(self) -> str:
        major, minor = self.python.split(".")[:2]
        return f"{major}.{minor}{'t' if self.free_threaded else ''}"

    @property
    def torch(self) -> Version | None:
        return parse_version(self.torch_module or self.versions.get("torch"))

    @property
    def variant(self) -> str | None:
        """The build: the local label (+cu118), else what torch.version says (unlabelled wheels)."""
        torch = self.torch
        if torch is None:
            return None
        if torch.local:
            return str(torch.local)
        if self.cuda:
            return "cu" + self.cuda.replace(".", "")
        if self.hip:
            return "rocm" + ".".join(self.hip.split(".")[:2])
        return "cpu"


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_interpreter(explicit: str | None, environ: Mapping[str, str], project: Path) -> Path:
    """`--python EXE`; else the active venv (`$VIRTUAL_ENV`); else `.venv` in the project."""
    if explicit:
        path = Path(explicit)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise InputError(
                "not an executable file",
                location=Location("--python"),
                value=explicit,
                hint="give the path of the environment's python, e.g. .venv/bin/python",
            )
        return path
    active = environ.get("VIRTUAL_ENV", "").strip()
    if active:
        python = _venv_python(Path(active))
        if not python.is_file():
            raise InputError(
                "the active virtual environment has no python",
                location=Location("$VIRTUAL_ENV"),
                value=active,
                hint="activate another environment, or pass --python EXE",
            )
        return python
    local = _venv_python(project / ".venv")
    if local.is_file():
        return local
    raise InputError(
        "no environment to check: no --python, no active virtual environment, no .venv here",
        hint="pass --python path/to/python, or activate the environment",
    )


def child_environ(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k not in _SCRUBBED}
    # Never fetch a model or talk to the Hub: the smoke model is built from a config in code.
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})
    return env


def probe_environment(
    python: Path, *, runner: Runner = run_subprocess, environ: Mapping[str, str] | None = None
) -> Installed:
    """Run `inspect_torch.py` with `python`; an interpreter that cannot is bad input."""
    env = child_environ(os.environ if environ is None else environ)
    argv = [str(python), "-I", str(Path(inspect_torch.__file__).resolve())]
    try:
        done = runner(argv, cwd=Path.cwd(), env=env, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # cannot start it at all (not an executable format, ...)
        raise _not_python(python, str(exc)) from None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        return parse_inspection(json.loads(lines[-1]))
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise _not_python(python, tail) from None


def _not_python(python: Path, why: str) -> InputError:
    return InputError(
        f"cannot inspect the environment: {why[:200]}",
        location=Location("--python"),
        value=str(python),
        hint="is it a Python interpreter (3.8 or newer)?",
    )


def parse_inspection(payload: Mapping[str, Any]) -> Installed:
    packages = payload["packages"]
    facts = payload.get("torch") or {}
    versions = {p: str(packages[p]["version"]) for p in PACKAGES if packages.get(p, {}).get("version")}
    return Installed(
        executable=str(payload["executable"]),
        python=str(payload["python"]),
        free_threaded=bool(payload.get("free_threaded")),
        versions=versions,
        torch_module=packages["torch"].get("module"),
        torch_error=str(packages["torch"].get("error") or ""),
        cuda=facts.get("cuda"),
        hip=facts.get("hip"),
        available=bool(facts.get("available")),
        device_count=int(facts.get("device_count") or 0),
        capabilities=tuple((int(c[0]), int(c[1])) for c in facts.get("capabilities") or ()),
        arch_list=tuple(str(a) for a in facts.get("arch_list") or ()),
        arch_source=str(facts.get("arch_source") or ""),
        cuda_error=str(facts.get("error") or ""),
        gfx=tuple(str(g) for g in facts.get("gfx") or ()),
        xpu_available=bool(facts.get("xpu_available")),
        xpu_device_count=int(facts.get("xpu_device_count") or 0),
        xpu_error=str(facts.get("xpu_error") or ""),
    )
