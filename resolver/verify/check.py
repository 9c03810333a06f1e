"""`stack-resolver check`: inspect an environment that already exists, without changing it.

Steps, each a plain function: find the interpreter (`--python`, else `$VIRTUAL_ENV`, else the
project's `.venv`), run `inspect_torch.py` in it (what is installed, torch's CUDA or HIP build, its
arch list and the devices it sees), then judge that against the host (the devices CUDA will see,
the driver; AMD and Intel GPUs in `vendors.py`) and the matrix (the build's driver floor,
companion pairs, transformers' torch and Python ranges), and against the target's lock when there
is one. Every failed finding carries fixes,
each `{"kind", "summary", "apply", "gives"}`; an install fix comes from solving for this host
(`resolver.solve.search.solve`), never from a table in code. `--smoke` then runs the smoke module's
checks in that environment.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from resolver.errors import InputError, Location
from resolver.explain.fixes import Fix
from resolver.host.model import CudaDevice, Host
from resolver.lock.poetry.tool import LOCKFILE
from resolver.lock.runner import Runner, run_subprocess
from resolver.matrix.arch import Coverage, coverage
from resolver.matrix.model import Matrix, variant_kind
from resolver.verify import smoke
from resolver.verify.environment import Installed, child_environ, parse_version
from resolver.verify.findings import Finding, failed, passed, skipped
from resolver.verify.poetry import (
    Expectations,
    _derived,
    find_target,
    list_targets,
    parse_smoke_output,
    read_expectations,
)
from resolver.verify.remedies import (
    Context,
    driver_fix,
    install_fix,
    torch_arch_targets,
    transformers_fix,
    transformers_problem,
)
from resolver.verify.smoke import PACKAGES, Check
from resolver.verify.vendors import expected_devices, host_gfx, smoke_payload, vendor_findings

SMOKE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class CheckReport:
    installed: Installed
    host: Host
    target: str | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(f.check.status == "fail" for f in self.findings)


# --- the checks ---------------------------------------------------------------------------------


def _device_findings(ctx: Context, shown: str, environ_value: str | None) -> list[Finding]:
    installed, host = ctx.installed, ctx.host
    vendor = vendor_findings(ctx, shown)
    if vendor is not None:
        return vendor
    devices = host.cuda_devices
    variant = installed.variant or "cpu"
    kind = variant_kind(variant)
    if not devices:
        why = "no NVIDIA GPU on this host" if not host.gpus else "no GPU is visible to CUDA"
        return [passed("GPUs", "-", "none visible", why, gpu=True)]
    if kind != "cuda":
        fix = install_fix(ctx, f"torch {shown} is a {variant} build and CUDA sees {len(devices)} GPU(s)")
        return [
            failed(
                "CUDA build",
                "a CUDA build for the visible GPUs",
                f"{shown} ({variant})",
                f"{_device_list(devices)} cannot be used by this torch",
                fix,
                gpu=True,
            )
        ]
    findings: list[Finding] = []
    source = installed.arch_source or "the matrix"
    arch_list = installed.arch_list or _matrix_arch_list(ctx, variant)
    for device in devices:
        cc = device.compute_capability
        name = f"cuda:{device.index} {device.label} {cc.sm}"
        if not arch_list:
            findings.append(skipped(name, "torch reports no arch list and the matrix has none", gpu=True))
            continue
        how = coverage(torch_arch_targets(arch_list, cc), cc, ctx.matrix.tegra_rule)
        if how is Coverage.NONE:
            why = f"torch {shown} carries no {cc.sm} kernels for GPU {device.gpu} ({device.name})"
            if device.mig is not None:
                why = f"torch {shown} carries no {cc.sm} kernels for {device.label}"
            findings.append(
                failed(
                    name,
                    f"{cc.sm} in torch's arch list",
                    " ".join(arch_list),
                    f"from {source}; CUDA would say 'no kernel image is available'",
                    install_fix(ctx, why),
                    gpu=True,
                )
            )
        else:
            detail = "runs only by JIT-compiling PTX (slow first start)" if how is Coverage.PTX else ""
            findings.append(passed(name, f"{cc.sm} in torch's arch list", how.value, detail, gpu=True))
    findings.extend(_driver_findings(ctx, shown))
    if not installed.available:
        findings.append(
            failed(
                "CUDA available",
                "True",
                "False",
                installed.cuda_error or f"torch cannot reach the {len(devices)} GPU(s) CUDA should see",
                gpu=True,
            )
        )
    elif installed.device_count != len(devices):
        findings.append(
            failed(
                "CUDA device count",
                str(len(devices)),
                str(installed.device_count),
                f"torch sees {installed.device_count}, the host shows CUDA {len(devices)}: {_masking(host)}",
                _mask_fix(host, environ_value),
                gpu=True,
            )
        )
    else:
        findings.append(passed("CUDA device count", str(len(devices)), str(installed.device_count), gpu=True))
    return findings


def _mask_fix(host: Host, current: str | None) -> Fix | None:
    """The host recorded a CUDA_VISIBLE_DEVICES this process does not have: set it."""
    wanted = host.cuda_visible_devices
    if wanted is None or wanted == current:
        return None
    return Fix(
        "env",
        f"run with CUDA_VISIBLE_DEVICES={wanted!r}, as the host recorded",
        {"env": {"CUDA_VISIBLE_DEVICES": wanted}},
        {},
    )


def _device_list(devices: Sequence[CudaDevice]) -> str:
    return ", ".join(f"{d.label} ({d.compute_capability.sm})" for d in devices)


def _masking(host: Host) -> str:
    named = [
        f"{n}={v!r}"
        for n, v in (
            ("NVIDIA_VISIBLE_DEVICES", host.nvidia_visible_devices),
            ("CUDA_VISIBLE_DEVICES", host.cuda_visible_devices),
        )
        if v is not None
    ]
    return ", ".join(named) or "no masking variable set"


def _matrix_arch_list(ctx: Context, variant: str) -> tuple[str, ...]:
    torch = ctx.installed.torch
    release = ctx.matrix.release(Version(torch.public)) if torch else None
    build = ctx.matrix.build(release, variant) if release else None
    targets = build.arch.get(ctx.host.platform, ()) if build else ()
    entries = [f"sm_{t.cc.major}{t.cc.minor}" for t in targets]
    entries += [f"compute_{t.cc.major}{t.cc.minor}" for t in targets if t.ptx]
    return tuple(entries)


def _driver_findings(ctx: Context, shown: str) -> list[Finding]:
    cuda = parse_version(ctx.installed.cuda)
    name = "NVIDIA driver"
    if cuda is None:
        return []
    floor = ctx.matrix.driver_floor(cuda, ctx.host.os)
    driver = ctx.host.driver
    if driver is None:
        return [skipped(name, "no NVIDIA driver: this CUDA build runs on the CPU only", gpu=True)]
    if floor is None:
        return [skipped(name, f"the matrix knows no driver floor for CUDA {cuda} on {ctx.host.os}", gpu=True)]
    if driver >= floor:
        return [passed(name, f">= {floor} (CUDA {cuda})", str(driver), gpu=True)]
    raise_driver = driver_fix(
        ctx, floor, f"upgrade the NVIDIA driver to {floor} or newer (torch {shown} is built with CUDA {cuda})"
    )
    other = install_fix(ctx, f"or keep driver {driver}")
    return [
        failed(
            name,
            f">= {floor} (CUDA {cuda})",
            str(driver),
            f"torch {shown} needs driver {floor}+; CUDA will be unavailable",
            raise_driver,
            other,
            gpu=True,
        )
    ]


def _companion_findings(ctx: Context, torch: Version) -> list[Finding]:
    pair = ctx.matrix.companions.get(Version(torch.public))
    findings = []
    for package in ("torchvision", "torchaudio"):
        installed = parse_version(ctx.installed.versions.get(package))
        name = f"{package} pairs with torch"
        if installed is None:
            continue
        expected = getattr(pair, package) if pair is not None else None
        if expected is None:
            findings.append(skipped(name, f"the matrix pairs no {package} with torch {torch.public}"))
            continue
        label = f"+{torch.local}" if torch.local else ""
        want = f"{expected}{label}"
        same_label = installed.local is None or torch.local is None or installed.local == torch.local
        if Version(installed.public) == expected and same_label:
            findings.append(passed(name, want, str(installed)))
            continue
        fix = Fix(
            "install",
            f"install {package} {want}, the release paired with torch {torch}",
            {"install": {package: want}},
            {},
        )
        public = Version(installed.public)
        pairs = ctx.matrix.companions.values()
        built_for = next((p.torch for p in pairs if getattr(p, package) == public), None)
        detail = f"{package} {installed} is built for torch {built_for}" if built_for else "not torch's pair"
        findings.append(failed(name, want, str(installed), detail, fix))
    return findings


def _transformers_findings(ctx: Context, torch: Version | None) -> list[Finding]:
    text = ctx.installed.versions.get("transformers")
    version = parse_version(text)
    if version is None:
        return []
    release = ctx.matrix.transformers_release(version)
    if release is None:
        return [skipped("transformers fits torch", f"transformers {version} is not in the matrix")]
    findings = []
    python = Version(ctx.installed.python_tag.rstrip("t") + ".0")
    if release.requires_python and not release.requires_python.contains(python, prereleases=True):
        findings.append(
            failed(
                "transformers fits Python",
                f"Python{release.requires_python}",
                ctx.installed.python,
                f"transformers {version} requires Python{release.requires_python}",
                transformers_fix(ctx, torch, f"transformers {version} does not support Python {python}"),
            )
        )
    if torch is None:
        return findings
    problem = transformers_problem(release, torch)
    expected = f"torch{release.torch}" if release.torch else "any torch"
    if problem is None:
        findings.append(passed("transformers fits torch", expected, f"torch {torch.public}"))
    else:
        why = f"transformers {version} {problem}, torch is {torch}"
        findings.append(
            failed(
                "transformers fits torch",
                expected,
                f"torch {torch.public}",
                why,
                transformers_fix(ctx, torch, why),
            )
        )
    return findings


def _drift_findings(ctx: Context, expect: Expectations, directory: Path) -> list[Finding]:
    sync = Fix(
        "sync",
        f"install the target's lock: cd {directory} && poetry sync --no-root",
        {"sync": {"target": expect.target, "directory": str(directory), "command": "poetry sync --no-root"}},
        {},
    )
    findings = []
    for package in PACKAGES:
        locked = expect.locked.get(package)
        if locked is None:
            continue
        installed = ctx.installed.versions.get(package)
        name = f"{package} as locked ({expect.target})"
        if installed is not None and parse_version(installed) == parse_version(locked):
            findings.append(passed(name, locked, installed))
        else:
            found = installed or "not installed"
            findings.append(failed(name, locked, found, f"the environment drifted from {directory}", sync))
    tag = ctx.installed.python_tag
    if expect.python and expect.python != tag:
        findings.append(
            failed(
                f"Python as locked ({expect.target})",
                expect.python,
                tag,
                "the lock is for another Python: recreate the environment with it",
                sync,
            )
        )
    return findings


def locked_target(envs: Path, name: str | None, host: Host) -> tuple[Expectations, Path] | None:
    """The target to compare with: `--target NAME` (which must exist and hold a poetry.lock),
    else the one Poetry-locked target whose name `resolve` gives this host; None when none does."""
    if name is not None:
        directory = find_target(envs, name, host)
    else:
        # only Poetry-locked targets can be compared; a conda-only one is not drift
        named = [t for t in list_targets(envs) if (envs / t / LOCKFILE).is_file()]
        matching = [t for t in named if (_derived(host, envs / t) or ("", ""))[0] == t]
        if len(matching) > 1 and (host.cuda_devices or host.amd_gpus or host.intel_gpus):
            matching = [t for t in matching if (_derived(host, envs / t) or ("", "cpu"))[1] != "cpu"]
        if len(matching) != 1:
            return None
        directory = envs / matching[0]
    if not (directory / LOCKFILE).is_file():
        raise InputError(
            f"target '{directory.name}' has no {LOCKFILE}",
            location=Location(str(directory)),
            hint="check compares with a Poetry lock: resolve it with --format poetry",
        )
    return read_expectations(directory, host), directory


def check_environment(
    installed: Installed,
    host: Host,
    matrix: Matrix,
    target: tuple[Expectations, Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every finding about `installed` on `host` (whose devices are those CUDA will see);
    `environ` is the environment the checked interpreter ran in (default: this process's)."""
    cuda_visible_devices = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    ctx = Context(installed, dataclasses.replace(host, python=installed.python_tag), matrix)
    findings: list[Finding] = []
    torch = installed.torch
    if torch is None:
        error = installed.torch_error or "torch is not installed"
        findings.append(
            failed(
                "torch", "installed and importable", "missing", error, install_fix(ctx, "torch is missing")
            )
        )
    else:
        shown = str(torch)
        if installed.torch_error:
            fix = install_fix(ctx, f"torch {shown} is installed but does not import")
            findings.append(failed("torch imports", "import torch", "failed", installed.torch_error, fix))
        release = matrix.release(Version(torch.public))
        findings.append(
            passed("torch", "installed", f"{shown} ({installed.variant})")
            if release is not None
            else Finding(
                Check("torch", "pass", "installed", shown, f"torch {torch.public} is not in the matrix")
            )
        )
        findings.extend(_device_findings(ctx, shown, cuda_visible_devices))
        findings.extend(_companion_findings(ctx, torch))
    findings.extend(_transformers_findings(ctx, torch))
    if target is not None:
        findings.extend(_drift_findings(ctx, *target))
    return findings


