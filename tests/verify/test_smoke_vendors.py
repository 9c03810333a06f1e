"""The smoke module on ROCm and XPU builds, in process, with a fake torch whose tiny tensors run
on the devices it is told exist: `torch.version.hip` against the variant, HIP behind
`torch.cuda`, each AMD GPU's gfx target in the arch list, a matrix product on `cuda:i` (HIP) or
`xpu:i`; and the mismatches (a CUDA build where ROCm was expected, a missing gfx target, no XPU)."""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Sequence
from typing import Any

import pytest

from resolver.verify import smoke


class FakeTensor:
    """A 2-D tensor on a device; moving it to a device the fake torch lacks raises, as torch does."""

    def __init__(self, rows: Sequence[Sequence[float]], torch: FakeTorch, device: str = "cpu") -> None:
        self.rows, self.torch, self.device = [list(r) for r in rows], torch, device

    def to(self, device: str) -> FakeTensor:
        kind, _, index = device.partition(":")
        if int(index or 0) >= self.torch.devices.get(kind, 0):
            raise RuntimeError(f"{kind.upper()} error: invalid device ordinal")
        return FakeTensor(self.rows, self.torch, device)

    def cpu(self) -> FakeTensor:
        return FakeTensor(self.rows, self.torch)

    def __matmul__(self, other: FakeTensor) -> FakeTensor:
        assert self.device == other.device, (self.device, other.device)
        columns = list(zip(*other.rows, strict=True))
        rows = [[sum(a * b for a, b in zip(row, col, strict=True)) for col in columns] for row in self.rows]
        self.torch.ran_on.add(self.device)
        return FakeTensor(rows, self.torch, self.device)

    def __sub__(self, other: FakeTensor) -> FakeTensor:
        rows = [
            [a - b for a, b in zip(r, s, strict=True)] for r, s in zip(self.rows, other.rows, strict=True)
        ]
        return FakeTensor(rows, self.torch, self.device)

    def abs(self) -> FakeTensor:
        return FakeTensor([[abs(v) for v in row] for row in self.rows], self.torch, self.device)

    def max(self) -> float:
        return max(v for row in self.rows for v in row)

    def tolist(self) -> list[list[float]]:
        return self.rows


class FakeTorch(types.ModuleType):
    def __init__(
        self,
        version: str,
        hip: str | None,
        cuda: str | None,
        gfx: Sequence[str] = (),
        arch: Sequence[str] = (),
        xpu: int = 0,
    ) -> None:
        super().__init__("torch")
        self.__version__ = version
        self.version = types.SimpleNamespace(__version__=version, cuda=cuda, hip=hip)
        self.devices = {"cuda": len(gfx), "xpu": xpu}
        self.ran_on: set[str] = set()
        self.float32 = "float32"
        self.cuda = types.SimpleNamespace(
            is_available=lambda: bool(gfx),
            device_count=lambda: len(gfx),
            get_device_capability=lambda i: (9, 4),
            get_device_properties=lambda i: types.SimpleNamespace(gcnArchName=gfx[i]),
            get_arch_list=lambda: list(arch) if gfx else [],
        )
        self.xpu = types.SimpleNamespace(is_available=lambda: xpu > 0, device_count=lambda: xpu)

    def Generator(self) -> Any:
        return types.SimpleNamespace(manual_seed=lambda seed: random.Random(seed))

    def randn(self, rows: int, columns: int, generator: random.Random, dtype: str) -> FakeTensor:
        return FakeTensor([[generator.gauss(0, 1) for _ in range(columns)] for _ in range(rows)], self)

    def tensor(self, rows: Sequence[Sequence[float]]) -> FakeTensor:
        return FakeTensor(rows, self)

    def matmul(self, a: FakeTensor, b: FakeTensor) -> FakeTensor:
        return a @ b

    def allclose(self, a: FakeTensor, b: FakeTensor, rtol: float, atol: float) -> bool:
        return all(
            abs(x - y) <= atol + rtol * abs(y)
            for r, s in zip(a.rows, b.rows, strict=True)
            for x, y in zip(r, s, strict=True)
        )


MI300X_ARCH = ("gfx90a", "gfx942", "gfx1100")


def run(monkeypatch: pytest.MonkeyPatch, torch: FakeTorch, **expect: Any) -> dict[str, smoke.Check]:
    monkeypatch.setitem(sys.modules, "torch", torch)
    argument = {"versions": {"torch": torch.__version__}, "cuda": None, "hip": None, **expect}
    return {c.name: c for c in smoke.run_checks(argument, {})}


