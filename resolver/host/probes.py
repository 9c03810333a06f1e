"""The machine-touching side of host detection: probes, then the pure parsers in `parse.py`.

Every way this module touches the machine is a field of `Probes`, so tests pass fakes (an
`environ` dict, a `read_text` over a dict, a fake `pynvml` object, a `run` that returns canned
output) instead of monkeypatching. `Probes.system()` binds the real ones.

The NVIDIA chain, per field (driver, CUDA driver API, GPUs), first answer wins:

1. overrides: `STACK_RESOLVER_*` variables, then the host file named by `STACK_RESOLVER_HOST`;
2. NVML (nvidia-ml-py's `pynvml`, when installed): driver, CUDA driver API, GPUs;
3. `/sys/module/nvidia/version`, then `/proc/driver/nvidia/version`: the driver only;
4. `nvidia-smi --query-gpu=...`: GPUs, and the driver if still unknown.

A source that is absent (no module, no file, no executable) moves on silently. A source that is
present but broken (NVML error, unparsable file, non-zero exit, timeout) adds a warning naming the
source and moves on; it never raises. No GPU is a normal answer: a CPU host. Only a bad override
raises (`InputError` naming the variable), since that is the user's own input.

Overrides (also in the README):

- `STACK_RESOLVER_HOST=FILE`: a host JSON file; each key it has wins, keys it omits are detected.
- `STACK_RESOLVER_NO_GPU=1`: report no NVIDIA driver and no GPUs; skip every NVIDIA probe.
- `STACK_RESOLVER_NVIDIA_DRIVER=535.104.05`: the driver version.
- `STACK_RESOLVER_CUDA_DRIVER_API=12.4`: the CUDA version the driver supports.
- `STACK_RESOLVER_GPUS=SPEC`: the GPUs, `;`- or `,`-separated, each `[NAME=]CC[:MEMORY_MIB]`,
  e.g. `8.6,8.6` or `NVIDIA A100-SXM4-80GB=8.0:81920;NVIDIA A100-SXM4-80GB=8.0:81920`.
- `STACK_RESOLVER_OS_VERSION=14.5`: the OS version (macOS `14.5`; Linux `ubuntu 22.04`).
- `STACK_RESOLVER_GLIBC=2.35`: glibc and its version (implies libc = glibc).
- `STACK_RESOLVER_PYTHON=3.11`: the Python to resolve for (`3.13t`: free-threaded; `3.11.9` is
  kept in full and resolved as 3.11).
- `STACK_RESOLVER_AMD_GPUS=SPEC`: the AMD GPUs, each `[NAME=]GFX`, e.g. `gfx942;gfx942`.
- `STACK_RESOLVER_INTEL_GPUS=NAMES`: the Intel GPUs, `;`-separated names.
- `STACK_RESOLVER_ROCM_VERSION=6.4.1`: the host's ROCm release.

AMD and Intel GPUs have chains of their own (`vendors.py`); a host file that lists `gpus`, or
`STACK_RESOLVER_NO_GPU`, answers for every vendor.

A per-field variable beats the host file (`STACK_RESOLVER_HOST` or `--host`); both beat every
probe. Empty variables count as unset.
"""

from __future__ import annotations

import dataclasses
import glob as globmod
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resolver.errors import InputError
from resolver.host import limits, system, vendors, visible
from resolver.host import model as h
from resolver.host import parse as hp
from resolver.host.gpunames import GpuNames
from resolver.host.nvml import probe_nvml
from resolver.host.overrides import (
    ENV_AMD_GPUS,
    ENV_GPUS,
    ENV_HOST,
    ENV_INTEL_GPUS,
    ENV_NO_GPU,
    ENV_ROCM_VERSION,
    Overrides,
    bad_env,
    env_flag,
    env_value,
    read_overrides,
)
from resolver.host.system import SUBPROCESS_TIMEOUT_S as SUBPROCESS_TIMEOUT_S
from resolver.host.system import PlatformInfo as PlatformInfo
from resolver.host.system import RunResult as RunResult

PROC_DRIVER_VERSION = "/proc/driver/nvidia/version"
SYS_MODULE_VERSION = "/sys/module/nvidia/version"
# glibc's own loaders never match this; musl ships exactly one per arch.
MUSL_LOADER_GLOB = "/lib/ld-musl-*.so.1"


