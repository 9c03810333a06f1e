"""Smoke test run INSIDE a target's freshly installed environment (by file path, `python -I`).

It may import only the standard library and what the lock installed (torch, transformers, ...):
never the resolver or its own dependencies, which the target environment does not have. The
expectations arrive as one JSON argument; the result is one JSON document on stdout:

    python -I smoke.py '{"versions": {"torch": "2.8.0+cpu", ...}, "variant": "cpu",
                         "cuda": null, "hip": null, "gpu": null, "host_gpus": 0,
                         "gfx_targets": [], "gpu_target": false}'
    -> {"python": "3.11.7", "checks": [{"name", "status", "expected", "found", "detail", "gpu"}]}

`gpu` is the kind of GPU build ("cuda", "rocm" for AMD through HIP, "xpu" for Intel, null for a
CPU build); `host_gpus` the devices of that vendor the build should see; `hip` the ROCm
major.minor a ROCm build must report in `torch.version.hip`. (`gpu_target`, true for a CUDA build,
is what older callers sent.)

What `stack-resolver check` reads without running anything is `inspect_torch.py`'s job.

Anything the libraries print goes to stderr, so stdout carries only the JSON document. The pure
helpers (arch coverage, all-reduce expectation, LD_LIBRARY_PATH hygiene) take their inputs as
arguments so tests call them with fake values.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PACKAGES = ("torch", "torchvision", "torchaudio", "transformers")
# The GPU kinds of a build, and who makes the GPUs each drives.
VENDORS = {"cuda": "NVIDIA", "rocm": "AMD", "xpu": "Intel"}

# CUDA toolkit libraries that the torch wheels bring themselves (nvidia-* wheels or bundled): a copy
# from a system toolkit earlier on LD_LIBRARY_PATH is loaded instead and can break torch. The
# driver's own libcuda.so is not in this list: it must come from the system.
CUDA_TOOLKIT_LIBRARY = re.compile(
    r"^lib(cudart|cublas|cublasLt|cudnn\w*|nccl|nvrtc|nvJitLink|cusparse|cusparseLt|cufft|curand|"
    r"cusolver|cupti|nvToolsExt)\.so(\.|$)"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass" | "fail" | "skip"
    expected: str
    found: str
    detail: str = ""
    gpu: bool = False


def _passed(ok: bool) -> str:
    return "pass" if ok else "fail"


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]


# --- pure helpers ---------------------------------------------------------------------------------


def parse_arch(entry: str) -> tuple[str, int, int, str] | None:
    """'sm_90' -> ('sm', 9, 0, ''); 'compute_120' -> ('compute', 12, 0, ''); 'sm_90a' -> (..., 'a')."""
    match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", entry.strip())
    if not match:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)


def arch_coverage(capability: tuple[int, int], arch_list: Sequence[str]) -> tuple[str, str]:
    """How a device of `capability` is served by `torch.cuda.get_arch_list()`.

    Returns (kind, entry): kind "cubin" (a cubin sm_XY with the same major and minor <= the
    device's; the closest one is named), "ptx" (only PTX compute_XY <= the device, JIT-compiled
    at first use) or "none". Arch-specific cubins (sm_90a) run only on exactly that capability;
    family cubins (sm_100f) like plain ones on the same major with a minor >= theirs.
    """
    major, minor = capability
    cubins: list[tuple[int, str]] = []
    ptx: list[tuple[tuple[int, int], str]] = []
    for entry in arch_list:
        parsed = parse_arch(entry)
        if parsed is None:
            continue
        kind, emajor, eminor, suffix = parsed
        if kind == "sm" and emajor == major and (eminor == minor if suffix == "a" else eminor <= minor):
            cubins.append((eminor, entry))
        elif kind == "compute" and not suffix and (emajor, eminor) <= (major, minor):
            ptx.append(((emajor, eminor), entry))
    if cubins:
        return "cubin", max(cubins)[1]
    if ptx:
        return "ptx", max(ptx)[1]
    return "none", ""


def availability_checks(label: str, host_gpus: int, available: bool, count: int) -> list[Check]:
    """`label` ("CUDA", "ROCm (HIP)", "XPU") available, then its device count against the host's."""
    checks = [Check(f"{label} available", _passed(available), "True", str(available), gpu=True)]
    if available:
        detail = f"GPUs visible to {label} on this host"
        checks.append(
            Check(
                f"{label} device count",
                _passed(count == host_gpus),
                str(host_gpus),
                str(count),
                detail,
                gpu=True,
            )
        )
    return checks


