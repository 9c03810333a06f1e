"""`stack-resolver matrix show KIND KEY`: what the matrix says about one thing, with its sources.

Pure: a loaded `Matrix` in; `show_data` gives the facts as JSON-ready data (`--json`), `show` the
same data as text. Unknown kinds or keys raise `InputError` with a hint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packaging.version import InvalidVersion, Version

from resolver.errors import InputError
from resolver.host.gpunames import CapabilityError, parse_capability
from resolver.host.model import ComputeCapability
from resolver.matrix.arch import Coverage, coverage
from resolver.matrix.model import Build, Matrix
from resolver.matrix.products import close_products, gpu_names

KINDS = ("torch", "cuda", "gpu", "transformers")
OSES = ("linux", "windows")

Data = dict[str, Any]


def show_data(matrix: Matrix, kind: str, key: str) -> Data:
    """What the matrix says about `key` of `kind`: objects with fields, sources cited."""
    if kind == "torch":
        data = _torch(matrix, _version(key, "torch", "2.7.1"))
    elif kind == "cuda":
        data = _cuda(matrix, _version(key, "CUDA", "12.8"))
    elif kind == "gpu":
        data = _gpu(matrix, _cc(matrix, key))
    elif kind == "transformers":
        data = _transformers(matrix, _version(key, "transformers", "4.46.3"))
    else:
        raise InputError("unknown kind for matrix show", value=kind, hint="one of " + ", ".join(KINDS))
    return {"kind": kind, "key": key, **data}


def show(matrix: Matrix, kind: str, key: str) -> str:
    """The same facts as text, one per line."""
    data = show_data(matrix, kind, key)
    lines = _TEXT[kind](data)
    lines.append("sources:")
    lines.extend(f"  [{s['key']}] {s['cite']}" if s["cite"] else f"  [{s['key']}]" for s in data["sources"])
    return "\n".join(lines) + "\n"


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


def _sources(matrix: Matrix, keys: Iterable[str]) -> list[Data]:
    cited = []
    for key in dict.fromkeys(keys):
        source = matrix.sources.get(key)
        cited.append({"key": key, "cite": source.cite() if source else None})
    return cited


def _flag(unverified: bool) -> str:
    return " (unverified)" if unverified else ""


def _build(build: Build) -> Data:
    platforms = {
        platform: {
            "arch": [f"{t.cc.sm}{'+PTX' if t.ptx else ''}" for t in sorted(targets)],
            "gfx": list(build.gfx.get(platform, ())),
            "unverified": build.is_unverified_on(platform),
            "indirect": build.is_indirect_on(platform),
        }
        for platform, targets in build.arch.items()
    }
    return {
        "variant": build.variant,
        "unverified": build.unverified,
        "platforms": platforms,
        "note": build.note,
    }


def _build_text(build: Data) -> list[str]:
    lines = [f"  {build['variant']}{_flag(build['unverified'])}"]
    for platform, facts in build["platforms"].items():
        flag = " (unverified)" if facts["unverified"] and not build["unverified"] else ""
        if not flag and facts["indirect"]:
            flag = " (confirmed indirectly)"
        arch = " ".join(facts["arch"]) or " ".join(facts["gfx"]) or "-"
        lines.append(f"    {platform}: {arch}{flag}")
    if build["note"]:
        lines.append(f"    note: {build['note']}")
    return lines


# --- torch ------------------------------------------------------------------------------------


def _torch(matrix: Matrix, version: Version) -> Data:
    release = matrix.release(version)
    if release is None:
        known = ", ".join(str(r.version) for r in matrix.torch[:5])
        raise InputError("torch release not in the matrix", value=str(version), hint=f"newest: {known}")
    sources = list(release.sources)
    variants: list[Data] = []
    for variant in release.variants:
        build = matrix.build(release, variant)
        if build is None:
            variants.append({"variant": variant, "platforms": None})
            continue
        variants.append(_build(build))
        sources.extend(build.sources)
    pair = matrix.companions.get(release.version)
    companions = None
    if pair is not None:
        companions = {
            "torchvision": str(pair.torchvision) if pair.torchvision else None,
            "torchaudio": str(pair.torchaudio) if pair.torchaudio else None,
            "unverified": pair.unverified,
        }
        sources.extend(pair.sources)
    return {
        "version": str(release.version),
        "unverified": release.unverified,
        "released": release.date,
        "requires_python": str(release.requires_python),
        "wheels": {
            platform: {"python": list(pythons), "default_variant": release.default_variant.get(platform)}
            for platform, pythons in release.python.items()
        },
        "glibc_min": {arch: str(floor) for arch, floor in release.glibc_min.items()},
        "macos_min": {
            arch: {
                "floor": str(floor),
                "python": {py: str(f) for py, f in release.macos_min_python.get(arch, {}).items()},
            }
            for arch, floor in release.macos_min_arch.items()
        },
        "variants": variants,
        "companions": companions,
        "note": release.note,
        "sources": _sources(matrix, sources),
    }


def _torch_text(data: Data) -> list[str]:
    out = [f"torch {data['version']}{_flag(data['unverified'])} (released {data['released']})"]
    out.append(f"requires_python: {data['requires_python']}")
    out.append("wheels (platform: Python versions; PyPI default variant):")
    for platform, wheels in data["wheels"].items():
        out.append(
            f"  {platform}: {', '.join(wheels['python'])}; PyPI serves {wheels['default_variant'] or '?'}"
        )
    for arch, floor in data["glibc_min"].items():
        out.append(f"glibc floor ({arch}): {floor}")
    for arch, macos in data["macos_min"].items():
        out.append(f"macOS minimum ({arch}): {macos['floor']}")
        for python, wheel_floor in macos["python"].items():
            out.append(f"macOS minimum ({arch}, Python {python} wheel): {wheel_floor}")
    out.append("variants (GPU architectures per platform):")
    for build in data["variants"]:
        if build["platforms"] is None:
            out.append(f"  {build['variant']}: no build data")
        else:
            out.extend(_build_text(build))
    pair = data["companions"]
    if pair is not None:
        vision, audio = pair["torchvision"] or "none", pair["torchaudio"] or "none"
        out.append(f"companions: torchvision {vision}, torchaudio {audio}{_flag(pair['unverified'])}")
    if data["note"]:
        out.append(f"note: {data['note']}")
    return out


# --- CUDA -------------------------------------------------------------------------------------


def _cuda(matrix: Matrix, version: Version) -> Data:
    family = matrix.cuda_families.get(version.major)
    toolkit = matrix.toolkit(version)
    if family is None and toolkit is None:
        known = ", ".join(f"{m}.x" for m in matrix.cuda_families)
        raise InputError(
            "CUDA version not in the matrix", value=str(version), hint=f"known families: {known}"
        )
    sources: list[str] = []
    family_data = None
    if family is not None:
        family_data = {
            "major": family.major,
            "minor_version_compatibility": family.minor_version_compatibility,
            "min_driver": {
                os_name: {
                    "driver": str(floor) if (floor := family.min_driver.get(os_name)) else None,
                    "indirect": os_name in family.indirect_os,
                }
                for os_name in OSES
            },
            "cc_min": str(family.cc_min),
            "cc_max": str(family.cc_max),
            "note": family.note,
        }
        sources.extend(family.sources)
    toolkit_data = None
    if toolkit is not None:
        toolkit_data = {
            "version": str(toolkit.version),
            "unverified": toolkit.unverified,
            "driver": {os_name: str(d) if (d := toolkit.driver.get(os_name)) else None for os_name in OSES},
        }
        sources.extend(toolkit.sources)
    targetable = [
        {"compute_capability": str(gpu.cc), "architecture": gpu.architecture}
        for gpu in matrix.gpus.values()
        if gpu.targetable_by(version) and (family is None or family.can_target(gpu.cc))
    ]
    users = [
        build
        for build in matrix.builds.values()
        if build.cuda is not None and build.cuda.release[:2] == version.release[:2]
    ]
    users.sort(key=lambda b: Version(b.series), reverse=True)
    return {
        "version": str(version),
        "family": family_data,
        "toolkit": toolkit_data,
        "wheel_driver_floor": {
            os_name: str(f) if (f := matrix.driver_floor(version, os_name)) else None for os_name in OSES
        },
        "targetable_gpus": targetable,
        "torch_builds": [
            {"series": b.series, "variant": b.variant, "unverified": b.unverified} for b in users
        ],
        "sources": _sources(matrix, sources),
    }


def _cuda_text(data: Data) -> list[str]:
    out = [f"CUDA {data['version']}"]
    family = data["family"]
    if family is not None:
        no = "" if family["minor_version_compatibility"] else "no "
        out.append(f"family {family['major']}.x ({no}minor-version compatibility):")
        for os_name, floor in family["min_driver"].items():
            indirect = " (confirmed indirectly)" if floor["indirect"] else ""
            out.append(f"  minimum driver ({os_name}): {floor['driver'] or 'unknown (unverified)'}{indirect}")
        out.append(f"  can target compute capabilities {family['cc_min']} to {family['cc_max']}")
        if family["note"]:
            out.append(f"  note: {family['note']}")
    toolkit = data["toolkit"]
    if toolkit is not None:
        out.append(f"toolkit {toolkit['version']}{_flag(toolkit['unverified'])}, ships with driver:")
        for os_name, driver in toolkit["driver"].items():
            out.append(f"  {os_name}: {driver or 'unknown (unverified)'}")
    version = Version(data["version"])
    label = f"cu{version.major}{version.minor}"
    for os_name, floor in data["wheel_driver_floor"].items():
        out.append(f"a {label} wheel needs on {os_name}: {floor or 'unknown'}")
    gpus = ", ".join(f"{g['compute_capability']} ({g['architecture']})" for g in data["targetable_gpus"])
    out.append("GPU architectures it can target: " + (gpus or "-"))
    builds = ", ".join(f"{b['series']} {b['variant']}{_flag(b['unverified'])}" for b in data["torch_builds"])
    out.append("torch builds using it: " + (builds or "none"))
    return out


# --- GPU --------------------------------------------------------------------------------------


def _gpu(matrix: Matrix, cc: ComputeCapability) -> Data:
    gpu = matrix.gpu(cc)
    if gpu is None:
        known = ", ".join(str(c) for c in matrix.gpus)
        raise InputError("compute capability not in the matrix", value=str(cc), hint=f"known: {known}")
    native: dict[str, list[Data]] = {}
    ptx: dict[str, list[Data]] = {}
    builds = sorted(matrix.builds.values(), key=lambda b: (Version(b.series), b.variant), reverse=True)
    for build in builds:
        if build.kind != "cuda":
            continue
        for platform, targets in build.arch.items():
            how = coverage(targets, cc, matrix.tegra_rule_for(build.cuda))
            entry = {
                "series": build.series,
                "variant": build.variant,
                "unverified": build.is_unverified_on(platform),
            }
            if how is Coverage.CUBIN:
                native.setdefault(platform, []).append(entry)
            elif how is Coverage.PTX:
                ptx.setdefault(platform, []).append(entry)
    return {
        "compute_capability": str(cc),
        "sm": cc.sm,
        "listed_as": str(gpu.cc),
        "unverified": gpu.unverified,
        "architecture": gpu.architecture,
        "tegra": gpu.tegra,
        "products": list(gpu.products),
        "products_indirect": gpu.indirect,
        "aliases": [str(a) for a in gpu.aliases],
        "first_cuda": str(gpu.first_cuda) if gpu.first_cuda else None,
        "removed_in_cuda": str(gpu.removed_in_cuda) if gpu.removed_in_cuda else None,
        "note": gpu.note,
        "native": native,
        "ptx_only": ptx,
        "sources": _sources(matrix, gpu.sources),
    }


def _gpu_text(data: Data) -> list[str]:
    out = [f"compute capability {data['compute_capability']} ({data['sm']}){_flag(data['unverified'])}"]
    if data["listed_as"] != data["compute_capability"]:
        out.append(f"listed as {data['listed_as']} (alias)")
    out.append(f"architecture: {data['architecture']}{' (Tegra/Jetson)' if data['tegra'] else ''}")
    indirect = " (confirmed indirectly)" if data["products_indirect"] else ""
    out.append(f"products: {', '.join(data['products'])}{indirect}")
    if data["aliases"]:
        out.append(f"also known as: {', '.join(data['aliases'])}")
    span = []
    if data["first_cuda"]:
        span.append(f"from CUDA {data['first_cuda']}")
    if data["removed_in_cuda"]:
        span.append(f"until before CUDA {data['removed_in_cuda']}")
    if span:
        out.append("targetable " + " ".join(span))
    if data["note"]:
        out.append(f"note: {data['note']}")

    def labels(entries: list[Data]) -> str:
        return ", ".join(f"{e['series']} {e['variant']}{_flag(e['unverified'])}" for e in entries)

    out.append("torch builds with native kernels for it:")
    out.extend(f"  {platform}: {labels(entries)}" for platform, entries in data["native"].items())
    if not data["native"]:
        out.append("  none")
    if data["ptx_only"]:
        out.append("torch builds reaching it only through PTX JIT:")
        out.extend(f"  {platform}: {labels(entries)}" for platform, entries in data["ptx_only"].items())
    return out


# --- transformers -----------------------------------------------------------------------------


def _transformers(matrix: Matrix, version: Version) -> Data:
    row = matrix.transformers_release(version)
    if row is None:
        newest = ", ".join(str(t.version) for t in matrix.transformers[:3])
        raise InputError(
            "transformers release not in the matrix", value=str(version), hint=f"newest: {newest}"
        )
    fits = [
        str(r.version)
        for r in matrix.torch
        if row.torch.contains(r.version, prereleases=True)
        and (row.runtime_min_torch is None or r.version >= row.runtime_min_torch)
    ]
    return {
        "version": str(row.version),
        "unverified": row.unverified,
        "yanked": row.yanked,
        "uploaded": row.upload_date,
        "requires_python": str(row.requires_python),
        "torch_extra": str(row.torch),  # "": any torch
        "runtime_min_torch": str(row.runtime_min_torch) if row.runtime_min_torch else None,
        "torch_accepted": fits,
        "note": row.note,
        "sources": _sources(matrix, row.sources),
    }


def _transformers_text(data: Data) -> list[str]:
    yanked = " (yanked)" if data["yanked"] else ""
    out = [f"transformers {data['version']}{_flag(data['unverified'])}{yanked}"]
    if data["uploaded"]:
        out.append(f"uploaded: {data['uploaded']}")
    out.append(f"requires_python: {data['requires_python']}")
    extra = data["torch_extra"]
    out.append(f"torch extra: torch{extra}" if extra else "torch extra: torch (any version)")
    gate = data["runtime_min_torch"]
    out.append(f"import-time torch gate: >= {gate}" if gate else "import-time torch gate: none")
    out.append("torch releases in the matrix it accepts: " + (", ".join(data["torch_accepted"]) or "none"))
    if data["note"]:
        out.append(f"note: {data['note']}")
    return out


_TEXT = {"torch": _torch_text, "cuda": _cuda_text, "gpu": _gpu_text, "transformers": _transformers_text}