@dataclass(frozen=True)
class Probes:
    """Every way detection touches the machine. Each is replaceable in tests.

    `read_text` returns None when the file is absent and raises OSError when it is present but
    unreadable; `run` returns None when the executable is not on `environ["PATH"]` and raises
    `subprocess.TimeoutExpired` or OSError when it hangs or cannot start.
    """

    environ: Mapping[str, str]
    platform: PlatformInfo
    read_text: Callable[[str], str | None]
    run: Callable[[Sequence[str]], RunResult | None]
    load_nvml: Callable[[], Any | None]
    confstr: Callable[[str], str | None] = lambda name: None
    glob: Callable[[str], Sequence[str]] = lambda pattern: ()
    cpu_count: Callable[[], int | None] = lambda: None
    memory_bytes: Callable[[], int | None] = lambda: None  # used where /proc/meminfo is absent
    disk_free: Callable[[Path], int | None] = lambda path: None
    workdir: Path = field(default_factory=Path.cwd)
    machine_cpu_count: Callable[[], int | None] = lambda: None  # every CPU, affinity or not
    # product names in the overrides (STACK_RESOLVER_GPUS=RTX 4090): see host/gpunames.py
    gpu_names: GpuNames | None = None

    @classmethod
    def system(
        cls,
        workdir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        gpu_names: GpuNames | None = None,
    ) -> Probes:
        env = dict(os.environ if environ is None else environ)
        return cls(
            environ=env,
            platform=system.system_platform(),
            read_text=system.read_text,
            run=lambda argv: system.run(argv, env),
            load_nvml=system.load_nvml,
            confstr=system.confstr,
            glob=globmod.glob,
            cpu_count=system.cpu_count,
            memory_bytes=system.memory_bytes,
            disk_free=lambda path: shutil.disk_usage(path).free,
            workdir=Path.cwd() if workdir is None else workdir,
            machine_cpu_count=os.cpu_count,
            gpu_names=gpu_names,
        )


@dataclass(frozen=True)
class Detection:
    host: h.Host
    warnings: tuple[str, ...] = ()


# --- detection --------------------------------------------------------------------------------


class _Collector:
    """Fills host fields first-answer-wins, recording the source; gathers warnings."""

    def __init__(self, overrides: Overrides) -> None:
        self.values: dict[str, Any] = dict(overrides.values)
        self.sources: dict[str, str] = dict(overrides.sources)
        self.warnings: list[str] = []

    def missing(self, *keys: str) -> bool:
        return any(key not in self.values for key in keys)

    def put(self, key: str, value: Any, source: str) -> None:
        if key not in self.values and value is not None:
            self.values[key] = value
            self.sources[key] = source

    def warn(self, source: str, message: str) -> None:
        self.warnings.append(f"{source}: {message}")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _run_probe(
    probes: Probes, out: _Collector, argv: Sequence[str], source: str, hints: Mapping[str, str] | None = None
) -> str | None:
    """Run a command; its stdout on success, None (with a warning if it was there) otherwise.
    `hints` maps a substring of the failure output to advice appended to the warning."""
    try:
        result = probes.run(argv)
    except subprocess.TimeoutExpired:
        out.warn(source, f"timed out after {SUBPROCESS_TIMEOUT_S:g} s")
        return None
    except OSError as exc:
        out.warn(source, f"cannot run: {exc}")
        return None
    if result is None:
        return None
    if result.returncode != 0:
        message = _one_line(result.stdout + " " + result.stderr) or "no output"
        advice = [hint for needle, hint in (hints or {}).items() if needle in message]
        out.warn(source, f"exited {result.returncode}: {message}" + "".join(f" ({a})" for a in advice))
        return None
    return result.stdout


def _read_probe(probes: Probes, out: _Collector, path: str) -> str | None:
    try:
        return probes.read_text(path)
    except OSError as exc:
        out.warn(path, f"cannot read: {exc.strerror or exc}")
        return None


