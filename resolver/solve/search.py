"""Choose the best valid torch / variant / companions / transformers / Python for a host.

`solve()` is pure: a host, a matrix and a request in; a `Resolution` out, or
`NoCompatibleCombination` carrying its causes as data. Prose is `explain.py`'s job; the
`Reason.text` sentences here are the per-candidate facts that prose is built from.

Preference (documented in the README, overridable with `Request.prefer`): newest torch release
first, then the newest CUDA variant the host can run, then the newest transformers.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from resolver.errors import Cause, ConstraintError, InputError, Location, NoCompatibleCombination
from resolver.host.model import DriverVersion, Gpu, Host
from resolver.matrix.arch import ArchTarget, Coverage, TegraRule, coverage, sm_list
from resolver.matrix.model import Build, Matrix, TorchRelease, TransformersRelease

MANAGED = ("torch", "torchvision", "torchaudio", "transformers", "python")
PREFERENCE_KEYS = ("torch", "variant", "transformers")


# --- request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the team asks for, on top of the host's facts."""

    constraints: Mapping[str, SpecifierSet] = field(default_factory=dict)
    variant: str | None = None
    python: str | None = None
    allow_ptx: bool = False
    allow_unverified: bool = False
    allow_cpu_fallback: bool = False
    # packages the team installs; torchvision/torchaudio must exist only when listed here
    packages: tuple[str, ...] = ()
    # order of preference keys; the default prefers the newest torch over the newest CUDA
    prefer: tuple[str, ...] = PREFERENCE_KEYS
    # (torch version, variant) -> why its wheels cannot be had (e.g. "not on <index URL>")
    unavailable: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # transformers versions the general index lacks -> why
    unavailable_transformers: Mapping[str, str] = field(default_factory=dict)

    def spec(self, name: str) -> SpecifierSet:
        return self.constraints.get(name, SpecifierSet())

    def pins(self, name: str) -> bool:
        return any(s.operator in ("==", "===") for s in self.spec(name))


