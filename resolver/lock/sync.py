"""Install a target's lock into a working venv exactly: what the lock holds, at its versions and
hashes, and nothing else (packages the lock does not hold are removed).

uv does it in one step (`uv pip sync`) when it is installed (on PATH, or the `uv` package beside
the tool); otherwise pip installs with `--require-hashes` and then uninstalls the rest (pip itself
stays: it is the venv's installer).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from resolver.errors import ExternalToolError
from resolver.lock.export import read_locked_target, render_requirements
from resolver.lock.runner import Runner, run_subprocess

TIMEOUT = 3600.0
# The venv's PEP 508 marker environment (packaging's `default_environment`, run in that venv).
_MARKER_ENVIRONMENT = """
import json, os, platform, sys
impl = sys.implementation
version = "{0.major}.{0.minor}.{0.micro}".format(impl.version)
if impl.version.releaselevel != "final":
    version += impl.version.releaselevel[0] + str(impl.version.serial)
print(json.dumps({
    "implementation_name": impl.name, "implementation_version": version, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}))
"""


@dataclass(frozen=True)
class SyncOutcome:
    venv: Path
    installer: str  # "uv" or "pip"
    created: bool
    removed: tuple[str, ...]


def find_uv(environ: Mapping[str, str]) -> str | None:
    found = shutil.which("uv", path=environ.get("PATH"))
    if found is not None:
        return found
    try:
        from uv import find_uv_bin  # the `uv` package from PyPI, installed beside the tool
    except ImportError:
        return None
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def sync_target(
    directory: Path,
    venv: Path,
    environ: Mapping[str, str],
    *,
    python: str | None = None,
    use_uv: bool = True,
    notify: Callable[[str], None] = lambda _: None,
    runner: Runner = run_subprocess,
) -> SyncOutcome:
    target = read_locked_target(directory)
    uv = find_uv(environ) if use_uv else None
    env = {k: v for k, v in environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}

    def run(argv: list[str]) -> str:
        from resolver import progress

        progress.say(f"running {' '.join(argv)}", progress.DEBUG)
        long = next((word for word in argv[1:4] if word in ("venv", "install", "sync", "uninstall")), None)
        step = progress.step(f"{Path(argv[0]).name} {long}") if long else contextlib.nullcontext()
        with step:
            done = runner(argv, cwd=directory, env=env, timeout=TIMEOUT)
        if done.returncode != 0:
            tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-15:])
            raise ExternalToolError(
                f"`{' '.join(argv[:3])}` failed (exit {done.returncode}):\n{tail}",
                hint="the venv may be partly updated; fix the problem above and run sync again",
            )
        return done.stdout

    created = not venv_python(venv).exists()
    if created:
        notify(f"creating {venv}")
        interpreter = python or sys.executable
        if uv is not None:
            run([uv, "venv", "--quiet", "--python", interpreter, str(venv)])
        else:
            run([interpreter, "-m", "venv", str(venv)])
    py = str(venv_python(venv))
    with tempfile.TemporaryDirectory(prefix="stack-resolver-sync-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(render_requirements(target), encoding="utf-8")
        if uv is not None:
            notify(f"uv pip sync {directory.name}/poetry.lock into {venv}")
            # Hashes pin every file, so taking a version from whichever index has it is safe
            # (uv's default would stop at the first index naming the project).
            run([uv, "pip", "sync", "--quiet", "--python", py, "--require-hashes",
                 "--index-strategy", "unsafe-best-match", str(requirements)])  # fmt: skip
            return SyncOutcome(venv, "uv", created, ())
        notify(f"pip install {directory.name}/poetry.lock into {venv}")
        run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes",
             "--no-deps", "-r", str(requirements)])  # fmt: skip
    listed = json.loads(run([py, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"]))
    marker_env = json.loads(run([py, "-c", _MARKER_ENVIRONMENT]))
    keep = {p.name for p in target.packages if p.marker is None or Marker(p.marker).evaluate(marker_env)}
    keep.add("pip")
    extra = sorted(canonicalize_name(p["name"]) for p in listed if canonicalize_name(p["name"]) not in keep)
    if extra:
        notify(f"removing what the lock does not hold: {', '.join(extra)}")
        run([py, "-m", "pip", "uninstall", "--quiet", "--yes", "--disable-pip-version-check", *extra])
    return SyncOutcome(venv, "pip", created, tuple(extra))
