"""The STACK_RESOLVER_* overrides: read first, before any probe, and beating a host file too.
An empty variable counts as unset; a malformed one is bad input naming the variable."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver.errors import InputError, Location
from resolver.host import hostfile as hf
from resolver.host import model as h
from resolver.host import spellings
from resolver.host.gpunames import CapabilityError, GpuNames, parse_capability

ENV_HOST = "STACK_RESOLVER_HOST"
ENV_NO_GPU = "STACK_RESOLVER_NO_GPU"
ENV_DRIVER = "STACK_RESOLVER_NVIDIA_DRIVER"
ENV_CUDA_API = "STACK_RESOLVER_CUDA_DRIVER_API"
ENV_GPUS = "STACK_RESOLVER_GPUS"
ENV_OS_VERSION = "STACK_RESOLVER_OS_VERSION"
ENV_GLIBC = "STACK_RESOLVER_GLIBC"
ENV_PYTHON = "STACK_RESOLVER_PYTHON"
ENV_AMD_GPUS = "STACK_RESOLVER_AMD_GPUS"
ENV_INTEL_GPUS = "STACK_RESOLVER_INTEL_GPUS"
ENV_ROCM_VERSION = "STACK_RESOLVER_ROCM_VERSION"

ENV_VARS = (
    ENV_HOST,
    ENV_NO_GPU,
    ENV_DRIVER,
    ENV_CUDA_API,
    ENV_GPUS,
    ENV_OS_VERSION,
    ENV_GLIBC,
    ENV_PYTHON,
    ENV_AMD_GPUS,
    ENV_INTEL_GPUS,
    ENV_ROCM_VERSION,
)


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def bad_env(name: str, value: str, message: str, hint: str) -> InputError:
    return InputError(message, location=Location(f"${name}"), value=value, hint=hint)


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    value = env_value(environ, name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise bad_env(name, value, "not a yes/no value", f"set {name}=1, or unset it")


def parse_gpus_override(
    text: str, name: str = ENV_GPUS, gpu_names: GpuNames | None = None
) -> tuple[h.Gpu, ...]:
    """`8.6,8.6` or `NVIDIA A100-SXM4-80GB=8.0:81920;NVIDIA RTX A6000=8.6:49140`; with `gpu_names`
    a product name stands for its capability (`RTX 4090,RTX 3090:24576`) and names the GPU."""
    gpus = []
    for index, entry in enumerate(e.strip() for e in re.split(r"[;,]", text)):
        if not entry:
            raise bad_env(name, text, f"GPU entry {index + 1} is empty", "separate GPUs with ';' or ','")
        gpu_name, _, rest = entry.rpartition("=")
        cc_text, _, memory_text = rest.partition(":")
        try:
            cc = parse_capability(cc_text, gpu_names)
        except CapabilityError as exc:
            shape = "each GPU is [NAME=]CC[:MEMORY_MIB], e.g. 8.6 or NVIDIA A100-SXM4-80GB=8.0:81920"
            if gpu_names is None:
                message, hint = " has no MAJOR.MINOR compute capability", shape
            else:
                message, hint = f": {exc.message}", f"{exc.hint}; each GPU is [NAME=]CC[:MEMORY_MIB]"
            raise bad_env(name, text, f"GPU entry {index + 1} ({entry!r}){message}", hint) from None
        if not gpu_name and not _is_capability(cc_text):
            gpu_name = cc_text  # "RTX 4090": the product named is the GPU's name
        memory: int | None = None
        if memory_text:
            if not re.fullmatch(r"\s*[0-9]+\s*", memory_text, re.ASCII):  # not "²", which isdigit()
                raise bad_env(
                    name,
                    text,
                    f"GPU entry {index + 1} ({entry!r}) has a memory that is not whole MiB",
                    "e.g. NVIDIA A100-SXM4-80GB=8.0:81920",
                )
            memory = int(memory_text)
        gpus.append(h.Gpu(index=index, name=gpu_name.strip(), compute_capability=cc, memory_mib=memory))
    return tuple(gpus)


def _is_capability(text: str) -> bool:
    try:
        h.ComputeCapability.parse(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Overrides:
    values: Mapping[str, Any]  # host field -> value
    sources: Mapping[str, str]  # host field -> variable name


def read_overrides(environ: Mapping[str, str], gpu_names: GpuNames | None = None) -> Overrides:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    # The host file first; the per-field variables below then replace what they name.
    host_path = env_value(environ, ENV_HOST)
    if host_path is not None:
        text = hf.read_host_text(Path(host_path))
        from_file = hf.parse_host_json(text, host_path, gpu_names)
        # Only the keys the file spells out win (a null too); its own `sources` described
        # another detection, so they are replaced by this variable's name.
        for key in json.loads(text):
            if key != "sources":
                values[key] = getattr(from_file, key)
                sources[key] = ENV_HOST
        if "python" in values:
            values["python_version"] = from_file.python_version

    def put(key: str, value: Any, variable: str) -> None:
        values[key] = value
        sources[key] = variable

    if env_flag(environ, ENV_NO_GPU):
        for variable in (ENV_GPUS, ENV_DRIVER, ENV_CUDA_API):
            if env_value(environ, variable) is not None:
                raise bad_env(
                    variable,
                    environ[variable],
                    f"conflicts with {ENV_NO_GPU}",
                    f"unset one of {variable} and {ENV_NO_GPU}",
                )
        put("nvidia_driver", None, ENV_NO_GPU)
        put("cuda_driver_api", None, ENV_NO_GPU)
        put("gpus", (), ENV_NO_GPU)

    if (value := env_value(environ, ENV_DRIVER)) is not None:
        try:
            h.DriverVersion.parse(value)
        except ValueError:
            raise bad_env(ENV_DRIVER, value, "not an NVIDIA driver version", "e.g. 535.104.05") from None
        put("nvidia_driver", value, ENV_DRIVER)
    if (value := env_value(environ, ENV_CUDA_API)) is not None:
        if not re.match(r"^\d+\.\d+$", value):
            raise bad_env(ENV_CUDA_API, value, "not a CUDA MAJOR.MINOR version", "e.g. 12.4")
        put("cuda_driver_api", value, ENV_CUDA_API)
    if (value := env_value(environ, ENV_GPUS)) is not None:
        put("gpus", parse_gpus_override(value, gpu_names=gpu_names), ENV_GPUS)
    if (value := env_value(environ, ENV_OS_VERSION)) is not None:
        put("os_version", value, ENV_OS_VERSION)
    if (value := env_value(environ, ENV_GLIBC)) is not None:
        if not re.match(r"^\d+\.\d+$", value):
            raise bad_env(ENV_GLIBC, value, "not a glibc MAJOR.MINOR version", "e.g. 2.35")
        put("libc", "glibc", ENV_GLIBC)
        put("libc_version", value, ENV_GLIBC)
    if (value := env_value(environ, ENV_PYTHON)) is not None:
        try:
            python = spellings.parse_python(value)
        except ValueError:
            raise bad_env(ENV_PYTHON, value, "not a Python 3 version", "e.g. 3.11, 3.11.9 or 3.13t") from None
        put("python", python.series, ENV_PYTHON)
        values["python_version"] = python.full if python.full != python.series else None
    return Overrides(values=values, sources=sources)


def with_overrides(host: h.Host, environ: Mapping[str, str], gpu_names: GpuNames | None = None) -> h.Host:
    """A host read from a file (`--host`), with the per-field variables applied: a variable beats
    the host file, as it does for `STACK_RESOLVER_HOST`. `STACK_RESOLVER_NO_GPU` only switches
    the NVIDIA probes off, and a host file is not probed, so it leaves the file's GPUs alone."""
    overrides = read_overrides(
        {k: v for k, v in environ.items() if k not in (ENV_HOST, ENV_NO_GPU)}, gpu_names
    )
    values, sources = dict(overrides.values), {**host.sources, **overrides.sources}
    if (value := env_value(environ, ENV_ROCM_VERSION)) is not None:
        # the probes' parsers (and their patterns) load only for this variable
        from resolver.host import parse as hp
        from resolver.host import vendors

        try:
            values["rocm_version"] = vendors.parse_rocm_version(value)
        except hp.ProbeParseError:
            raise bad_env(ENV_ROCM_VERSION, value, "not a ROCm version", "e.g. 6.4.1") from None
        sources["rocm_version"] = ENV_ROCM_VERSION
    if not values:
        return host
    return dataclasses.replace(host, **values, sources=sources)
