"""`stack-resolver doctor`: compare the host with the team's minimum requirements.

The minimums live in the `[requirements]` table of `envs/team.toml` (or the file given to
`--requirements`). Every key is optional; a missing table means no requirements.

    [requirements]
    min_ram_gib = 32                  # total RAM (MemTotal), GiB
    min_gpu_memory_gib = 24           # memory of EVERY NVIDIA GPU, GiB
    min_disk_free_gib = 100           # free disk at the working directory, GiB
    min_cpu_cores = 8                 # CPUs this process may use (affinity-aware)
    min_compute_capability = "8.0"    # of EVERY NVIDIA GPU, "MAJOR.MINOR" or a GPU name ("A100")
    min_driver = "535"                # NVIDIA driver, "535" or "535.104.05"

GiB values may be fractional (`min_ram_gib = 15.5`). Reported totals sit a little under the
marketing size: MemTotal excludes kernel-reserved memory (a 64 GiB machine reports about
62.7 GiB) and an "80GB" H100 reports 81559 MiB (79.6 GiB), so ask for slightly less than the
nominal size. A failing check within 5% of its minimum says so.

A GPU requirement on a host without an NVIDIA GPU fails ("no NVIDIA GPU"); a value the host does
not report (a host file that omits it) is skipped, not failed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from resolver import files
from resolver.errors import ConfigError, Location
from resolver.host.gpunames import CapabilityError, GpuNames, parse_capability
from resolver.host.model import ComputeCapability, DriverVersion, Host

Status = Literal["pass", "fail", "skip"]

REQUIREMENT_KEYS = (
    "min_ram_gib",
    "min_gpu_memory_gib",
    "min_disk_free_gib",
    "min_cpu_cores",
    "min_compute_capability",
    "min_driver",
)
_NEAR_MISS = 0.05


@dataclass(frozen=True)
class Requirements:
    """Minimums; None means "no requirement". Sizes in MiB."""

    min_memory_mib: int | None = None
    min_gpu_memory_mib: int | None = None
    min_disk_free_mib: int | None = None
    min_cpu_count: int | None = None
    min_compute_capability: ComputeCapability | None = None
    min_driver: DriverVersion | None = None

    @property
    def empty(self) -> bool:
        return self == Requirements()


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    measured: str
    required: str
    detail: str = ""


# --- reading ----------------------------------------------------------------------------------


def _error(origin: str, key: str, message: str, value: object, hint: str) -> ConfigError:
    return ConfigError(message, location=Location(origin, key=f"requirements.{key}"), value=value, hint=hint)


def _gib(data: Mapping[str, Any], key: str, origin: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2**40:
        raise _error(origin, key, f"'{key}' must be a non-negative number of GiB", value, f"e.g. {key} = 16")
    return round(value * 1024)


def requirements_from_mapping(data: Any, origin: str, gpu_names: GpuNames | None = None) -> Requirements:
    """Validate a decoded `[requirements]` table. `origin` names the file in errors; with
    `gpu_names`, `min_compute_capability` may name a GPU ("A100" for 8.0)."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            "[requirements] must be a table",
            location=Location(origin, key="requirements"),
            value=data,
            hint="write it as a [requirements] section with key = value lines",
        )
    for key in data:
        if key not in REQUIREMENT_KEYS:
            close = difflib.get_close_matches(str(key), REQUIREMENT_KEYS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _error(
                origin, str(key), "unknown requirement", key, f"{hint}known: {', '.join(REQUIREMENT_KEYS)}"
            )

    cores = data.get("min_cpu_cores")
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, int) or cores < 0):
        raise _error(origin, "min_cpu_cores", "'min_cpu_cores' must be a whole number", cores, "e.g. 8")

    cc: ComputeCapability | None = None
    if (cc_value := data.get("min_compute_capability")) is not None:
        example = 'e.g. min_compute_capability = "8.0" (quoted: 8.0 and 8.00 are the same TOML float)'
        if not isinstance(cc_value, str):
            message = "compute capability must be a quoted MAJOR.MINOR"
            raise _error(origin, "min_compute_capability", message, cc_value, example)
        try:
            cc = parse_capability(cc_value, gpu_names)
        except CapabilityError as exc:
            message, hint = (
                (exc.message, exc.hint)
                if gpu_names
                else ("compute capability must be a quoted MAJOR.MINOR", example)
            )
            raise _error(origin, "min_compute_capability", message, cc_value, hint) from None

    driver: DriverVersion | None = None
    if (driver_value := data.get("min_driver")) is not None:
        # A bare integer (535) is unambiguous; a float (535.1) is not, so it must be quoted.
        text = (
            str(driver_value)
            if isinstance(driver_value, int) and not isinstance(driver_value, bool)
            else None
        )
        text = driver_value if isinstance(driver_value, str) else text
        try:
            if text is None:
                raise ValueError
            driver = DriverVersion.parse(text)
        except ValueError:
            raise _error(
                origin,
                "min_driver",
                "driver version must be a quoted version",
                driver_value,
                'e.g. min_driver = "535" or "535.104.05"',
            ) from None

    return Requirements(
        min_memory_mib=_gib(data, "min_ram_gib", origin),
        min_gpu_memory_mib=_gib(data, "min_gpu_memory_gib", origin),
        min_disk_free_mib=_gib(data, "min_disk_free_gib", origin),
        min_cpu_count=cores,
        min_compute_capability=cc,
        min_driver=driver,
    )


