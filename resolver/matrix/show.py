"""`stack-resolver matrix show KIND KEY`: what the matrix says about one thing, with its sources.

Pure: a loaded `Matrix` in, text out. Unknown kinds or keys raise `InputError` with a hint.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.version import InvalidVersion, Version

from resolver.errors import InputError
from resolver.host.gpunames import CapabilityError, parse_capability
from resolver.host.model import ComputeCapability
from resolver.matrix.arch import Coverage, coverage, sm_list
from resolver.matrix.model import Build, Matrix
from resolver.matrix.products import close_products, gpu_names

KINDS = ("torch", "cuda", "gpu", "transformers")


def show(matrix: Matrix, kind: str, key: str) -> str:
    if kind == "torch":
        return _torch(matrix, _version(key, "torch", "2.7.1"))
    if kind == "cuda":
        return _cuda(matrix, _version(key, "CUDA", "12.8"))
    if kind == "gpu":
        return _gpu(matrix, _cc(matrix, key))
    if kind == "transformers":
        return _transformers(matrix, _version(key, "transformers", "4.46.3"))
    raise InputError("unknown kind for matrix show", value=kind, hint="one of " + ", ".join(KINDS))


def _version(text: str, what: str, example: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise InputError(f"not a {what} version", value=text, hint=f"e.g. {example}") from None


def _cc(matrix: Matrix, text: str) -> ComputeCapability:
    """8.9, sm_89, or a product name ("RTX 4090")."""
    cleaned = text.removeprefix("sm_")
    if cleaned != text and cleaned.isdigit() and len(cleaned) >= 2:
        cleaned = f"{cleaned[:-1]}.{cleaned[-1]}"
    try:
        return parse_capability(cleaned, gpu_names(matrix))
    except CapabilityError as exc:
        hint = exc.hint
        if not exc.ambiguous:  # here sm_89 is a capability too
            close = close_products(matrix, text)
            hint = (
                f"close: {'; '.join(close)}" if close else 'e.g. "RTX 4090"'
            ) + "; or a capability: 8.9 or sm_89"
        raise InputError(exc.message, value=text, hint=hint) from None


def _cite(matrix: Matrix, keys: Iterable[str], indent: str = "  ") -> list[str]:
    lines = []
    for key in dict.fromkeys(keys):
        source = matrix.sources.get(key)
        lines.append(f"{indent}[{key}] {source.cite()}" if source else f"{indent}[{key}]")
    return lines


def _flag(unverified: bool) -> str:
    return " (unverified)" if unverified else ""


def _build_lines(build: Build) -> list[str]:
    lines = [f"  {build.variant}{_flag(build.unverified)}"]
    for platform, targets in build.arch.items():
        flag = " (unverified)" if platform in build.unverified_platforms and not build.unverified else ""
        if not flag and build.is_indirect_on(platform):
            flag = " (confirmed indirectly)"
        gfx = " ".join(build.gfx.get(platform, ()))
        arch = sm_list(targets) if targets else gfx or "-"
        lines.append(f"    {platform}: {arch}{flag}")
    if build.note:
        lines.append(f"    note: {build.note}")
    return lines


def _torch(matrix: Matrix, version: Version) -> str:
    release = matrix.release(version)
    if release is None:
        known = ", ".join(str(r.version) for r in matrix.torch[:5])
        raise InputError("torch release not in the matrix", value=str(version), hint=f"newest: {known}")
    out = [f"torch {release.version}{_flag(release.unverified)} (released {release.date})"]
    out.append(f"requires_python: {release.requires_python}")
    out.append("wheels (platform: Python versions; PyPI default variant):")
    for platform, pythons in release.python.items():
        default = release.default_variant.get(platform, "?")
        out.append(f"  {platform}: {', '.join(pythons)}; PyPI serves {default}")
    for arch, floor in release.glibc_min.items():
        out.append(f"glibc floor ({arch}): {floor}")
    for arch, floor in release.macos_min_arch.items():
        out.append(f"macOS minimum ({arch}): {floor}")
        for python, wheel_floor in release.macos_min_python.get(arch, {}).items():
            out.append(f"macOS minimum ({arch}, Python {python} wheel): {wheel_floor}")
    out.append("variants (GPU architectures per platform):")
    sources = list(release.sources)
    for variant in release.variants:
        build = matrix.build(release, variant)
        if build is None:
            out.append(f"  {variant}: no build data")
            continue
        out.extend(_build_lines(build))
        sources.extend(build.sources)
    pair = matrix.companions.get(release.version)
    if pair is not None:
        vision = pair.torchvision or "none"
        audio = pair.torchaudio or "none"
        out.append(f"companions: torchvision {vision}, torchaudio {audio}{_flag(pair.unverified)}")
        sources.extend(pair.sources)
    if release.note:
        out.append(f"note: {release.note}")
    out.append("sources:")
    out.extend(_cite(matrix, sources))
    return "\n".join(out) + "\n"


def _cuda(matrix: Matrix, version: Version) -> str:
    family = matrix.cuda_families.get(version.major)
    toolkit = matrix.toolkit(version)
    if family is None and toolkit is None:
        known = ", ".join(f"{m}.x" for m in matrix.cuda_families)
        raise InputError(
            "CUDA version not in the matrix", value=str(version), hint=f"known families: {known}"
        )
    out = [f"CUDA {version}"]
    sources: list[str] = []
    if family is not None:
        mode = (
            "minor-version compatibility"
            if family.minor_version_compatibility
            else "no minor-version compatibility"
        )
        out.append(f"family {family.major}.x ({mode}):")
        for os_name in ("linux", "windows"):
            floor = family.min_driver.get(os_name)
            indirect = (
                " (confirmed indirectly)" if family is not None and os_name in family.indirect_os else ""
            )
            out.append(
                f"  minimum driver ({os_name}): {floor if floor else 'unknown (unverified)'}{indirect}"
            )
        out.append(f"  can target compute capabilities {family.cc_min} to {family.cc_max}")
        if family.note:
            out.append(f"  note: {family.note}")
        sources.extend(family.sources)
    if toolkit is not None:
        out.append(f"toolkit {toolkit.version}{_flag(toolkit.unverified)}, ships with driver:")
        for os_name in ("linux", "windows"):
            driver = toolkit.driver.get(os_name)
            out.append(f"  {os_name}: {driver if driver else 'unknown (unverified)'}")
        sources.extend(toolkit.sources)
    for os_name in ("linux", "windows"):
        floor = matrix.driver_floor(version, os_name)
        out.append(
            f"a cu{version.major}{version.minor} wheel needs on {os_name}: {floor if floor else 'unknown'}"
        )
    targetable = [
        gpu
        for gpu in matrix.gpus.values()
        if gpu.targetable_by(version) and (family is None or family.can_target(gpu.cc))
    ]
    out.append(
        "GPU architectures it can target: "
        + (", ".join(f"{g.cc} ({g.architecture})" for g in targetable) or "-")
    )
    users = [
        build
        for build in matrix.builds.values()
        if build.cuda is not None and build.cuda.release[:2] == version.release[:2]
    ]
    users.sort(key=lambda b: Version(b.series), reverse=True)
    out.append(
        "torch builds using it: "
        + (", ".join(f"{b.series} {b.variant}{_flag(b.unverified)}" for b in users) or "none")
    )
    out.append("sources:")
    out.extend(_cite(matrix, sources))
    return "\n".join(out) + "\n"


def _gpu(matrix: Matrix, cc: ComputeCapability) -> str:
    gpu = matrix.gpu(cc)
    if gpu is None:
        known = ", ".join(str(c) for c in matrix.gpus)
        raise InputError("compute capability not in the matrix", value=str(cc), hint=f"known: {known}")
    out = [f"compute capability {cc} ({cc.sm}){_flag(gpu.unverified)}"]
    if gpu.cc != cc:
        out.append(f"listed as {gpu.cc} (alias)")
    out.append(f"architecture: {gpu.architecture}{' (Tegra/Jetson)' if gpu.tegra else ''}")
    out.append(f"products: {', '.join(gpu.products)}" + (" (confirmed indirectly)" if gpu.indirect else ""))
    if gpu.aliases:
        out.append(f"also known as: {', '.join(str(a) for a in gpu.aliases)}")
    span = []
    if gpu.first_cuda:
        span.append(f"from CUDA {gpu.first_cuda}")
    if gpu.removed_in_cuda:
        span.append(f"until before CUDA {gpu.removed_in_cuda}")
    if span:
        out.append("targetable " + " ".join(span))
    if gpu.note:
        out.append(f"note: {gpu.note}")
    native: dict[str, list[str]] = {}
    ptx: dict[str, list[str]] = {}
    builds = sorted(matrix.builds.values(), key=lambda b: (Version(b.series), b.variant), reverse=True)
    for build in builds:
        if build.kind != "cuda":
            continue
        for platform, targets in build.arch.items():
            how = coverage(targets, cc, matrix.tegra_rule_for(build.cuda))
            label = f"{build.series} {build.variant}{_flag(build.is_unverified_on(platform))}"
            if how is Coverage.CUBIN:
                native.setdefault(platform, []).append(label)
            elif how is Coverage.PTX:
                ptx.setdefault(platform, []).append(label)
    out.append("torch builds with native kernels for it:")
    for platform, labels in native.items():
        out.append(f"  {platform}: {', '.join(labels)}")
    if not native:
        out.append("  none")
    if ptx:
        out.append("torch builds reaching it only through PTX JIT:")
        for platform, labels in ptx.items():
            out.append(f"  {platform}: {', '.join(labels)}")
    out.append("sources:")
    out.extend(_cite(matrix, gpu.sources))
    return "\n".join(out) + "\n"


def _transformers(matrix: Matrix, version: Version) -> str:
    row = matrix.transformers_release(version)
    if row is None:
        newest = ", ".join(str(t.version) for t in matrix.transformers[:3])
        raise InputError(
            "transformers release not in the matrix", value=str(version), hint=f"newest: {newest}"
        )
    out = [f"transformers {row.version}{_flag(row.unverified)}{' (yanked)' if row.yanked else ''}"]
    if row.upload_date:
        out.append(f"uploaded: {row.upload_date}")
    out.append(f"requires_python: {row.requires_python}")
    out.append(f"torch extra: torch{row.torch}" if str(row.torch) else "torch extra: torch (any version)")
    out.append(
        f"import-time torch gate: >= {row.runtime_min_torch}"
        if row.runtime_min_torch
        else "import-time torch gate: none"
    )
    fits = [
        str(r.version)
        for r in matrix.torch
        if row.torch.contains(r.version, prereleases=True)
        and (row.runtime_min_torch is None or r.version >= row.runtime_min_torch)
    ]
    out.append("torch releases in the matrix it accepts: " + (", ".join(fits) or "none"))
    if row.note:
        out.append(f"note: {row.note}")
    out.append("sources:")
    out.extend(_cite(matrix, row.sources))
    return "\n".join(out) + "\n"
