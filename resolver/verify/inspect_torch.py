"""Run INSIDE an environment `stack-resolver check` inspects (by file path, `python -I`): read
what is installed and print one JSON document, changing nothing and running no kernel.

Standard library only (the environment has neither the resolver nor its dependencies); it imports
torch and nothing else. It reports Python, the four packages' versions, torch's CUDA or HIP build,
its arch list and the devices it sees: through `torch.cuda` (which a ROCm build serves through
HIP; then each device's gcnArchName, e.g. "gfx942:sramecc+:xnack-") and through `torch.xpu`
(Intel GPUs). Anything the libraries print goes to stderr, so stdout carries only the JSON.

    python -I inspect_torch.py
    -> {"python", "free_threaded", "executable", "packages": {NAME: {"version", "module", "error"}},
        "torch": {"cuda", "hip", "available", "device_count", "capabilities", "arch_list",
                  "arch_source", "error", "gfx", "xpu_available", "xpu_device_count", "xpu_error"}}
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
import sysconfig
from collections.abc import Sequence
from typing import Any

PACKAGES = ("torch", "torchvision", "torchaudio", "transformers")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]


def _import(name: str) -> tuple[Any, str]:
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # any import failure is a finding, not a crash
        return None, f"import {name} failed: {_error_text(exc)}"


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_facts(torch: Any) -> dict[str, Any]:
    """torch's build and what it sees; each part best effort (a stub or a broken build)."""
    version = getattr(torch, "version", None)
    facts: dict[str, Any] = {
        "cuda": getattr(version, "cuda", None),
        "hip": getattr(version, "hip", None),
        "available": False,
        "device_count": 0,
        "capabilities": [],
        "arch_list": [],
        "arch_source": "",
        "error": "",
        "gfx": [],  # per device, its gcnArchName (a ROCm build)
        "xpu_available": False,
        "xpu_device_count": 0,
        "xpu_error": "",
    }
    cuda: Any = getattr(torch, "cuda", None)
    try:
        facts["available"] = bool(cuda.is_available()) if cuda is not None else False
        if facts["available"]:
            count = facts["device_count"] = int(cuda.device_count())
            facts["capabilities"] = [list(cuda.get_device_capability(i)) for i in range(count)]
            facts["arch_list"] = [str(a) for a in cuda.get_arch_list()]
            facts["arch_source"] = "torch.cuda.get_arch_list()"
            if facts["hip"]:
                facts["gfx"] = [str(cuda.get_device_properties(i).gcnArchName) for i in range(count)]
    except Exception as exc:  # e.g. a driver too old for the build: a finding, not a crash
        facts["error"] = _error_text(exc)
    xpu: Any = getattr(torch, "xpu", None)
    try:
        facts["xpu_available"] = bool(xpu.is_available()) if xpu is not None else False
        facts["xpu_device_count"] = int(xpu.device_count()) if facts["xpu_available"] else 0
    except Exception as exc:
        facts["xpu_error"] = _error_text(exc)
    if not facts["arch_list"] and (facts["cuda"] or facts["hip"]):
        # get_arch_list() is empty while CUDA is unavailable; the compiled-in list is still there.
        try:
            flags = str(torch._C._cuda_getArchFlags() or "")
            facts["arch_list"] = flags.split()
            facts["arch_source"] = "torch._C._cuda_getArchFlags()" if flags else ""
        except Exception:
            pass
    return facts


def inspect_environment() -> dict[str, Any]:
    packages: dict[str, Any] = {}
    for package in PACKAGES:
        packages[package] = {"version": _dist_version(package), "module": None, "error": ""}
    facts: dict[str, Any] = {}
    if packages["torch"]["version"] is not None:
        torch, error = _import("torch")
        packages["torch"]["error"] = error
        if torch is not None:
            found = getattr(torch, "__version__", None)
            packages["torch"]["module"] = None if found is None else str(found)
            facts = torch_facts(torch)
    return {
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "executable": sys.executable,
        "packages": packages,
        "torch": facts,
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -I inspect_torch.py\n")
        return 2
    stdout = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the JSON document
    try:
        payload = inspect_environment()
    finally:
        sys.stdout = stdout
    stdout.write(json.dumps(payload) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
