"""Cross-file consistency of a loaded matrix: one function per rule."""

from __future__ import annotations

from collections.abc import Mapping

from packaging.version import Version

from resolver.host.model import ComputeCapability
from resolver.matrix.located import Origin
from resolver.matrix.model import Build, GpuArch, Matrix, variant_kind
from resolver.matrix.releases import NO_FILE
from resolver.matrix.rows import State


def check_consistency(matrix: Matrix, state: State) -> None:
    """Every cross-file rule, each reporting its own problems at the row that breaks it."""
    gpu_by_cc = _gpu_aliases(state)
    _releases_have_pairs(state)
    _cuda_variants_have_builds(state)
    _default_variants_have_wheels(matrix, state)
    for (series, variant), (build, origin) in state.builds.rows.items():
        if origin.file is NO_FILE or not _build_is_listed(state, series, variant, origin):
            continue
        _build_platforms_published(state, series, build, origin)
        if build.kind == "cuda" and build.cuda is not None:
            _build_cuda_known(matrix, variant, build.cuda, origin)
            _build_arch_targetable(matrix, gpu_by_cc, build, build.cuda, origin)
    _toolkits_have_families(matrix, state)
    _pairs_have_releases(state)


def _gpu_aliases(state: State) -> dict[ComputeCapability, GpuArch]:
    """Each compute capability and alias to its row; an alias must not also be a row of its own."""
    gpu_by_cc: dict[ComputeCapability, GpuArch] = {}
    for cc, (arch_row, origin) in state.gpus.rows.items():
        gpu_by_cc.setdefault(cc, arch_row)
        for alias in arch_row.aliases:
            if alias in state.gpus.rows:
                origin.problem(
                    ("aliases",),
                    f"alias {alias} is also a [[gpu]] row of its own",
                    str(alias),
                    "keep one row per part; list the other number only as an alias",
                )
            gpu_by_cc.setdefault(alias, arch_row)
    return gpu_by_cc


def _releases_have_pairs(state: State) -> None:
    for version, (_release, origin) in state.releases.rows.items():
        if version not in state.pairs.rows:
            origin.problem(
                ("version",),
                f"torch {version} has no [[pair]] in companions.toml",
                str(version),
                'add a [[pair]] row (torchvision/torchaudio = "none" where nothing pairs)',
            )


def _cuda_variants_have_builds(state: State) -> None:
    for release, origin in state.releases.rows.values():
        for variant in release.variants:
            if (
                variant_kind(variant) in ("cuda", "xpu")
                and (release.series, variant) not in state.builds.rows
            ):
                origin.problem(
                    ("variants",),
                    f"no [[build]] row for {release.series} {variant}",
                    variant,
                    f'add a [[build]] with series = "{release.series}", variant = "{variant}" to builds.toml',
                )


def _default_variants_have_wheels(matrix: Matrix, state: State) -> None:
    for release, origin in state.releases.rows.values():
        for platform, variant in release.default_variant.items():
            build = matrix.builds.get((release.series, variant))
            if build is not None and platform not in build.platforms:
                origin.problem(
                    ("default_variant", platform),
                    f"default variant {variant} has no {platform} wheels in builds.toml",
                    variant,
                    f"add {platform} to the {release.series} {variant} [build.arch]",
                )


def _build_is_listed(state: State, series: str, variant: str, origin: Origin) -> bool:
    listed = any(r.series == series and variant in r.variants for r, _ in state.releases.rows.values())
    if not listed:
        origin.problem(
            ("variant",),
            f"no torch {series}.x release lists {variant}",
            variant,
            f"add {variant} to the variants of the {series} releases in torch.toml, or drop this row",
        )
    return listed


def _build_platforms_published(state: State, series: str, build: Build, origin: Origin) -> None:
    published = {p for r, _ in state.releases.rows.values() if r.series == series for p in r.python}
    for platform in sorted(set(build.arch) - published):
        origin.problem(
            ("arch", platform),
            f"torch {series} publishes no {platform} wheels",
            platform,
            "drop the platform, or add it to [release.python] in torch.toml",
        )


def _build_cuda_known(matrix: Matrix, variant: str, cuda: Version, origin: Origin) -> None:
    if matrix.toolkit(cuda) is None:
        origin.problem(
            ("variant",),
            f"variant {variant} names CUDA {cuda}, which has no [[toolkit]] in cuda.toml",
            variant,
            f'add a [[toolkit]] with version = "{cuda}" (and its driver) to cuda.toml',
        )
    if cuda.major not in matrix.cuda_families:
        origin.problem(
            ("variant",),
            f"variant {variant} names CUDA {cuda.major}.x, which has no [[family]]",
            variant,
            f"add a [[family]] with major = {cuda.major} to cuda.toml",
        )


def _build_arch_targetable(
    matrix: Matrix,
    gpu_by_cc: Mapping[ComputeCapability, GpuArch],
    build: Build,
    cuda: Version,
    origin: Origin,
) -> None:
    family = matrix.cuda_families.get(cuda.major)
    for platform, targets in build.arch.items():
        for target in targets:
            gpu = gpu_by_cc.get(target.cc)
            if family is not None and not family.can_target(target.cc):
                origin.problem(
                    ("arch", platform),
                    f"CUDA {cuda.major}.x cannot target {target.cc.sm} "
                    f"(it targets {family.cc_min} to {family.cc_max})",
                    str(target),
                    "drop the target, or correct cc_min/cc_max in cuda.toml",
                )
            elif gpu is None:
                origin.problem(
                    ("arch", platform),
                    f"{target.cc.sm} names no GPU in gpus.toml",
                    str(target),
                    f'add a [[gpu]] with cc = "{target.cc}", or correct the target',
                )
            elif not gpu.targetable_by(cuda) and target.cc not in gpu.aliases:
                origin.problem(
                    ("arch", platform),
                    f"CUDA {cuda} cannot target {target.cc.sm} ({_cuda_span(gpu)})",
                    str(target),
                    "drop the target, or correct gpus.toml",
                )


def _toolkits_have_families(matrix: Matrix, state: State) -> None:
    for version, (_toolkit, origin) in state.toolkits.rows.items():
        if version.major not in matrix.cuda_families:
            origin.problem(
                ("version",),
                f"CUDA {version} has no [[family]] for major {version.major}",
                str(version),
                f"add a [[family]] with major = {version.major}",
            )


def _pairs_have_releases(state: State) -> None:
    for version, (_pair, origin) in state.pairs.rows.items():
        if version not in state.releases.rows:
            origin.problem(
                ("torch",),
                f"pairs torch {version}, which has no [[release]] in torch.toml",
                str(version),
                "add the release to torch.toml, or drop this row",
            )


def _cuda_span(gpu: GpuArch) -> str:
    first = f"from CUDA {gpu.first_cuda}" if gpu.first_cuda else ""
    removed = f"removed in CUDA {gpu.removed_in_cuda}" if gpu.removed_in_cuda else ""
    return ", ".join(p for p in (first, removed) if p) or "never targetable"