# --- the smoke checks in that environment ------------------------------------------------------------


def smoke_argument(installed: Installed, host: Host) -> str:
    variant = installed.variant or "cpu"
    versions = {p: v for p, v in installed.versions.items()}
    if installed.torch_module:
        versions["torch"] = installed.torch_module
    payload = smoke_payload(
        versions, variant, installed.cuda, expected_devices(host, variant), host_gfx(host)
    )
    return json.dumps(payload, sort_keys=True)


def run_smoke(
    python: Path,
    installed: Installed,
    host: Host,
    *,
    runner: Runner = run_subprocess,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    env = child_environ(os.environ if environ is None else environ)
    argv = [str(python), "-I", str(Path(smoke.__file__).resolve()), smoke_argument(installed, host)]
    done = runner(argv, cwd=Path.cwd(), env=env, timeout=SMOKE_TIMEOUT_S)
    _, checks = parse_smoke_output(done.stdout, done.stderr, done.returncode)
    return [Finding(dataclasses.replace(c, name=f"smoke: {c.name}")) for c in checks]


# --- rendering ------------------------------------------------------------------------------------


def report_json(report: CheckReport) -> dict[str, Any]:
    installed, host = report.installed, report.host
    return {
        "python": installed.executable,
        "python_version": installed.python,
        "packages": dict(installed.versions),
        "torch": {
            "version": installed.torch_module,
            "variant": installed.variant,
            "cuda": installed.cuda,
            "hip": installed.hip,
            "gfx": list(installed.gfx),
            "xpu_available": installed.xpu_available,
            "arch_list": list(installed.arch_list),
            "arch_source": installed.arch_source,
            "cuda_available": installed.available,
            "device_count": installed.device_count,
        },
        "devices": [d.to_json() for d in host.cuda_devices],
        "masked_gpus": list(host.masked_gpus),
        "cuda_visible_devices": host.cuda_visible_devices,
        "nvidia_visible_devices": host.nvidia_visible_devices,
        "target": report.target,
        "ok": report.ok,
        "checks": [
            {**dataclasses.asdict(f.check), "fixes": [fix.to_json() for fix in f.fixes]}
            for f in report.findings
        ],
        "notes": list(report.notes),
    }


def render_report(report: CheckReport) -> str:
    installed = report.installed
    head = f"check {installed.executable} (Python {installed.python})"
    if report.target:
        head += f", target {report.target}"
    lines = [head]
    names = [("[gpu] " if f.check.gpu else "") + f.check.name for f in report.findings]
    width = max((len(n) for n in names), default=0) + 2
    for finding, name in zip(report.findings, names, strict=True):
        c = finding.check
        line = f"{c.status.upper():<6}{name:<{width}}"
        if c.status == "skip" and c.found == "-":
            line += c.detail
        else:
            line += f"expected {c.expected}, found {c.found}" + (f"  ({c.detail})" if c.detail else "")
        lines.append(line.rstrip())
        lines.extend(f"      fix: {fix.summary}" for fix in finding.fixes)
    lines.extend(f"note: {note}" for note in report.notes)
    counts = {s: sum(f.check.status == s for f in report.findings) for s in ("pass", "fail", "skip")}
    summary = f"{len(report.findings)} checks: {counts['pass']} passed, {counts['fail']} failed"
    if counts["skip"]:
        summary += f", {counts['skip']} skipped"
    lines.append(summary)
    return "\n".join(lines) + "\n"