def read_requirements(path: Path, gpu_names: GpuNames | None = None) -> Requirements:
    """The `[requirements]` table of a TOML file (`envs/team.toml`); none when it has no table."""
    origin = str(path)
    text = files.read_text(path, "requirements file", error=ConfigError, hint="check the --requirements path")
    import tomlkit  # only where a requirements file is read
    import tomlkit.exceptions

    try:
        document = tomlkit.parse(text).unwrap()
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(
            f"not valid TOML: {exc}", location=Location(origin, line=exc.line), hint="fix the TOML syntax"
        ) from None
    if "requirements" not in document:
        return Requirements()
    return requirements_from_mapping(document["requirements"], origin, gpu_names)


# --- checking ---------------------------------------------------------------------------------


def _fmt_mib(mib: int) -> str:
    gib = mib / 1024
    return f"{gib:.0f} GiB" if gib == int(gib) else f"{gib:.1f} GiB"


def _size_check(name: str, measured: int | None, minimum: int, where: str = "") -> Check:
    required = f">= {_fmt_mib(minimum)}"
    if measured is None:
        return Check(name, "skip", "not measured", required, "the host does not report it")
    shown = f"{_fmt_mib(measured)} ({measured} MiB){where}"
    if measured >= minimum:
        return Check(name, "pass", shown, required)
    detail = f"short by {_fmt_mib(minimum - measured)}"
    if measured >= minimum * (1 - _NEAR_MISS):
        detail += (
            "; within 5%: reported totals exclude reserved memory, so if this machine has the"
            " nominal size, lower the minimum slightly"
        )
    return Check(name, "fail", shown, required, detail)


def _gpu_memory_check(host: Host, minimum: int) -> Check:
    name, required = "GPU memory", f">= {_fmt_mib(minimum)} per GPU"
    if not host.gpus:
        return Check(name, "fail", "no NVIDIA GPU", required)
    if any(gpu.memory_mib is None for gpu in host.gpus):
        return Check(name, "skip", "not measured", required, "a GPU's memory is not reported")
    smallest = min(host.gpus, key=lambda gpu: (gpu.memory_mib or 0, gpu.index))
    where = f" on GPU {smallest.index} ({smallest.name})" if len(host.gpus) > 1 else ""
    check = _size_check(name, smallest.memory_mib, minimum, where)
    return Check(check.name, check.status, check.measured, required, check.detail)


def _cc_check(host: Host, minimum: ComputeCapability) -> Check:
    name, required = "compute capability", f">= {minimum} ({minimum.sm})"
    nvidia = host.nvidia_gpus
    if not nvidia:
        return Check(name, "fail", "no NVIDIA GPU", required)
    lowest = min(nvidia, key=lambda gpu: (gpu.cc, gpu.index))
    cc = lowest.cc
    shown = f"{cc} ({cc.sm})" + (f" on GPU {lowest.index} ({lowest.name})" if len(nvidia) > 1 else "")
    if cc >= minimum:
        return Check(name, "pass", shown, required)
    return Check(name, "fail", shown, required, f"{lowest.name or 'the GPU'} is older than {minimum.sm}")


def _driver_check(host: Host, minimum: DriverVersion) -> Check:
    name, required = "NVIDIA driver", f">= {minimum}"
    if host.nvidia_driver is None:
        return Check(name, "fail", "no NVIDIA driver", required)
    try:
        driver = DriverVersion.parse(host.nvidia_driver)
    except ValueError:
        return Check(name, "skip", host.nvidia_driver, required, "not a version this tool can compare")
    # "535" means any 535.x: compare only as many parts as the minimum names.
    if driver.parts[: len(minimum.parts)] >= minimum.parts:
        return Check(name, "pass", host.nvidia_driver, required)
    return Check(name, "fail", host.nvidia_driver, required, "upgrade the NVIDIA driver")


