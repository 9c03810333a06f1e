"""The real machine behind `Probes.system()`: platform, files, programs, NVML, memory. Every
function here is replaced by a fake in the tests; nothing here decides anything."""

from __future__ import annotations

import os
import platform as platformmod
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SUBPROCESS_TIMEOUT_S = 10.0


class RunResult(Protocol):
    """What `run` returns: the shape of `subprocess.CompletedProcess[str]`."""

    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


@dataclass(frozen=True)
class PlatformInfo:
    """The running interpreter's view of the machine (`platform`, `sys`)."""

    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    machine: str  # platform.machine(): "x86_64", "aarch64", "arm64", "AMD64"
    version: str = ""  # platform.version(): on Windows "10.0.22631"
    mac_ver: str = ""  # platform.mac_ver()[0]: "14.5" (or "10.16" under SYSTEM_VERSION_COMPAT)
    python: tuple[int, int] = (3, 11)
    free_threaded: bool = False


def system_platform() -> PlatformInfo:
    return PlatformInfo(
        system=platformmod.system(),
        machine=platformmod.machine(),
        version=platformmod.version(),
        mac_ver=platformmod.mac_ver()[0],
        python=(sys.version_info.major, sys.version_info.minor),
        free_threaded=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    )


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def run(argv: Sequence[str], environ: Mapping[str, str]) -> RunResult | None:
    # Resolve on the probes' own PATH, so a test's fake nvidia-smi (or a user's PATH) is honoured.
    executable = shutil.which(argv[0], path=environ.get("PATH", os.defpath))
    if executable is None:
        return None
    return subprocess.run(
        [executable, *argv[1:]],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=SUBPROCESS_TIMEOUT_S,
        env=dict(environ),
        check=False,
    )


def load_nvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def confstr(name: str) -> str | None:
    try:
        return os.confstr(name)
    except (AttributeError, ValueError, OSError):  # not POSIX, or a name this libc lacks (musl)
        return None


def cpu_count() -> int | None:
    # The CPUs this process may run on (taskset, cgroups cpusets, Slurm), not the whole box.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def memory_bytes() -> int | None:
    if sys.platform == "win32":
        import ctypes

        class _MemoryStatusEx(ctypes.Structure):
            _fields_ = [
                ("dwLength", ctypes.c_ulong),
                ("dwMemoryLoad", ctypes.c_ulong),
                ("ullTotalPhys", ctypes.c_ulonglong),
                ("ullAvailPhys", ctypes.c_ulonglong),
                ("ullTotalPageFile", ctypes.c_ulonglong),
                ("ullAvailPageFile", ctypes.c_ulonglong),
                ("ullTotalVirtual", ctypes.c_ulonglong),
                ("ullAvailVirtual", ctypes.c_ulonglong),
                ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
            ]

        status = _MemoryStatusEx()
        status.dwLength = ctypes.sizeof(status)
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return None
        return int(status.ullTotalPhys)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