def _probe_kernel_module(probes: Probes, out: _Collector) -> None:
    # The loaded kernel module's version, even when no userspace tool is installed (containers).
    text = _read_probe(probes, out, SYS_MODULE_VERSION)
    if text is not None:
        try:
            out.put("nvidia_driver", hp.parse_sys_module_version(text), SYS_MODULE_VERSION)
            return
        except hp.ProbeParseError as exc:
            out.warn(SYS_MODULE_VERSION, str(exc))
    text = _read_probe(probes, out, PROC_DRIVER_VERSION)
    if text is not None:
        try:
            out.put("nvidia_driver", hp.parse_proc_driver_version(text).version, PROC_DRIVER_VERSION)
        except hp.ProbeParseError as exc:
            out.warn(PROC_DRIVER_VERSION, str(exc))


def _probe_nvidia_smi(probes: Probes, out: _Collector) -> None:
    source = "nvidia-smi"
    hints = {
        "not a valid field": f"drivers before 510 cannot report compute capability; set {ENV_GPUS}",
    }
    text = _run_probe(probes, out, ["nvidia-smi", *hp.NVIDIA_SMI_ARGS], source, hints)
    if text is None:
        return
    try:
        report = hp.parse_nvidia_smi_csv(text)
    except hp.ProbeParseError as exc:
        out.warn(source, str(exc))
        return
    took_gpus = out.missing("gpus")
    out.put("gpus", report.gpus, source)
    out.put("nvidia_driver", report.driver, source)
    if took_gpus and report.gpus:
        out.values["gpus"] = _with_smi_list(probes, report.gpus)


def _with_smi_list(probes: Probes, gpus: tuple[h.Gpu, ...]) -> tuple[h.Gpu, ...]:
    """UUIDs and MIG instances from `nvidia-smi -L`; best effort (the GPUs are already known)."""
    try:
        result = probes.run(["nvidia-smi", *hp.NVIDIA_SMI_LIST_ARGS])
    except (subprocess.TimeoutExpired, OSError):
        return gpus
    if result is None or result.returncode != 0:
        return gpus
    listed = {g.index: g for g in hp.parse_nvidia_smi_list(result.stdout)}
    return tuple(
        dataclasses.replace(g, uuid=listed[g.index].uuid, mig=listed[g.index].mig) if g.index in listed else g
        for g in gpus
    )


def _probe_nvidia(probes: Probes, out: _Collector, os_name: str) -> None:
    if out.missing("nvidia_driver", "cuda_driver_api", "gpus") and os_name != "macos":
        probe_nvml(probes.load_nvml, out)
    if out.missing("nvidia_driver") and os_name == "linux":
        _probe_kernel_module(probes, out)
    if out.missing("nvidia_driver", "gpus") and os_name != "macos":
        _probe_nvidia_smi(probes, out)
    if out.values.get("nvidia_driver") and out.missing("gpus"):
        out.warn(
            "gpus",
            f"NVIDIA driver {out.values['nvidia_driver']} found ({out.sources['nvidia_driver']}) "
            f"but no source listed the GPUs; install nvidia-ml-py or nvidia-smi, or set {ENV_GPUS}",
        )
    # Nothing answered: a CPU host, said explicitly so `sources` shows the chain ran.
    if out.missing("gpus"):
        out.put("gpus", (), "none found")


def _probe_other_vendors(probes: Probes, out: _Collector, os_name: str, probe: bool) -> None:
    """AMD and Intel GPUs and the ROCm release: overrides, then (on Linux) the chains in vendors.py."""
    environ = probes.environ
    for variable, key, parse in (
        (ENV_AMD_GPUS, "amd_gpus", vendors.parse_amd_gpus_override),
        (ENV_INTEL_GPUS, "intel_gpus", vendors.parse_intel_gpus_override),
    ):
        if (value := env_value(environ, variable)) is not None:
            if env_flag(environ, ENV_NO_GPU):
                raise bad_env(variable, value, f"conflicts with {ENV_NO_GPU}", "unset one of them")
            try:
                out.put(key, parse(value), variable)
            except ValueError as exc:
                raise bad_env(variable, value, str(exc), "e.g. gfx942;gfx90a") from None
    if (value := env_value(environ, ENV_ROCM_VERSION)) is not None:
        try:
            out.put("rocm_version", vendors.parse_rocm_version(value), ENV_ROCM_VERSION)
        except hp.ProbeParseError:
            raise bad_env(ENV_ROCM_VERSION, value, "not a ROCm version", "e.g. 6.4.1") from None
    if not probe or os_name != "linux":
        return

    def read(path: str) -> str | None:
        return _read_probe(probes, out, path)

    def run(argv: Sequence[str], source: str) -> str | None:
        return _run_probe(probes, out, list(argv), source)

    for key, chain in (("amd_gpus", vendors.probe_amd), ("intel_gpus", vendors.probe_intel)):
        if not out.missing(key) and (key != "amd_gpus" or not out.missing("rocm_version")):
            continue
        report = chain(read, run, probes.glob)
        out.warnings.extend(report.warnings)
        if report.gpus is not None and report.gpus_source is not None:
            out.put(key, report.gpus, report.gpus_source)
        if report.rocm_version is not None and report.rocm_source is not None:
            out.put("rocm_version", report.rocm_version, report.rocm_source)