def statuses(checks: dict[str, smoke.Check]) -> dict[str, str]:
    return {name: c.status for name, c in checks.items() if c.gpu or name.startswith("torch.version")}


def test_a_rocm_build_on_its_amd_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.8.0+rocm6.4", "6.4.43482-0f2d60242", None, ["gfx942:sramecc+:xnack-"], MI300X_ARCH)
    checks = run(monkeypatch, torch, variant="rocm6.4", hip="6.4", gpu="rocm", host_gpus=1)
    assert statuses(checks) == {
        "torch.version.cuda": "pass",
        "torch.version.hip": "pass",
        "ROCm (HIP) available": "pass",
        "ROCm (HIP) device count": "pass",
        "GPU 0 architecture gfx942": "pass",
        "GPU 0 matrix product": "pass",
    }
    assert torch.ran_on == {"cuda:0", "cpu"}  # HIP devices are torch's "cuda" devices
    assert checks["LD_LIBRARY_PATH hygiene"].status == "pass"


def test_a_rocm_build_without_the_gpus_gfx_target(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.6.0+rocm6.2.4", "6.2.41133-dd7f95766", None, ["gfx1201"], MI300X_ARCH)
    checks = run(monkeypatch, torch, variant="rocm6.2.4", hip="6.2", gpu="rocm", host_gpus=1)
    arch = checks["GPU 0 architecture gfx1201"]
    assert (arch.status, arch.found) == ("fail", "not in gfx90a gfx942 gfx1100")
    assert "GPU 0 matrix product" not in checks  # no kernel would load: not launched
    assert "cuda:0" not in torch.ran_on


def test_a_cuda_build_where_rocm_was_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.8.0+cu128", None, "12.8")
    checks = run(monkeypatch, torch, variant="rocm6.4", hip="6.4", gpu="rocm", host_gpus=1)
    hip = checks["torch.version.hip"]
    assert (hip.status, hip.expected, hip.found) == ("fail", "6.4.x", "None")
    assert hip.detail == "variant rocm6.4: not a ROCm (HIP) build of torch"
    assert checks["ROCm (HIP) available"].status == "fail"


def test_a_rocm_build_of_another_rocm_release(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.8.0+rocm6.4", "6.3.42131-fa1d09cbd", None, ["gfx942"], MI300X_ARCH)
    checks = run(monkeypatch, torch, variant="rocm6.4", hip="6.4", gpu="rocm", host_gpus=1)
    assert checks["torch.version.hip"].status == "fail"


def test_an_xpu_build_on_an_intel_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.8.0+xpu", None, None, xpu=1)
    checks = run(monkeypatch, torch, variant="xpu", gpu="xpu", host_gpus=1)
    assert statuses(checks) == {
        "torch.version.cuda": "pass",
        "XPU available": "pass",
        "XPU device count": "pass",
        "GPU 0 matrix product": "pass",
    }
    assert "xpu:0" in torch.ran_on


def test_an_xpu_build_that_sees_no_intel_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.8.0+xpu", None, None, xpu=0)
    checks = run(monkeypatch, torch, variant="xpu", gpu="xpu", host_gpus=1)
    assert statuses(checks) == {"torch.version.cuda": "pass", "XPU available": "fail"}


def test_no_gpu_of_the_builds_vendor_skips_the_gpu_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = FakeTorch("2.8.0+rocm6.4", "6.4.43482-0f2d60242", None)
    checks = run(monkeypatch, torch, variant="rocm6.4", hip="6.4", gpu="rocm", host_gpus=0)
    assert checks["GPU checks"].detail == "no AMD GPU on this machine"


@pytest.mark.parametrize(
    ("expected", "found", "ok"),
    [
        ("6.4", "6.4.43482-0f2d60242", True),
        ("6.2", "6.2.41133-dd7f95766", True),
        ("6.4", "6.3.42131", False),
        ("6.4", None, False),
        (None, "6.4.1", False),
    ],
)
def test_hip_matches(expected: str | None, found: str | None, ok: bool) -> None:
    assert smoke.hip_matches(expected, found) is ok


def test_gfx_device_checks_read_gcn_arch_names() -> None:
    checks = smoke.gfx_device_checks(2, True, 2, ["gfx90a:sramecc+:xnack-", "gfx1100"], ["gfx90a"])
    assert [(c.name, c.status) for c in checks] == [
        ("ROCm (HIP) available", "pass"),
        ("ROCm (HIP) device count", "pass"),
        ("GPU 0 architecture gfx90a", "pass"),
        ("GPU 1 architecture gfx1100", "fail"),
    ]
