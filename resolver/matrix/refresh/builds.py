"""A new CUDA build for builds.toml: its [[build]] row, with arch lists the index cannot give, copied
from the nearest build the matrix has and marked unverified."""

from __future__ import annotations

from collections.abc import Set
from datetime import date

from packaging.version import Version

from resolver.matrix.arch import ArchTarget
from resolver.matrix.model import PLATFORMS, Build, Matrix, variant_cuda
from resolver.matrix.refresh.edit import PYTORCH_INDEX_SOURCE, quote, toml_list


def _reference_build(matrix: Matrix, series: str, variant: str) -> Build | None:
    """The build whose arch list a new build starts from: the same variant in the newest series
    that has it, else the newest build of the same CUDA major, else the newest CUDA build."""
    cuda = variant_cuda(variant)
    cuda_builds = [b for b in matrix.builds.values() if b.kind == "cuda" and b.cuda is not None]

    def newest(builds: list[Build]) -> Build | None:
        return max(builds, key=lambda b: (Version(b.series), b.cuda or Version("0")), default=None)

    same = newest([b for b in cuda_builds if b.variant == variant and b.series != series])
    if same is not None or cuda is None:
        return same
    major = newest([b for b in cuda_builds if b.cuda is not None and b.cuda.major == cuda.major])
    return major or newest(cuda_builds)


def _copied_arch(
    matrix: Matrix, reference: Build | None, variant: str, platform: str
) -> tuple[list[str], list[str]]:
    """(targets, dropped) for one platform: the reference list (Windows lists carry no PTX),
    without the targets this CUDA version cannot compile for."""
    if reference is None:
        return [], []
    source = reference.arch.get(platform)
    if source is None:
        source = reference.arch.get("linux-x86_64", ())
    cuda = variant_cuda(variant)
    family = matrix.cuda_families.get(cuda.major) if cuda is not None else None
    kept: list[str] = []
    dropped: list[str] = []
    for target in source:
        gpu = matrix.gpu(target.cc)
        ok = family is None or family.can_target(target.cc)
        if ok and gpu is not None and cuda is not None and target.cc not in gpu.aliases:
            ok = gpu.targetable_by(cuda)
        text = str(ArchTarget(target.cc, False)) if platform.startswith("windows-") else str(target)
        (kept if ok else dropped).append(text)
    return kept, dropped


def build_snippet(
    matrix: Matrix, series: str, variant: str, wheels_for: Set[str], on_pypi: bool, today: date
) -> tuple[str, str]:
    """The row, and which build its arch lists were copied from. `wheels_for`: the platforms with
    wheels of this variant; `on_pypi`: it is some platform's default variant, so PyPI has it too."""
    reference = _reference_build(matrix, series, variant)
    platforms = [p for p in PLATFORMS if p in wheels_for]
    arch: dict[str, list[str]] = {}
    dropped: set[str] = set()
    for platform in platforms:
        kept, lost = _copied_arch(matrix, reference, variant, platform)
        arch[platform] = kept
        dropped.update(lost)
    where = (
        f"the {reference.series} {reference.variant} build"
        if reference
        else "nothing (no CUDA build in the matrix)"
    )
    note = (
        f"arch list not derivable from the index: copied from {where}"
        + (
            f", without {', '.join(sorted(dropped))} (CUDA {variant_cuda(variant)} cannot target it)"
            if dropped
            else ""
        )
        + "; confirm TORCH_CUDA_ARCH_LIST in pytorch/pytorch .ci/manywheel/build_cuda.sh on "
        f"release/{series} and RELEASE.md, then drop unverified "
        f"(wheels seen on the PyTorch index by matrix refresh {today})"
    )
    sources = [PYTORCH_INDEX_SOURCE]
    if on_pypi:
        sources.insert(0, "pypi_torch")
    lines = [
        "[[build]]",
        f"series = {quote(series)}",
        f"variant = {quote(variant)}",
        "unverified = true",
        f"source = {toml_list(sources)}",
        f"note = {quote(note)}",
        "",
        "[build.arch]",
        *(f"{platform} = {toml_list(targets)}" for platform, targets in arch.items()),
    ]
    ref_text = f"{reference.series} {reference.variant}" if reference else "nothing"
    return "\n".join(lines) + "\n\n", ref_text