def _probe_os_version(probes: Probes, out: _Collector, os_name: str) -> None:
    if os_name == "linux":
        for path in ("/etc/os-release", "/usr/lib/os-release"):
            text = _read_probe(probes, out, path)
            if text is None:
                continue
            try:
                out.put("os_version", hp.linux_os_version(text), path)
            except hp.ProbeParseError as exc:
                out.warn(path, str(exc))
            return
    elif os_name == "macos":
        # sw_vers first: a Python built against an old SDK sees "10.16" from platform.mac_ver().
        text = _run_probe(probes, out, ["sw_vers", "-productVersion"], "sw_vers")
        if text is not None:
            try:
                out.put("os_version", hp.parse_sw_vers(text), "sw_vers")
                return
            except hp.ProbeParseError as exc:
                out.warn("sw_vers", str(exc))
        if probes.platform.mac_ver and probes.platform.mac_ver != "10.16":
            out.put("os_version", probes.platform.mac_ver, "platform.mac_ver")
    elif os_name == "windows":
        try:
            out.put("os_version", hp.windows_os_version(probes.platform.version), "platform.version")
        except hp.ProbeParseError as exc:
            out.warn("platform.version", str(exc))


def _probe_libc(probes: Probes, out: _Collector) -> None:
    text = probes.confstr("CS_GNU_LIBC_VERSION")
    if text:
        try:
            libc = hp.parse_confstr_libc(text)
            out.put("libc", libc.name, "os.confstr")
            out.put("libc_version", libc.version, "os.confstr")
            return
        except hp.ProbeParseError as exc:
            out.warn("os.confstr", str(exc))
    # No glibc answer: musl (Alpine) answers `ldd --version` on stderr with exit status 1.
    try:
        result = probes.run(["ldd", "--version"])
    except (subprocess.TimeoutExpired, OSError) as exc:
        out.warn("ldd", f"cannot run: {exc}")
        result = None
    if result is not None:
        try:
            libc = hp.parse_ldd_version(result.stdout + result.stderr)
            out.put("libc", libc.name, "ldd --version")
            out.put("libc_version", libc.version, "ldd --version")
            return
        except hp.ProbeParseError as exc:
            out.warn("ldd", str(exc))
    for loader in probes.glob(MUSL_LOADER_GLOB):
        if hp.libc_from_loader_path(loader) == "musl":
            out.put("libc", "musl", loader)
            return


def _probe_resources(probes: Probes, out: _Collector, os_name: str) -> None:
    if out.missing("cpu_count"):
        count = probes.cpu_count()
        out.put("cpu_count", count if count and count > 0 else None, "os")
    if out.missing("memory_mib"):
        text = _read_probe(probes, out, "/proc/meminfo") if os_name == "linux" else None
        if text is not None:
            try:
                out.put("memory_mib", hp.parse_meminfo(text), "/proc/meminfo")
            except hp.ProbeParseError as exc:
                out.warn("/proc/meminfo", str(exc))
        if out.missing("memory_mib"):
            total = probes.memory_bytes()
            out.put("memory_mib", hp.bytes_to_mib(total) if total else None, "os")
    if out.missing("disk_free_mib"):
        try:
            free = probes.disk_free(probes.workdir)
        except OSError as exc:
            out.warn("disk", f"cannot measure free space at {probes.workdir}: {exc}")
            free = None
        out.put("disk_free_mib", hp.bytes_to_mib(free) if free is not None else None, "shutil.disk_usage")