def device_checks(
    host_gpus: int,
    available: bool,
    count: int,
    capabilities: Sequence[tuple[int, int]],
    arch_list: Sequence[str],
) -> list[Check]:
    """CUDA availability, device count and per-device architecture coverage, from plain values."""
    checks = availability_checks("CUDA", host_gpus, available, count)
    if not available:
        return checks
    for index, (major, minor) in enumerate(capabilities):
        kind, entry = arch_coverage((major, minor), arch_list)
        checks.append(
            Check(
                f"GPU {index} architecture sm_{major}{minor}",
                _passed(kind != "none"),
                f"sm_{major}{minor} covered by the build",
                f"{kind} {entry}"
                if kind != "none"
                else f"not in {' '.join(arch_list) or 'an empty arch list'}",
                "runs only by JIT-compiling PTX (slow first start)" if kind == "ptx" else "",
                gpu=True,
            )
        )
    return checks


def gfx_name(arch: str) -> str:
    """An AMD gfx target without its feature flags: "gfx90a:sramecc+:xnack-" -> "gfx90a"."""
    return arch.split(":", 1)[0].strip()


def gfx_device_checks(
    host_gpus: int, available: bool, count: int, gfx: Sequence[str], arch_list: Sequence[str]
) -> list[Check]:
    """ROCm (HIP) availability, device count and, per device (its gcnArchName), whether the
    build's `torch.cuda.get_arch_list()` holds its gfx target: AMD code objects run only on the
    gfx target they are built for (no PTX-like fallback)."""
    checks = availability_checks("ROCm (HIP)", host_gpus, available, count)
    built = {gfx_name(a) for a in arch_list}
    for index, arch in enumerate(gfx if available else ()):
        target = gfx_name(arch)
        found = target if target in built else f"not in {' '.join(arch_list) or 'an empty arch list'}"
        expected = f"{target} covered by the build"
        checks.append(
            Check(f"GPU {index} architecture {target}", _passed(target in built), expected, found, gpu=True)
        )
    return checks


def hip_matches(expected: str | None, found: str | None) -> bool:
    """`torch.version.hip` ("6.4.43482-0f2d60242") is of the variant's ROCm major.minor ("6.4")."""
    if not expected or not found:
        return False
    return found.split(".")[:2] == expected.split(".")[:2]