def parse_constraint(text: str, origin: str = "--constraint") -> tuple[str, SpecifierSet]:
    """Parse "torch>=2.4,<2.7" into ("torch", SpecifierSet). Only managed packages are allowed."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "invalid requirement"
        raise ConstraintError(
            f"cannot parse constraint: {first_line}",
            location=Location(origin),
            value=text,
            hint='write it like "torch>=2.4,<2.7" or "transformers==4.57.6"',
        ) from None
    name = canonicalize_name(requirement.name)
    if name not in MANAGED:
        raise ConstraintError(
            f"'{requirement.name}' is not a package the solver manages",
            location=Location(origin),
            value=text,
            hint=f"constraints apply to {', '.join(MANAGED)}; list other packages under `packages`",
        )
    if requirement.extras or requirement.marker or requirement.url:
        raise ConstraintError(
            "a constraint takes a version range only (no extras, markers or URLs)",
            location=Location(origin),
            value=text,
            hint='e.g. "torch>=2.4,<2.7"',
        )
    return name, requirement.specifier


def merge_constraints(texts: Iterable[str], origin: str = "--constraint") -> dict[str, SpecifierSet]:
    merged: dict[str, SpecifierSet] = {}
    for text in texts:
        name, spec = parse_constraint(text, origin)
        merged[name] = merged.get(name, SpecifierSet()) & spec
    return merged


def check_preference(prefer: Sequence[str]) -> tuple[str, ...]:
    if sorted(prefer) != sorted(PREFERENCE_KEYS):
        raise InputError(
            "preference must order exactly these keys: " + ", ".join(PREFERENCE_KEYS),
            value=list(prefer),
            hint='e.g. prefer = ["variant", "torch", "transformers"] to favour the newest CUDA',
        )
    return tuple(prefer)


# --- result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """Why one candidate fails. `summary` has no torch version in it, so explain.py can group
    many releases that fail for the same reason into one line."""

    kind: str
    text: str
    summary: str
    # facts behind the reason, for summaries (e.g. ("floor", "525.60.13"), ("family", "12.x"))
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rejection:
    torch: Version
    variant: str | None
    reasons: tuple[Reason, ...]
    # "release": failed before any variant was looked at (Python, platform, glibc, constraints);
    # "variant": the release fits the host, this variant does not (driver, arch, ...)
    stage: str = "variant"

    @property
    def candidate(self) -> str:
        return f"torch {self.torch}" + (f"+{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class GpuFit:
    gpu: Gpu
    coverage: Coverage
    via: str  # the sm_XY (or compute_XY PTX) the GPU runs


@dataclass(frozen=True)
class Resolution:
    python: str
    release: TorchRelease
    variant: str
    local_label: bool
    torchvision: Version | None
    torchaudio: Version | None
    transformers: TransformersRelease
    gpu_fit: tuple[GpuFit, ...]
    warnings: tuple[str, ...]
    rejected: tuple[Rejection, ...]

    def pin(self, version: Version | None) -> str | None:
        if version is None:
            return None
        return f"{version}+{self.variant}" if self.local_label else str(version)

    @property
    def torch(self) -> str:
        return self.pin(self.release.version) or ""

    @property
    def cuda(self) -> str | None:
        return None if not self.variant.startswith("cu") else _variant_cuda_text(self.variant)


def _variant_cuda_text(variant: str) -> str:
    digits = variant[2:]
    return f"{digits[:-1]}.{digits[-1]}"


# --- the solve -------------------------------------------------------------------------------


def _python_key(python: str) -> tuple[int, int, bool]:
    major, minor = python.rstrip("t").split(".")
    return int(major), int(minor), python.endswith("t")


def _variant_rank(matrix: Matrix, release: TorchRelease, variant: str) -> tuple[int, Version]:
    """Higher is preferred: CUDA by version, then ROCm by version, then XPU, then CPU."""
    build = matrix.build(release, variant)
    if build is not None and build.kind == "cuda" and build.cuda is not None:
        return (3, build.cuda)
    if variant.startswith("rocm"):
        return (2, Version(variant[4:]))
    if variant == "xpu":
        return (1, Version("0"))
    return (0, Version("0"))


@dataclass
class _Context:
    host: Host
    matrix: Matrix
    request: Request
    python: str | None
    rule: TegraRule
    warnings: list[str]
    # build-level verdicts depend only on (series, variant), not on the release: computed once
    build_verdicts: dict[tuple[str, str], tuple[list[Reason], list[GpuFit]]] = field(default_factory=dict)
    variant_ranks: dict[tuple[str, str], tuple[int, Version]] = field(default_factory=dict)

    @functools.cached_property
    def python_version(self) -> Version | None:
        return Version(self.python.rstrip("t")) if self.python else None

    @functools.cached_property
    def libc_version(self) -> Version | None:
        return Version(self.host.libc_version) if self.host.libc_version else None

    def variant_rank(self, release: TorchRelease, variant: str) -> tuple[int, Version]:
        key = (release.series, variant)
        if key not in self.variant_ranks:
            self.variant_ranks[key] = _variant_rank(self.matrix, release, variant)
        return self.variant_ranks[key]

    @functools.cached_property
    def transformers_by_python(self) -> tuple[TransformersRelease, ...]:
        python = self.python
        spec = self.request.spec("transformers")
        pinned = self.request.pins("transformers")
        rows = []
        for row in self.matrix.transformers:
            if row.version not in spec:
                continue
            if row.yanked and not pinned:
                continue
            if row.version.is_prerelease and not pinned:
                continue
            if str(row.version) in self.request.unavailable_transformers:
                continue
            if python is not None and not row.requires_python.contains(
                Version(python.rstrip("t")), prereleases=True
            ):
                continue
            rows.append(row)
        return tuple(rows)


def _release_reasons(ctx: _Context, release: TorchRelease) -> list[Reason]:
    host, request = ctx.host, ctx.request
    reasons: list[Reason] = []
    if "torch" in request.constraints and release.version not in request.spec("torch"):
        reasons.append(
            Reason(
                "constraint",
                f"torch {release.version} is outside the constraint torch{request.spec('torch')}",
                f"is outside torch{request.spec('torch')}",
            )
        )
    if release.unverified and not request.allow_unverified:
        reasons.append(
            Reason(
                "unverified",
                f"torch {release.version} is marked unverified in the matrix (pass --allow-unverified)",
                "is an unverified release",
            )
        )
    platform = host.platform
    if platform not in release.python:
        reasons.append(
            Reason(
                "platform",
                f"torch {release.version} publishes no wheels for {platform}",
                f"has no wheels for {platform}",
            )
        )
        return reasons
    if host.os == "linux":
        floor = release.glibc_min.get(host.arch)
        if host.libc == "musl":
            reasons.append(
                Reason(
                    "libc",
                    "this host uses musl libc; torch wheels are manylinux (glibc) builds",
                    "needs glibc (this host has musl)",
                )
            )
        elif floor is not None and ctx.libc_version is not None and ctx.libc_version < floor:
            reasons.append(
                Reason(
                    "glibc",
                    f"torch {release.version} wheels for {platform} need glibc >= {floor}; "
                    f"this host has {host.libc_version}",
                    f"needs glibc >= {floor}",
                )
            )
    macos_min = release.macos_floor(host.arch, ctx.python) if host.os == "macos" else None
    if macos_min is not None and host.os_version is not None and Version(host.os_version) < macos_min:
        reasons.append(
            Reason(
                "macos",
                f"torch {release.version} needs macOS >= {macos_min}; this host runs {host.os_version}",
                f"needs macOS >= {macos_min}",
            )
        )
    python = ctx.python
    if python is not None:
        if python not in release.python[platform]:
            pys = release.python[platform]
            span = f"{pys[0]}–{pys[-1]}" if pys else "none"
            reasons.append(
                Reason(
                    "python",
                    f"torch {release.version} has no Python {python} wheel for {platform} (wheels: {span})",
                    f"has no Python {python} wheel",
                )
            )
        elif ctx.python_version and not release.requires_python.contains(
            ctx.python_version, prereleases=True
        ):
            reasons.append(
                Reason(
                    "python",
                    f"torch {release.version} requires Python {release.requires_python}",
                    f"requires Python {release.requires_python}",
                )
            )
    pair = ctx.matrix.companions.get(release.version)
    for name in ("torchvision", "torchaudio"):
        companion = getattr(pair, name) if pair is not None else None
        wanted = name in request.packages or name in request.constraints
        if companion is None and wanted:
            reasons.append(
                Reason(
                    "companion",
                    f"no {name} release pairs with torch {release.version}, and the team installs {name}",
                    f"has no {name} release",
                )
            )
        elif companion is not None and companion not in request.spec(name):
            reasons.append(
                Reason(
                    "constraint",
                    f"torch {release.version} pairs with {name} {companion}, outside "
                    f"{name}{request.spec(name)}",
                    f"pairs with {name} outside {name}{request.spec(name)}",
                )
            )
        elif pair is not None and pair.unverified and wanted and not request.allow_unverified:
            reasons.append(
                Reason(
                    "unverified",
                    f"the {name} pairing for torch {release.version} is unverified (pass --allow-unverified)",
                    f"has an unverified {name} pairing",
                )
            )
    return reasons


def _fit_gpus(
    ctx: _Context, release: TorchRelease, build: Build, targets: tuple[ArchTarget, ...]
) -> tuple[list[Reason], list[GpuFit]]:
    reasons: list[Reason] = []
    fits: list[GpuFit] = []
    for gpu in ctx.host.nvidia_gpus:
        cc = gpu.cc
        how = coverage(targets, cc, ctx.matrix.tegra_rule_for(build.cuda))
        label = f"GPU {gpu.index} ({gpu.name or 'unnamed'}, {cc.sm})"
        if how is Coverage.NONE:
            reasons.append(
                Reason(
                    "arch",
                    f"{build.variant} wheels of torch {release.series} carry no {cc.sm} kernels "
                    f"for {label}; they are built for {sm_list(targets)}",
                    f"lacks {cc.sm}",
                )
            )
        elif how is Coverage.PTX:
            ptx = max(t.cc for t in targets if t.ptx and t.cc <= cc)
            if not ctx.request.allow_ptx:
                reasons.append(
                    Reason(
                        "ptx",
                        f"{build.variant} wheels of torch {release.series} reach {label} only by "
                        f"JIT-compiling compute_{ptx.major}{ptx.minor} PTX (pass --allow-ptx)",
                        f"reaches {cc.sm} only via PTX",
                    )
                )
            fits.append(GpuFit(gpu, how, f"compute_{ptx.major}{ptx.minor} (PTX JIT)"))
        else:
            native = (
                max(t.cc for t in targets if t.cc.major == cc.major and t.cc <= cc)
                if any(t.cc.major == cc.major and t.cc <= cc for t in targets)
                else cc
            )
            fits.append(GpuFit(gpu, how, native.sm))
    return reasons, fits


def _variant_reasons(ctx: _Context, release: TorchRelease, variant: str) -> tuple[list[Reason], list[GpuFit]]:
    request = ctx.request
    if request.variant is not None and variant != request.variant:
        return [
            Reason(
                "variant",
                f"not the requested variant {request.variant}",
                f"is not the requested {request.variant}",
            )
        ], []
    missing = request.unavailable.get((str(release.version), variant)) if request.unavailable else None
    if missing is not None:
        return [Reason("index", f"torch {release.version}+{variant} {missing}", missing)], []
    key = (release.series, variant)
    if key not in ctx.build_verdicts:
        ctx.build_verdicts[key] = _build_reasons(ctx, release, variant)
    reasons, fits = ctx.build_verdicts[key]
    return list(reasons), list(fits)


def _build_reasons(ctx: _Context, release: TorchRelease, variant: str) -> tuple[list[Reason], list[GpuFit]]:
    """What the host makes of one build (a series' variant): platform, driver, GPU architecture."""
    host, request, matrix = ctx.host, ctx.request, ctx.matrix
    platform = host.platform
    reasons: list[Reason] = []
    build = matrix.build(release, variant)
    if build is None:
        reasons.append(
            Reason(
                "data",
                f"the matrix has no build data for {variant} of torch {release.series}",
                "has no build data",
            )
        )
        return reasons, []
    if platform not in build.platforms:
        reasons.append(
            Reason(
                "platform",
                f"{variant} wheels of torch {release.series} are not built for {platform}",
                f"is not built for {platform}",
            )
        )
        return reasons, []
    if build.is_unverified_on(platform) and not request.allow_unverified:
        reasons.append(
            Reason(
                "unverified",
                f"the {variant} build of torch {release.series} on {platform} is unverified "
                "in the matrix (pass --allow-unverified)",
                f"is unverified on {platform}",
            )
        )
    if build.kind == "cpu":
        other = host.amd_gpus or host.intel_gpus
        if other and not host.has_nvidia_gpu and request.variant != "cpu" and not request.allow_cpu_fallback:
            reasons.append(
                Reason(
                    "cpu-fallback",
                    f"a CPU build is not chosen on a host with an {other[0].vendor.upper()} GPU "
                    "(pass --variant cpu or --allow-cpu-fallback)",
                    "is a CPU build on a GPU host",
                )
            )
        if host.has_nvidia_gpu and request.variant != "cpu" and not request.allow_cpu_fallback:
            reasons.append(
                Reason(
                    "cpu-fallback",
                    "a CPU build is not chosen on a host with an NVIDIA GPU "
                    "(pass --variant cpu or --allow-cpu-fallback)",
                    "is a CPU build on a GPU host",
                )
            )
        return reasons, []
    if build.kind == "rocm":
        return _rocm_reasons(ctx, release, build, reasons)
    if build.kind == "xpu":
        if not host.intel_gpus and request.variant != variant:
            reasons.append(
                Reason(
                    "xpu",
                    f"{variant} is an Intel GPU build and this host has no Intel GPU",
                    "needs an Intel GPU",
                )
            )
        return reasons, []
    # CUDA
    assert build.cuda is not None
    family = f"{build.cuda.major}.x"
    if host.nvidia_driver is None:
        reasons.append(
            Reason(
                "no-driver",
                f"{variant} needs an NVIDIA driver and none was detected",
                "needs an NVIDIA driver (none found)",
            )
        )
        return reasons, []
    floor = matrix.driver_floor(build.cuda, host.os)
    cuda_family = matrix.cuda_families.get(build.cuda.major)
    if cuda_family is not None and cuda_family.minor_version_compatibility:
        needed_by = f"CUDA {family}"
    else:
        needed_by = f"CUDA {build.cuda}"
    bound = matrix.driver_floor_bound(build.cuda, host.os) if floor is None else None
    if floor is None and bound is not None and host.driver is not None and host.driver < bound:
        # An unknown floor is never below the previous CUDA major's known floor on this OS.
        reasons.append(
            Reason(
                "driver",
                f"driver {host.nvidia_driver} is below {bound}; the {host.os} floor for {needed_by} "
                f"is not known but is at least that (the floor of the previous CUDA major)",
                f"needs driver >= {bound} ({needed_by.removeprefix('CUDA ')}, at least)",
                (("floor", str(bound)), ("family", needed_by.removeprefix("CUDA "))),
            )
        )
    elif floor is None:
        if not request.allow_unverified:
            at_least = f"; it is at least {bound}" if bound is not None else ""
            reasons.append(
                Reason(
                    "unverified",
                    f"the minimum {host.os} driver for {needed_by} is not known{at_least} "
                    "(pass --allow-unverified to accept it)",
                    f"needs an unknown {host.os} driver floor ({needed_by})",
                )
            )
    elif host.driver is not None and host.driver < floor:
        reasons.append(
            Reason(
                "driver",
                f"driver {host.nvidia_driver} is below {floor}, needed by {needed_by}",
                f"needs driver >= {floor} ({needed_by.removeprefix('CUDA ')})",
                (("floor", str(floor)), ("family", needed_by.removeprefix("CUDA "))),
            )
        )
    targets = build.arch.get(platform, ())
    arch_reasons, fits = _fit_gpus(ctx, release, build, targets)
    reasons.extend(arch_reasons)
    return reasons, fits


def _rocm_reasons(
    ctx: _Context, release: TorchRelease, build: Build, reasons: list[Reason]
) -> tuple[list[Reason], list[GpuFit]]:
    """A ROCm build runs only where every AMD GPU has kernels among the build's gfx targets, and
    is never taken on a host without AMD GPUs unless --variant names it."""
    host, request, variant = ctx.host, ctx.request, build.variant
    amd = host.amd_gpus
    if not amd:
        if request.variant != variant:
            reasons.append(
                Reason(
                    "rocm",
                    f"{variant} is an AMD ROCm build and this host has no AMD GPU (name it with --variant)",
                    "is a ROCm build (no AMD GPU)",
                )
            )
        return reasons, []
    targets = build.gfx.get(host.platform)
    if not targets:
        if not request.allow_unverified:
            reasons.append(
                Reason(
                    "unverified",
                    f"the gfx targets of the {variant} wheels of torch {release.series} are not known "
                    "(pass --allow-unverified to accept them unchecked)",
                    "has unknown gfx targets",
                )
            )
        return reasons, []
    fits = []
    for gpu in amd:
        if gpu.gfx_target in targets:
            fits.append(GpuFit(gpu, Coverage.CUBIN, str(gpu.gfx_target)))
            continue
        reasons.append(
            Reason(
                "arch",
                f"{variant} wheels of torch {release.series} carry no {gpu.gfx_target} kernels for "
                f"GPU {gpu.index} ({gpu.name or 'unnamed'}, {gpu.gfx_target}); "
                f"they are built for {' '.join(targets)}",
                f"lacks {gpu.gfx_target}",
            )
        )
    return reasons, fits


def _pick_transformers(
    ctx: _Context, release: TorchRelease
) -> tuple[TransformersRelease | None, Reason | None]:
    torch_version = release.version
    for row in ctx.transformers_by_python:
        if not row.torch.contains(torch_version, prereleases=True):
            continue
        if row.runtime_min_torch is not None and torch_version < row.runtime_min_torch:
            continue
        return row, None
    python = f" on Python {ctx.python}" if ctx.python else ""
    spec = ctx.request.spec("transformers")
    within = f" within transformers{spec}" if str(spec) else ""
    return None, Reason(
        "transformers",
        f"no transformers release{within} supports torch {torch_version}{python}",
        f"has no transformers{within} for it{python}",
    )


@dataclass(frozen=True)
class Exploration:
    """Every candidate looked at: the valid ones and the rejected ones, each with its rank."""

    valid: tuple[tuple[tuple[object, ...], Resolution], ...]
    rejections: tuple[tuple[tuple[object, ...], Rejection], ...]

    def best_first(self) -> tuple[Resolution, ...]:
        return tuple(r for _, r in sorted(self.valid, key=lambda item: item[0], reverse=True))

    def rejected_best_first(self) -> tuple[Rejection, ...]:
        return tuple(r for _, r in sorted(self.rejections, key=lambda item: item[0], reverse=True))


def solve(host: Host, matrix: Matrix, request: Request) -> Resolution:
    """The best valid combination, with every better-looking candidate's rejection."""
    found = explore(host, matrix, request, exhaustive=False)
    if not found.valid:
        ordered = found.rejected_best_first()
        raise NoCompatibleCombination(binding_summary(host, request, ordered), causes_of(ordered))
    best_rank, best = max(found.valid, key=lambda item: item[0])
    better = tuple(
        r for rank, r in sorted(found.rejections, key=lambda item: item[0], reverse=True) if rank > best_rank
    )
    return dataclasses.replace(best, rejected=better)


def explore(host: Host, matrix: Matrix, request: Request, *, exhaustive: bool = True) -> Exploration:
    """Judge candidates newest first. With `exhaustive=False` stop at the first release that has a
    valid candidate when torch is the leading preference (nothing older can outrank it)."""
    python = request.python or host.python
    warnings: list[str] = []
    if python is not None and Version(python.rstrip("t")) not in request.spec("python"):
        raise NoCompatibleCombination(
            f"Python {python} is outside the constraint python{request.spec('python')}",
            [Cause("python", f"python {python}", f"the team constrains python{request.spec('python')}")],
        )
    if host.os == "linux" and host.libc_version is None and host.libc != "musl":
        warnings.append("glibc version unknown: wheel glibc floors were not checked")
    if host.nvidia_driver is not None and not host.gpus:
        warnings.append(
            "an NVIDIA driver was found but no GPU list: GPU architecture coverage was not checked"
        )
    ctx = _Context(host, matrix, request, python, matrix.tegra_rule, warnings)

    valid: list[tuple[tuple[object, ...], Resolution]] = []
    rejections: list[tuple[tuple[object, ...], Rejection]] = []

    for release in matrix.torch:
        release_reasons = _release_reasons(ctx, release)
        variants = sorted(release.variants, key=lambda v: ctx.variant_rank(release, v), reverse=True)
        if python is None and host.platform in release.python and release.python[host.platform]:
            # Unknown host Python: take the newest non-free-threaded Python with wheels, within the
            # python constraint (a known Python was checked against it above).
            spec = request.spec("python")
            plain = [
                p
                for p in release.python[host.platform]
                if not p.endswith("t") and Version(p) in spec and _macos_fits(host, release, p)
            ]
            ctx_python = max(plain, key=_python_key) if plain else None
            if ctx_python is None:
                within = f" within python{spec}" if str(spec) else ""
                release_reasons.append(
                    Reason(
                        "python",
                        f"torch {release.version} has no Python wheel{within} for {host.platform}",
                        f"has no Python wheel{within}",
                    )
                )
        else:
            ctx_python = python
        release_ctx = (
            ctx if ctx_python == python else _Context(host, matrix, request, ctx_python, ctx.rule, warnings)
        )
        transformers, tf_reason = (None, None)
        if not release_reasons:
            transformers, tf_reason = _pick_transformers(release_ctx, release)
        for variant in variants:
            rank = _rank_key(request.prefer, release, ctx.variant_rank(release, variant), transformers)
            if request.variant != variant and (
                (variant.startswith("rocm") and not host.amd_gpus)
                or (variant == "xpu" and not host.intel_gpus)
            ):
                continue  # no GPU of that vendor: listing each such build as rejected is noise
            if release_reasons:
                rejections.append(
                    (rank, Rejection(release.version, variant, tuple(release_reasons), stage="release"))
                )
                continue
            reasons, fits = _variant_reasons(release_ctx, release, variant)
            if tf_reason is not None and not reasons:
                reasons.append(tf_reason)
            if reasons:
                rejections.append((rank, Rejection(release.version, variant, tuple(reasons))))
                continue
            assert transformers is not None
            pair = matrix.companions.get(release.version)
            notes = list(warnings)
            notes.extend(
                f"GPU {fit.gpu.index} ({fit.gpu.cc.sm}) runs through PTX JIT "
                f"({fit.via}): first use compiles kernels, and some may be slow"
                for fit in fits
                if fit.coverage is Coverage.PTX
            )
            build = matrix.build(release, variant)
            if build is not None and build.is_unverified_on(host.platform):
                notes.append(f"the {variant} build of torch {release.series} is unverified in the matrix")
            if (
                build is not None
                and build.is_indirect_on(host.platform)
                and not build.is_unverified_on(host.platform)
            ):
                notes.append(
                    f"the {variant} build of torch {release.series} on {host.platform} is confirmed only "
                    "indirectly in the matrix (see `stack-resolver matrix show torch`)"
                )
            notes.extend(_unused_gpus(host, build.kind if build is not None else "cpu"))
            if (
                build is not None
                and build.cuda is not None
                and matrix.driver_floor(build.cuda, host.os) is None
            ):
                bound = matrix.driver_floor_bound(build.cuda, host.os)
                notes.append(
                    f"the minimum {host.os} driver for CUDA {build.cuda.major}.x is not known"
                    + (f"; driver {host.nvidia_driver} meets its known bound {bound}" if bound else "")
                )
            valid.append(
                (
                    rank,
                    Resolution(
                        python=release_ctx.python or "",
                        release=release,
                        variant=variant,
                        local_label=host.platform not in matrix.unlabelled_platforms,
                        torchvision=pair.torchvision if pair else None,
                        torchaudio=pair.torchaudio if pair else None,
                        transformers=transformers,
                        gpu_fit=tuple(fits),
                        warnings=tuple(dict.fromkeys(notes)),
                        rejected=(),
                    ),
                )
            )
        if valid and request.prefer[0] == "torch" and not exhaustive:
            # Releases come newest first, so no older release can outrank this one.
            break
    return Exploration(tuple(valid), tuple(rejections))


def _macos_fits(host: Host, release: TorchRelease, python: str) -> bool:
    """Whether this Python's macOS wheel installs on the host's macOS (per-wheel floors differ)."""
    floor = release.macos_floor(host.arch, python) if host.os == "macos" else None
    return floor is None or host.os_version is None or Version(host.os_version) >= floor


def _unused_gpus(host: Host, kind: str) -> list[str]:
    """GPUs the chosen build cannot drive (a CUDA build on a host that also has AMD GPUs, ...)."""
    vendor = {"cuda": "nvidia", "rocm": "amd", "xpu": "intel"}.get(kind)
    if vendor is None:
        return []
    return [
        f"GPU {gpu.index} ({gpu.name or gpu.vendor}) is {gpu.vendor.upper()}: a {kind} build does not use it"
        for gpu in host.gpus
        if gpu.vendor != vendor
    ]


def _rank_key(
    prefer: Sequence[str],
    release: TorchRelease,
    variant_rank: tuple[int, Version],
    transformers: TransformersRelease | None,
) -> tuple[object, ...]:
    parts: dict[str, object] = {
        "torch": release.version,
        "variant": variant_rank,
        "transformers": transformers.version if transformers else Version("0"),
    }
    return tuple(parts[key] for key in prefer)


# --- failure summaries -----------------------------------------------------------------------


def causes_of(rejections: Sequence[Rejection]) -> tuple[Cause, ...]:
    return tuple(
        Cause(
            kind=reason.kind,
            candidate=rejection.candidate,
            detail=reason.text,
            data=(("summary", reason.summary), ("stage", rejection.stage)),
        )
        for rejection in rejections
        for reason in rejection.reasons
    )


def binding_summary(host: Host, request: Request, rejections: Sequence[Rejection]) -> str:
    """Name the constraint that binds: the one that rejected every candidate, if any."""
    if not rejections:
        return "no torch release in the matrix matches this host"
    # Candidates excluded only by the request's own variant choice say nothing about the host.
    # Nor do those the user's own constraints excluded: the binding reason lies elsewhere.
    relevant = [
        rej for rej in rejections if not all(r.kind in ("variant", "rocm", "constraint") for r in rej.reasons)
    ]
    rejections = relevant or list(rejections)
    kinds_everywhere = set.intersection(*({r.kind for r in rej.reasons} for rej in rejections))
    # CUDA candidates whose release fits the host and whose build exists for this platform:
    # the ones a driver or a GPU architecture can bind.
    cuda = [
        rej
        for rej in rejections
        if rej.stage == "variant"
        and rej.variant
        and rej.variant.startswith("cu")
        and not any(r.kind in ("platform", "data", "index") for r in rej.reasons)
    ]
    if cuda and all(any(r.kind == "driver" for r in rej.reasons) for rej in cuda) and host.driver:
        floors = {
            dict(r.data)["family"]: dict(r.data)["floor"]
            for rej in cuda
            for r in rej.reasons
            if r.kind == "driver"
        }
        ordered = sorted(floors.items(), key=lambda item: DriverVersion.parse(item[1]))
        listed = ", ".join(f"{floor} ({family})" for family, floor in ordered)
        return f"driver {host.nvidia_driver} is below every CUDA floor: {listed}"
    if cuda and all(any(r.kind == "arch" for r in rej.reasons) for rej in cuda):
        sms = sorted({gpu.cc.sm for gpu in host.nvidia_gpus})
        which = f"{request.variant} build" if request.variant else "CUDA build"
        scope = f"all of {', '.join(sms)}" if len(sms) > 1 else sms[0]
        return f"no {which} in the matrix carries kernels for {scope}"
    if "platform" in kinds_everywhere:
        return f"no torch release publishes wheels for {host.platform}"
    if "python" in kinds_everywhere:
        wanted = request.python or host.python
        which = f"Python {wanted}" if wanted else f"a Python within python{request.spec('python')}"
        return f"no torch release has wheels for {which} on {host.platform}"
    if "constraint" in kinds_everywhere:
        specs = ", ".join(f"{name}{spec}" for name, spec in request.constraints.items())
        return f"the constraints ({specs}) exclude every candidate"
    if "libc" in kinds_everywhere:
        return "this host uses musl libc; torch publishes only manylinux (glibc) wheels for Linux"
    if "glibc" in kinds_everywhere:
        return f"glibc {host.libc_version} is below the floor of every torch wheel for {host.platform}"
    # Otherwise the commonest reasons among candidates whose release fits the host.
    judged = [rej for rej in rejections if rej.stage == "variant"] or list(rejections)
    summary_counts: dict[str, int] = {}
    for rej in judged:
        for reason in rej.reasons:
            if reason.kind != "constraint":
                summary_counts[reason.summary] = summary_counts.get(reason.summary, 0) + 1
    top = sorted(summary_counts, key=lambda s: -summary_counts[s])[:3]
    return "no valid combination for this host: " + "; ".join(top)


def parse_version(text: str, what: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise InputError(f"{what} is not a version", value=text, hint="e.g. 2.7.1") from None
