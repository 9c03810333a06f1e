"""What a conda lock is made from: the target host's virtual packages and the conda specs of a
resolution. Pure: values in, values out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from resolver.errors import InputError
from resolver.host.model import Host
from resolver.matrix.model import CondaFacts, CondaPlatform, Matrix
from resolver.matrix.vocab import CPU, CUDA, Variant
from resolver.solve.search import Resolution
from resolver.sources import Channels

# --- the target's virtual packages -----------------------------------------------------------


@dataclass(frozen=True, order=True)
class VirtualPackage:
    name: str
    version: str
    build: str = "0"

    @property
    def spec_text(self) -> str:
        """conda-lock's virtual-package-spec value: `version` or `version build`."""
        return self.version if self.build == "0" else f"{self.version} {self.build}"


def driver_cuda(host: Host, matrix: Matrix) -> str | None:
    """The CUDA version the host's driver supports (what `__cuda` reports): the host's own
    `cuda_driver_api`, else the newest toolkit whose driver (matrix) is at or below the host's."""
    if host.cuda_driver_api:
        return host.cuda_driver_api
    driver = host.driver
    if driver is None:
        return None
    fitting = [
        t.version
        for t in matrix.toolkits
        # unverified rows could overstate what the driver runs
        if not t.unverified and host.os in t.driver and t.driver[host.os] <= driver
    ]
    if not fitting:
        return None
    newest = max(fitting)
    return f"{newest.major}.{newest.minor}"


def conda_platform(host: Host, facts: CondaFacts) -> CondaPlatform:
    found = facts.platforms.get(host.platform)
    if found is None:
        raise InputError(
            "no conda platform for this host",
            value=host.platform,
            hint=f"conda locks cover {', '.join(sorted(facts.platforms))} (matrices/conda.toml)",
        )
    return found


def virtual_packages(host: Host, matrix: Matrix, facts: CondaFacts) -> tuple[VirtualPackage, ...]:
    platform = conda_platform(host, facts)
    found = [VirtualPackage("__archspec", "1", platform.archspec)]
    for name in platform.virtual:
        if name in ("__unix", "__win"):
            found.append(VirtualPackage(name, "0"))
        elif name == "__linux":
            found.append(VirtualPackage(name, facts.defaults["linux"]))
        elif name == "__glibc":
            if host.libc in (None, "glibc"):
                found.append(VirtualPackage(name, host.libc_version or facts.defaults["glibc"]))
        elif name == "__osx":
            found.append(VirtualPackage(name, host.os_version or facts.defaults["osx"]))
    cuda = driver_cuda(host, matrix) if host.os != "macos" else None
    if cuda is not None:
        found.append(VirtualPackage("__cuda", cuda))
    return tuple(sorted(found))


def virtual_package_spec(subdir: str, packages: Iterable[VirtualPackage]) -> str:
    """conda-lock's `--virtual-package-spec` file."""
    lines = ["subdirs:", f"  {subdir}:", "    packages:"]
    lines.extend(f"      {p.name}: {json.dumps(p.spec_text)}" for p in packages)
    return "\n".join(lines) + "\n"


# --- specs -----------------------------------------------------------------------------------


def conda_specs(resolution: Resolution, packages: Sequence[str], facts: CondaFacts) -> tuple[str, ...]:
    """The resolution as conda match specs, pinned; a CUDA target's torch must be a CUDA build."""
    if resolution.python.endswith("t"):
        raise InputError(
            "free-threaded Python has no conda mapping yet",
            value=resolution.python,
            hint="lock it with --format poetry, or resolve for a regular Python",
        )
    variant = resolution.variant
    parsed = Variant.of(variant)
    cuda_digits = parsed.number if parsed is not None and parsed.kind == CUDA else None
    if cuda_digits is None and variant != CPU:
        raise InputError(
            "no conda build mapping for this variant",
            value=variant,
            hint="conda locks cover CUDA and CPU builds; use --format poetry for ROCm",
        )

    def pinned(name: str, version: str) -> str:
        row = facts.packages.get(name)
        conda = row.conda if row is not None else name
        glob = None
        if row is not None:
            glob = row.build_cuda if cuda_digits is not None else row.build_cpu
        if glob is not None:
            return f"{conda} =={version} {glob.format(cuda=cuda_digits)}"
        return f"{conda} =={version}"

    specs = [f"python {resolution.python}.*", pinned("torch", str(resolution.release.version))]
    if resolution.cuda is not None:
        specs.append(f"{facts.cuda_package} {facts.cuda_pin.format(cuda=resolution.cuda)}")
    for companion, version in (
        ("torchvision", resolution.torchvision),
        ("torchaudio", resolution.torchaudio),
    ):
        if companion in packages and version is not None:
            specs.append(pinned(companion, str(version)))
    specs.append(pinned("transformers", str(resolution.transformers.version)))
    managed = {"torch", "torchvision", "torchaudio", "transformers", "python"}
    specs.extend(facts.conda_name(p) for p in packages if p not in managed)
    return tuple(specs)


def channel_strings(channels: Channels) -> tuple[str, ...]:
    """Channels as written to the files and solved: names stay names under the default alias;
    with a configured alias (a mirror, a loopback test channel) they become full URLs."""
    out = []
    for name in channels.names:
        if name.startswith(("http://", "https://", "file://")) or channels.alias is None:
            out.append(name.rstrip("/"))
        else:
            out.append(f"{channels.alias.rstrip('/')}/{name}")
    return tuple(out)


def render_environment(name: str, channels: Sequence[str], specs: Sequence[str], subdir: str) -> str:
    """environment.yml: plain YAML, every value a JSON string (valid YAML, no quoting surprises)."""
    lines = [
        "# Generated by stack-resolver from the resolution; locked in conda-lock.yml; rewritten on resolve.",
        f"name: {json.dumps(name)}",
        "channels:",
        *(f"  - {json.dumps(c)}" for c in channels),
        "  - nodefaults",
        "dependencies:",
        *(f"  - {json.dumps(s)}" for s in specs),
        "platforms:",
        f"  - {json.dumps(subdir)}",
    ]
    return "\n".join(lines) + "\n"