def expected_all_reduce(device_count: int) -> float:
    """Each device i contributes i + 1: every device must end with 1 + 2 + ... + n."""
    return float(device_count * (device_count + 1) // 2)


def shadowing_library_dirs(
    ld_library_path: str, list_dir: Callable[[str], Iterable[str]]
) -> list[tuple[str, list[str]]]:
    """Directories on LD_LIBRARY_PATH holding CUDA toolkit libraries, with the libraries found."""
    found: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for directory in ld_library_path.split(os.pathsep):
        if not directory or directory in seen:
            continue
        seen.add(directory)
        try:
            names = sorted(n for n in list_dir(directory) if CUDA_TOOLKIT_LIBRARY.match(n))
        except OSError:
            continue
        if names:
            found.append((directory, names))
    return found


def hygiene_check(ld_library_path: str, list_dir: Callable[[str], Iterable[str]], gpu_target: bool) -> Check:
    name = "LD_LIBRARY_PATH hygiene"
    expected = "no system CUDA toolkit libraries ahead of the wheel's"
    offenders = shadowing_library_dirs(ld_library_path, list_dir)
    if not offenders:
        shown = ld_library_path or "(unset)"
        return Check(name, "pass", expected, f"LD_LIBRARY_PATH={shown}: none")
    found = "; ".join(
        f"{d} ({', '.join(libs[:4])}{', ...' if len(libs) > 4 else ''})" for d, libs in offenders
    )
    if not gpu_target:
        return Check(name, "pass", expected, found, "harmless for a CPU build, which loads no CUDA libraries")
    paths = ", ".join(d for d, _ in offenders)
    return Check(
        name,
        "fail",
        expected,
        found,
        f"remove {paths} from LD_LIBRARY_PATH: those libraries load instead of the ones torch was built with",
    )


def version_check(
    package: str, expected: str | None, found: str | None, dist: str | None, error: str
) -> Check:
    name = f"{package} version"
    if expected is None:
        return Check(name, "skip", "-", "-", "not in the lock")
    if found is None:
        return Check(name, "fail", expected, dist or "not installed", error)
    detail = ""
    if dist is not None and dist != found:
        detail = f"the module says {found}, its distribution metadata says {dist}"
    return Check(name, _passed(found == expected), expected, found, detail)


# --- the checks that touch torch and transformers ---------------------------------------------------


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


def _is_stub(torch: Any) -> bool:
    """The test fixture index serves torch wheels that carry only version information."""
    return not (hasattr(torch, "tensor") and hasattr(torch, "matmul"))


def _cpu_tensor_check(torch: Any) -> Check:
    name = "CPU tensor operation"
    expected = "[[19, 22], [43, 50]]"
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    found = [[round(v) for v in row] for row in torch.matmul(a, b).tolist()]
    return Check(name, _passed(str(found) == expected), expected, str(found))


def _product_checks(torch: Any, device_type: str, indices: Iterable[int]) -> list[Check]:
    """A matrix product on each device `device_type:i` ("cuda", which HIP serves too, or "xpu"),
    compared with the CPU's."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(128, 96, generator=generator, dtype=torch.float32)
    b = torch.randn(96, 64, generator=generator, dtype=torch.float32)
    reference = a @ b
    checks = []
    for index in indices:
        name = f"GPU {index} matrix product"
        try:
            result = (a.to(f"{device_type}:{index}") @ b.to(f"{device_type}:{index}")).cpu()
            diff = float((result - reference).abs().max())
            ok = bool(torch.allclose(result, reference, rtol=1e-3, atol=1e-3))
            found = f"max difference {diff:.2e}"
            checks.append(
                Check(name, _passed(ok), "equal to the CPU result (tolerance 1e-3)", found, gpu=True)
            )
        except Exception as exc:
            checks.append(Check(name, "fail", "runs", _error_text(exc), gpu=True))
    return checks


def _rocm_checks(torch: Any, host_gpus: int) -> list[Check]:
    """A ROCm build: HIP behind `torch.cuda`, each AMD GPU's gfx target in the arch list, and a
    matrix product on each covered device."""
    available = bool(torch.cuda.is_available())
    count = int(torch.cuda.device_count()) if available else 0
    gfx = [str(torch.cuda.get_device_properties(i).gcnArchName) for i in range(count)]
    arch_list = [str(a) for a in torch.cuda.get_arch_list()] if available else []
    checks = gfx_device_checks(host_gpus, available, count, gfx, arch_list)
    covered = [i for i, arch in enumerate(gfx) if gfx_name(arch) in {gfx_name(a) for a in arch_list}]
    return checks + _product_checks(torch, "cuda", covered)


def _xpu_checks(torch: Any, host_gpus: int) -> list[Check]:
    """An XPU build: `torch.xpu` available, the Intel GPUs it sees, a matrix product on each."""
    xpu: Any = getattr(torch, "xpu", None)
    available = bool(xpu is not None and xpu.is_available())
    count = int(xpu.device_count()) if available else 0
    return availability_checks("XPU", host_gpus, available, count) + _product_checks(
        torch, "xpu", range(count)
    )


def _gpu_checks(torch: Any, gpu: str, host_gpus: int) -> list[Check]:
    if gpu == "rocm":
        return _rocm_checks(torch, host_gpus)
    if gpu == "xpu":
        return _xpu_checks(torch, host_gpus)
    available = bool(torch.cuda.is_available())
    count = int(torch.cuda.device_count()) if available else 0
    capabilities = [tuple(torch.cuda.get_device_capability(i)) for i in range(count)]
    arch_list = list(torch.cuda.get_arch_list()) if available else []
    checks = device_checks(host_gpus, available, count, capabilities, arch_list)
    if not available:
        return checks
    # an uncovered device already failed above; a kernel launch would only raise "no kernel image"
    covered = [i for i, cc in enumerate(capabilities) if arch_coverage(cc, arch_list)[0] != "none"]
    checks.extend(_product_checks(torch, "cuda", covered))
    cudnn = bool(torch.backends.cudnn.is_available())
    version = torch.backends.cudnn.version() if cudnn else None
    checks.append(Check("cuDNN available", _passed(cudnn), "True", f"{cudnn} (version {version})", gpu=True))
    if count > 1:
        checks.extend(_multi_gpu_checks(torch, count))
    return checks


def _multi_gpu_checks(torch: Any, count: int) -> list[Check]:
    nccl = bool(torch.distributed.is_available() and torch.distributed.is_nccl_available())
    checks = [Check("NCCL available", _passed(nccl), "True", str(nccl), gpu=True)]
    want = expected_all_reduce(count)
    try:
        # One process driving every GPU: the single-process NCCL collective torch exposes.
        nccl_ops = importlib.import_module("torch.cuda.nccl")
        tensors = [torch.full((1024,), float(i + 1), device=f"cuda:{i}") for i in range(count)]
        nccl_ops.all_reduce(tensors)
        torch.cuda.synchronize()
        values = sorted({float(t.cpu().max()) for t in tensors} | {float(t.cpu().min()) for t in tensors})
        ok = values == [want]
        checks.append(
            Check(
                f"NCCL all-reduce across {count} GPUs",
                _passed(ok),
                f"{want:g} on every GPU",
                ", ".join(f"{v:g}" for v in values),
                gpu=True,
            )
        )
    except Exception as exc:
        checks.append(
            Check(f"NCCL all-reduce across {count} GPUs", "fail", f"{want:g}", _error_text(exc), gpu=True)
        )
    return checks


def _transformers_check(torch: Any, transformers: Any, device: str) -> Check:
    name = f"transformers forward pass ({device})"
    expected = "hidden states (2, 8, 32), finite"
    if not (hasattr(transformers, "BertConfig") and hasattr(transformers, "BertModel")):
        return Check(name, "skip", expected, "no BertConfig/BertModel", "transformers is a stub: no models")
    # A tiny model from a config in code: random weights, nothing downloaded.
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval().to(device)
    input_ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        output = model(input_ids=input_ids)
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    shape = tuple(int(d) for d in hidden.shape)
    finite = bool(torch.isfinite(hidden).all())
    found = f"hidden states {shape}, {'finite' if finite else 'NOT finite'}"
    return Check(name, _passed(shape == (2, 8, 32) and finite), expected, found)


def run_checks(expect: Mapping[str, Any], environ: Mapping[str, str]) -> list[Check]:
    versions: Mapping[str, str] = expect.get("versions", {})
    gpu = str(expect.get("gpu") or ("cuda" if expect.get("gpu_target") else ""))
    host_gpus = int(expect.get("host_gpus", 0))
    checks: list[Check] = []
    modules: dict[str, Any] = {}
    for package in PACKAGES:
        module, error = (None, "") if package not in versions else _import(package)
        modules[package] = module
        found = getattr(module, "__version__", None) if module is not None else None
        checks.append(
            version_check(
                package,
                versions.get(package),
                None if found is None else str(found),
                _dist_version(package),
                error,
            )
        )
    torch = modules["torch"]
    expected_cuda = expect.get("cuda")
    if torch is None:
        checks.append(Check("torch.version.cuda", "skip", str(expected_cuda), "-", "torch did not import"))
    else:
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        checks.append(
            Check(
                "torch.version.cuda",
                _passed(cuda == expected_cuda),
                str(expected_cuda),
                str(cuda),
                f"variant {expect.get('variant')}",
            )
        )
        if gpu == "rocm":
            hip, want = getattr(torch.version, "hip", None), expect.get("hip")
            detail = f"variant {expect.get('variant')}" + ("" if hip else ": not a ROCm (HIP) build of torch")
            checks.append(
                Check("torch.version.hip", _passed(hip_matches(want, hip)), f"{want}.x", str(hip), detail)
            )

    gpu_reason = ""
    if gpu not in VENDORS:
        gpu_reason = f"the target is a {expect.get('variant')} build, not a GPU build"
    elif host_gpus == 0:
        gpu_reason = f"no {VENDORS[gpu]} GPU on this machine"
    elif torch is None:
        gpu_reason = "torch did not import"
    elif _is_stub(torch):
        gpu_reason = "torch is a stub: no tensor support"
    if gpu_reason:
        checks.append(Check("GPU checks", "skip", "-", "-", gpu_reason, gpu=True))
    else:
        try:
            checks.extend(_gpu_checks(torch, gpu, host_gpus))
        except Exception as exc:
            checks.append(
                Check("GPU checks", "fail", "run", _error_text(exc), traceback.format_exc(limit=3), gpu=True)
            )

    tensors = torch is not None and not _is_stub(torch)
    if torch is None:
        checks.append(Check("CPU tensor operation", "skip", "-", "-", "torch did not import"))
    elif not tensors:
        checks.append(Check("CPU tensor operation", "skip", "-", "-", "torch is a stub: no tensor support"))
    else:
        try:
            checks.append(_cpu_tensor_check(torch))
        except Exception as exc:
            checks.append(Check("CPU tensor operation", "fail", "runs", _error_text(exc)))

    transformers = modules["transformers"]
    device = "cpu"
    if not gpu_reason and tensors:
        backend = getattr(torch, "xpu" if gpu == "xpu" else "cuda", None)
        device = (
            ("xpu" if gpu == "xpu" else "cuda") if backend is not None and backend.is_available() else "cpu"
        )
    if "transformers" not in versions:
        checks.append(Check("transformers forward pass", "skip", "-", "-", "transformers is not in the lock"))
    elif transformers is None or not tensors:
        reason = "torch is a stub: no tensor support" if torch is not None else "torch did not import"
        if transformers is None:
            reason = "transformers did not import"
        checks.append(Check("transformers forward pass", "skip", "-", "-", reason))
    else:
        try:
            checks.append(_transformers_check(torch, transformers, device))
        except Exception as exc:
            checks.append(Check(f"transformers forward pass ({device})", "fail", "runs", _error_text(exc)))

    checks.append(hygiene_check(environ.get("LD_LIBRARY_PATH", ""), os.listdir, gpu == "cuda"))
    return checks


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -I smoke.py EXPECTATIONS_JSON\n")
        return 2
    stdout = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the JSON document
    try:
        checks = run_checks(json.loads(argv[1]), os.environ)
        payload = {
            "python": ".".join(str(p) for p in sys.version_info[:3]),
            "checks": [asdict(c) for c in checks],
        }
    finally:
        sys.stdout = stdout
    stdout.write(json.dumps(payload) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