def _probe_limits(probes: Probes, out: _Collector, os_name: str) -> None:
    if not out.missing("limits"):
        return

    def read(path: str) -> str | None:
        return _read_probe(probes, out, path)

    affinity = out.values.get("cpu_count") if out.sources.get("cpu_count") == "os" else probes.cpu_count()
    machine = probes.machine_cpu_count()
    try:
        if os_name == "linux":
            found = limits.read_limits(read, affinity, machine)
        else:
            found = h.Limits(affinity_cpus=affinity, machine_cpus=machine)
    except hp.ProbeParseError as exc:
        out.warn("cgroup", str(exc))
        found = h.Limits(affinity_cpus=affinity, machine_cpus=machine)
    out.put("limits", found, "cgroup" if found.cgroup else "os")


def detect(probes: Probes) -> Detection:
    """Describe the machine `probes` look at. Raises only for a bad override (InputError)."""
    out = _Collector(read_overrides(probes.environ, probes.gpu_names))
    info = probes.platform
    try:
        machine_os = hp.normalize_os(info.system)
        machine_arch = hp.normalize_arch(info.machine, machine_os)
    except hp.ProbeParseError as exc:
        if out.missing("os", "arch"):
            raise InputError(
                str(exc), hint=f"describe the target in a host file and pass --host FILE or {ENV_HOST}"
            ) from None
        machine_os = machine_arch = ""
    out.put("os", machine_os, "platform.system")
    out.put("arch", machine_arch, "platform.machine")
    os_name = out.values["os"]
    # A host file for another OS: do not mix in this machine's OS-specific facts.
    same_os = os_name == machine_os
    if same_os and out.missing("os_version"):
        _probe_os_version(probes, out, os_name)
    if same_os and os_name == "linux" and out.missing("libc", "libc_version"):
        _probe_libc(probes, out)
    if out.missing("python"):
        major, minor = info.python
        out.put("python", hp.python_tag(major, minor, info.free_threaded), "sys.version_info")
    # A host file's `gpus` (or STACK_RESOLVER_NO_GPU) answers for every vendor.
    gpus_given = out.sources.get("gpus") in (ENV_HOST, ENV_NO_GPU)
    if same_os:
        _probe_nvidia(probes, out, os_name)
    _probe_other_vendors(probes, out, os_name, same_os and not gpus_given)
    _probe_resources(probes, out, os_name)
    if same_os:
        _probe_limits(probes, out, os_name)

    values = out.values
    host = h.Host(
        os=values["os"],
        arch=values["arch"],
        os_version=values.get("os_version"),
        libc=values.get("libc"),
        libc_version=values.get("libc_version"),
        python=values.get("python"),
        python_version=values.get("python_version"),
        nvidia_driver=values.get("nvidia_driver"),
        cuda_driver_api=values.get("cuda_driver_api"),
        gpus=(
            *(values.get("gpus") or ()),
            *(values.get("amd_gpus") or ()),
            *(values.get("intel_gpus") or ()),
        ),
        rocm_version=values.get("rocm_version"),
        cpu_count=values.get("cpu_count"),
        memory_mib=values.get("memory_mib"),
        disk_free_mib=values.get("disk_free_mib"),
        sources={key: out.sources[key] for key in values if key in out.sources},
        cuda_visible_devices=values.get("cuda_visible_devices"),
        nvidia_visible_devices=values.get("nvidia_visible_devices"),
        visible_devices=values.get("visible_devices"),
        masked_gpus=tuple(values.get("masked_gpus") or ()),
        limits=values.get("limits"),
    )
    host, notes = visible.with_visibility(host, probes.environ)
    if "visible_devices" not in host.sources:
        named = [v for v, value in _visibility_vars(host) if value is not None]
        host = dataclasses.replace(
            host, sources={**host.sources, "visible_devices": ", ".join(named) or "every GPU"}
        )
    return Detection(host=host, warnings=(*out.warnings, *notes))


def _visibility_vars(host: h.Host) -> tuple[tuple[str, str | None], ...]:
    return (
        (visible.NVIDIA_VISIBLE_DEVICES, host.nvidia_visible_devices),
        (visible.CUDA_VISIBLE_DEVICES, host.cuda_visible_devices),
    )
