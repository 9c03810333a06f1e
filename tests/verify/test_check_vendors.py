"""`stack-resolver check` on AMD (ROCm) and Intel (XPU) hosts, case by case from
tests/data/verify/vendor_checks.toml: a real venv holding a stub torch whose `torch.version.hip`,
`torch.cuda` (HIP: `get_arch_list()`, each device's `gcnArchName`) and `torch.xpu` report chosen
values. Each mismatch fails in GPU terms with exit status 5 and a fix found by solving."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from resolver.matrix.vocab import variant_kind
from tests.verify.test_check import _install, checks_of, failed, run_check

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CASES = tomllib.loads((Path(__file__).parents[1] / "data/verify/vendor_checks.toml").read_text())["case"]
BASE = {"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.35", "python": "3.11"}


def stub_torch(torch: dict[str, Any]) -> dict[str, str]:
    """A torch package reporting `torch`'s values: HIP devices through torch.cuda, XPU devices
    through torch.xpu."""
    gfx = list(torch.get("gfx", []))
    return {
        "torch/__init__.py": "from torch import cuda as cuda\nfrom torch import version as version\n"
        "from torch import xpu as xpu\n__version__ = version.__version__\n",
        "torch/version.py": f"__version__ = {torch['version']!r}\ncuda = {torch.get('cuda')!r}\n"
        f"hip = {torch.get('hip')!r}\n",
        "torch/cuda/__init__.py": (
            f"_GFX = {gfx!r}\n_ARCH = {list(torch.get('arch', []))!r}\n"
            "class _Props:\n    def __init__(self, arch):\n        self.gcnArchName = arch\n"
            "def is_available():\n    return bool(_GFX)\n"
            "def device_count():\n    return len(_GFX)\n"
            "def get_device_capability(index):\n    return (9, 4)\n"
            "def get_device_properties(index):\n    return _Props(_GFX[index])\n"
            "def get_arch_list():\n    return list(_ARCH) if is_available() else []\n"
        ),
        "torch/xpu/__init__.py": (
            f"_COUNT = {int(torch.get('xpu', 0))}\n"
            "def is_available():\n    return _COUNT > 0\n"
            "def device_count():\n    return _COUNT\n"
        ),
    }


def vendor_env(root: Path, torch: dict[str, Any]) -> None:
    import subprocess

    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    _install(site, "torch", torch["version"], stub_torch(torch))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vendor_case(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vendor_env(tmp_path, case["torch"])
    gpus = [{"index": i, **gpu} for i, gpu in enumerate(case["gpus"])]
    code, payload, err = run_check(tmp_path, monkeypatch, dict(BASE, gpus=gpus))
    expect = case["expect"]
    assert code == expect["exit"], (err, payload)
    assert failed(payload) == expect["failed"], payload["checks"]
    checks = checks_of(payload)
    for name in expect.get("passed", []):
        assert checks[name]["status"] == "pass", checks[name]
    first = checks[expect["failed"][0]] if expect["failed"] else None
    if "detail_contains" in expect:
        assert first is not None and expect["detail_contains"] in first["detail"], first
    if "fix_variant" in expect:
        assert first is not None and first["fixes"], first
        fix = first["fixes"][0]
        assert fix["kind"] == "install" and variant_kind(fix["apply"]["variant"]) == expect["fix_variant"]
        # the fix's torch is one whose build the solver judged to serve the host's GPUs
        assert Version(fix["apply"]["install"]["torch"]).local == fix["apply"]["variant"]
    if "fix_contains" in expect:
        assert first is not None and expect["fix_contains"] in first["fixes"][0]["summary"], first["fixes"]
    if "skipped_contains" in expect:
        skipped = [c["detail"] for c in payload["checks"] if c["status"] == "skip"]
        assert any(expect["skipped_contains"] in d for d in skipped), skipped
    assert payload["torch"]["hip"] == case["torch"].get("hip")