def _memory_limited(host: Host) -> bool:
    limit = host.limits.memory_max_mib if host.limits else None
    return limit is not None and host.memory_mib is not None and limit < host.memory_mib


def _cpus_limited(host: Host) -> bool:
    quota = host.limits.cpu_quota if host.limits else None
    return quota is not None and host.cpu_count is not None and quota < host.cpu_count


def _cpu_check(host: Host, minimum: int) -> Check:
    required = f">= {minimum}"
    cpus = host.effective_cpus
    if cpus is None:
        return Check("CPU cores", "skip", "not measured", required, "the host does not report it")
    shown = f"{cpus:g}"
    if _cpus_limited(host):
        shown += f" (cgroup CPU quota; affinity {host.cpu_count})"
    elif host.limits and host.limits.machine_cpus and host.limits.machine_cpus != host.cpu_count:
        shown += f" (affinity mask; machine {host.limits.machine_cpus})"
    return Check("CPU cores", "pass" if cpus >= minimum else "fail", shown, required)


def check(host: Host, req: Requirements) -> tuple[Check, ...]:
    """One check per requirement that is set, in a fixed order. RAM and CPUs are what this
    process may use: a cgroup limit or CPU quota below the machine's totals is the measure."""
    checks: list[Check] = []
    if req.min_memory_mib is not None:
        where = ""
        if _memory_limited(host):
            where = f" cgroup limit; machine {_fmt_mib(host.memory_mib or 0)}"
        checks.append(_size_check("RAM", host.effective_memory_mib, req.min_memory_mib, where))
    if req.min_cpu_count is not None:
        checks.append(_cpu_check(host, req.min_cpu_count))
    if req.min_disk_free_mib is not None:
        checks.append(_size_check("free disk", host.disk_free_mib, req.min_disk_free_mib))
    if req.min_driver is not None:
        checks.append(_driver_check(host, req.min_driver))
    if req.min_compute_capability is not None:
        checks.append(_cc_check(host, req.min_compute_capability))
    if req.min_gpu_memory_mib is not None:
        checks.append(_gpu_memory_check(host, req.min_gpu_memory_mib))
    return tuple(checks)


def render_limits(host: Host) -> str:
    """One line on what this process may use beside the machine's totals; empty when no limit
    was recorded."""
    limits = host.limits
    if limits is None:
        return ""
    parts = []
    if limits.memory_max_mib is not None:
        machine = f" of {_fmt_mib(host.memory_mib)}" if host.memory_mib is not None else ""
        parts.append(f"memory {_fmt_mib(limits.memory_max_mib)}{machine} (cgroup {limits.cgroup})")
    if limits.cpu_quota is not None:
        parts.append(f"CPU quota {limits.cpu_quota:g} (cgroup {limits.cgroup})")
    if limits.cgroup is not None and not parts:
        parts.append(f"cgroup {limits.cgroup}: no memory or CPU limit")
    if limits.affinity_cpus is not None and limits.machine_cpus is not None:
        parts.append(f"CPUs {limits.affinity_cpus} of {limits.machine_cpus} (affinity)")
    if not parts:
        return "limits: none (no cgroup limit found)\n"
    return "limits: " + ", ".join(parts) + "\n"


def checks_json(host: Host, checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "ok": not any(c.status == "fail" for c in checks),
        "memory_mib": host.memory_mib,
        "effective_memory_mib": host.effective_memory_mib,
        "cpu_count": host.cpu_count,
        "effective_cpus": host.effective_cpus,
        "limits": host.limits.to_json() if host.limits else None,
        "checks": [
            {
                "name": c.name,
                "status": c.status,
                "measured": c.measured,
                "required": c.required,
                "detail": c.detail,
            }
            for c in checks
        ],
    }


def render_checks(checks: Sequence[Check]) -> str:
    if not checks:
        return "no requirements set (add a [requirements] table to envs/team.toml)\n"
    name_width = max(len(c.name) for c in checks) + 2
    measured_width = max(len(c.measured) for c in checks) + 2
    lines = []
    for c in checks:
        line = f"{c.status.upper():<6}{c.name:<{name_width}}{c.measured:<{measured_width}}need {c.required}"
        if c.detail:
            line += f"  ({c.detail})"
        lines.append(line.rstrip())
    counts = {status: sum(c.status == status for c in checks) for status in ("pass", "fail", "skip")}
    summary = f"{len(checks)} checks: {counts['pass']} passed, {counts['fail']} failed"
    if counts["skip"]:
        summary += f", {counts['skip']} skipped"
    return "\n".join([*lines, summary]) + "\n"
