"""Row readers for sources.toml, cuda.toml, gpus.toml, companions.toml and transformers.toml, and the
load state they fill (rows by key, merged across the base directory and its overlays)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.version import Version

from resolver.errors import MatrixProblem
from resolver.host.model import ComputeCapability, DriverVersion
from resolver.matrix.conda import CondaState
from resolver.matrix.located import (
    CC_HINT,
    DRIVER_HINT,
    PLATFORM_HINT,
    File,
    Keyed,
    KeyPath,
    Origin,
    Row,
    cite,
    did_you_mean,
    parse_date,
    parse_platform,
    parse_version,
    short,
)
from resolver.matrix.model import (
    Build,
    CompanionPair,
    CudaFamily,
    CudaToolkit,
    GpuArch,
    Source,
    TorchRelease,
    TransformersRelease,
)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
URL = re.compile(r"^https?://\S+$")
OS_KEYS = ("linux", "windows")


@dataclass
class State:
    """Everything read so far, across layers."""

    files: list[File] = field(default_factory=list)
    problems: list[MatrixProblem] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    sources: Keyed[Source] = field(default_factory=lambda: Keyed("source"))
    releases: Keyed[TorchRelease] = field(default_factory=lambda: Keyed("[[release]]"))
    builds: Keyed[Build] = field(default_factory=lambda: Keyed("[[build]]"))
    families: Keyed[CudaFamily] = field(default_factory=lambda: Keyed("[[family]]"))
    toolkits: Keyed[CudaToolkit] = field(default_factory=lambda: Keyed("[[toolkit]]"))
    gpus: Keyed[GpuArch] = field(default_factory=lambda: Keyed("[[gpu]]"))
    pairs: Keyed[CompanionPair] = field(default_factory=lambda: Keyed("[[pair]]"))
    transformers: Keyed[TransformersRelease] = field(default_factory=lambda: Keyed("[[release]]"))
    rocm_platforms: set[str] = field(default_factory=set)
    unlabelled_platforms: set[str] = field(default_factory=set)
    index_bound: list[str] | None = None
    conda: CondaState = field(default_factory=CondaState.empty)
    # citations waiting for every sources.toml to be read: (row, cited keys)
    citations: list[tuple[Row, list[str]]] = field(default_factory=list)


_SOURCE_KEYS = (
    "title",
    "kind",
    "url",
    "repo",
    "path",
    "commit",
    "branch",
    "where",
    "retrieved",
    "note",
    "replace",
)
_FAMILY_KEYS = (
    "major",
    "minor_version_compatibility",
    "min_driver",
    "unverified_os",
    "indirect_os",
    "cc_min",
    "cc_max",
    "source",
    "note",
    "replace",
)
_TOOLKIT_KEYS = ("version", "driver", "unverified", "unverified_os", "source", "note", "replace")
_GPU_KEYS = (
    "cc",
    "architecture",
    "products",
    "tegra",
    "unified_from_cuda",
    "indirect",
    "aliases",
    "first_cuda",
    "removed_in_cuda",
    "unverified",
    "source",
    "note",
    "replace",
)
_PAIR_KEYS = ("torch", "torchvision", "torchaudio", "unverified", "source", "note", "replace")
_TRANSFORMERS_KEYS = (
    "version",
    "upload_date",
    "requires_python",
    "torch",
    "runtime_min_torch",
    "yanked",
    "unverified",
    "source",
    "note",
    "replace",
)


def check_citations(state: State) -> None:
    known = state.sources.rows
    for row, keys in state.citations:
        for key in keys:
            if key in known:
                continue
            if URL.match(key):
                known[key] = (Source(key=key, title=key, url=key), Origin(row.file, row.path))
                continue
            hint = did_you_mean(key, [k for k in known if not URL.match(k)])
            row.fail(
                ("source",),
                "unknown source",
                key,
                hint or f"define [sources.{key}] in sources.toml, or cite a URL",
            )


def read_sources(file: File, state: State) -> None:
    meta = file.data.get("meta")
    if meta is not None:
        row = Row(file, ("meta",), meta, "[meta]", ("version",), ("version",) if file.layer == 0 else ())
        version = row.text("version")
        if version:
            state.versions.append(version)
    elif file.layer == 0:
        file.problem((), "sources.toml has no [meta] table", None, 'add [meta] with version = "YYYY-MM-DD"')
    table = file.data.get("sources", {})
    if not isinstance(table, dict):
        file.problem(("sources",), "expected [sources.<key>] tables", short(table))
        return
    for key, data in table.items():
        row = Row(file, ("sources", key), data, f"[sources.{key}]", _SOURCE_KEYS, ("title",))
        title, url, repo, path = row.text("title"), row.text("url"), row.text("repo"), row.text("path")
        commit, where = row.text("commit"), row.text("where")
        row.text("kind")
        row.text("branch")
        retrieved, note = row.text("retrieved"), row.text("note")
        located = [name for name, given in (("url", url), ("repo", repo), ("where", where)) if given]
        if len(located) != 1:
            row.fail(
                (),
                "a source needs exactly one of url, repo + path, or where",
                ", ".join(located) or None,
                "cite a URL, a repository file, or describe where in `where`",
            )
        if url is not None and not URL.match(url):
            row.fail(("url",), "not an http(s) URL", url, "write the full address, https://...")
        if repo is not None and path is None:
            row.fail((), "a repository source needs a path", None, None, key="path")
        if repo is not None and "/" not in repo:
            row.fail(("repo",), "not a repository name", repo, "write owner/name, e.g. pytorch/pytorch")
        if commit is not None and not _COMMIT.match(commit):
            row.fail(("commit",), "not a full git commit", commit, "write the 40-hex-digit commit id")
        if retrieved is not None:
            row.parse("retrieved", retrieved, parse_date, "a date", "write YYYY-MM-DD")
        replace = row.flag("replace")
        # A bad source row is reported once; registering its key keeps citations from cascading.
        if title is not None or not row.ok:
            source = Source(key, title or key, url, repo, path, commit, where, retrieved, note)
            state.sources.add(key, source, Origin(file, ("sources", key)), replace, key)


def driver_table(row: Row, key: str) -> dict[str, DriverVersion]:
    table = row.table(key)
    out: dict[str, DriverVersion] = {}
    for os_name in table or {}:
        if os_name not in OS_KEYS:
            row.fail((key, os_name), "unknown OS for a driver floor", os_name, "one of linux, windows")
            continue
        text: str | None = row.typed(key, str, "a driver version string", (os_name,))
        parsed = row.parse(
            key, text, DriverVersion.parse, "an NVIDIA driver version", DRIVER_HINT, (os_name,)
        )
        if parsed is not None:
            out[os_name] = parsed
    return out


def read_unverified_os(row: Row, drivers: Mapping[str, DriverVersion], key: str) -> frozenset[str]:
    listed = row.strings("unverified_os") or []
    for os_name in listed:
        if os_name not in OS_KEYS:
            row.fail(("unverified_os",), "unknown OS", os_name, "one of linux, windows")
        elif os_name in drivers:
            row.fail(
                ("unverified_os",),
                f"{os_name} has a {key} value but is listed as unverified",
                os_name,
                f"drop the {key} value or the unverified_os entry",
            )
    return frozenset(listed)


def read_family(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("family", index)
    row = Row(
        file,
        path,
        data,
        "[[family]]",
        _FAMILY_KEYS,
        ("major", "minor_version_compatibility", "min_driver", "cc_min", "cc_max"),
    )
    major: int | None = row.typed("major", int, "an integer")
    mvc = row.flag("minor_version_compatibility")
    if "minor_version_compatibility" in row.data and not isinstance(
        row.raw("minor_version_compatibility"), bool
    ):
        mvc = False
    drivers = driver_table(row, "min_driver")
    unverified_os = read_unverified_os(row, drivers, "min_driver")
    if row.table("min_driver") is not None:
        for os_name in OS_KEYS:
            if os_name not in drivers and os_name not in unverified_os and row.ok:
                row.fail(
                    ("min_driver",),
                    f"no {os_name} driver floor",
                    None,
                    f'add {os_name} = "...", or list "{os_name}" in unverified_os if it is unknown',
                )
    cc_min, cc_max = row.cc("cc_min"), row.cc("cc_max")
    if cc_min is not None and cc_max is not None and cc_min > cc_max:
        row.fail(("cc_max",), f"cc_max is below cc_min {cc_min}", str(cc_max), "swap them")
    indirect_os = row.strings("indirect_os") or []
    for os_name in indirect_os:
        if os_name not in drivers:
            row.fail(
                ("indirect_os",),
                "indirect OS has no min_driver value",
                os_name,
                "list only OSes with a floor",
            )
    sources = cite(row, state.citations)
    note = row.text("note")
    replace = row.flag("replace")
    if row.ok and major is not None and cc_min is not None and cc_max is not None:
        family = CudaFamily(
            major, mvc, drivers, cc_min, cc_max, unverified_os, sources, note, frozenset(indirect_os)
        )
        state.families.add(major, family, Origin(file, path), replace, f"CUDA {major}.x")


def read_toolkit(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("toolkit", index)
    row = Row(file, path, data, "[[toolkit]]", _TOOLKIT_KEYS, ("version", "driver"))
    version = row.version("version")
    drivers = driver_table(row, "driver")
    unverified_os = read_unverified_os(row, drivers, "driver")
    unverified = row.flag("unverified")
    if row.table("driver") is not None and not unverified:
        for os_name in OS_KEYS:
            if os_name not in drivers and os_name not in unverified_os and row.ok:
                row.fail(
                    ("driver",),
                    f"no {os_name} driver",
                    None,
                    f'add {os_name} = "...", or list "{os_name}" in unverified_os if it is unknown',
                )
    sources = cite(row, state.citations)
    note = row.text("note")
    replace = row.flag("replace")
    if row.ok and version is not None:
        toolkit = CudaToolkit(version, drivers, unverified, sources, unverified_os, note)
        state.toolkits.add(version, toolkit, Origin(file, path), replace, f"CUDA {version}")


def read_gpu(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("gpu", index)
    row = Row(file, path, data, "[[gpu]]", _GPU_KEYS, ("cc", "architecture", "products"))
    cc = row.cc("cc")
    architecture = row.text("architecture")
    products = row.strings("products") or []
    aliases = []
    for item in row.strings("aliases") or []:
        alias = row.parse("aliases", item, ComputeCapability.parse, "a compute capability", CC_HINT)
        if alias is not None:
            aliases.append(alias)
    first, removed = row.version("first_cuda"), row.version("removed_in_cuda")
    if first is not None and removed is not None and removed <= first:
        row.fail(
            ("removed_in_cuda",),
            f"removed_in_cuda is not after first_cuda {first}",
            str(removed),
            "removed_in_cuda names the first toolkit that can no longer target it",
        )
    unified = row.version("unified_from_cuda")
    if unified is not None and not row.flag("tegra"):
        row.fail(
            ("unified_from_cuda",),
            "only an integrated (tegra = true) part can be unified",
            str(unified),
            "drop it",
        )
    sources = cite(row, state.citations)
    tegra, unverified, replace = row.flag("tegra"), row.flag("unverified"), row.flag("replace")
    note = row.text("note")
    if row.ok and cc is not None and architecture is not None:
        gpu = GpuArch(
            cc,
            architecture,
            tuple(products),
            tegra,
            tuple(aliases),
            first,
            removed,
            unverified,
            sources,
            note,
            row.flag("indirect"),
            unified,
        )
        state.gpus.add(cc, gpu, Origin(file, path), replace, f"compute capability {cc}")


def read_pair(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("pair", index)
    row = Row(file, path, data, "[[pair]]", _PAIR_KEYS, ("torch", "torchvision", "torchaudio"))
    torch = row.version("torch")
    companions: dict[str, Version | None] = {}
    for name in ("torchvision", "torchaudio"):
        text = row.text(name)
        if text == "none":
            companions[name] = None
        else:
            companions[name] = row.parse(
                name,
                text,
                parse_version,
                'a version or "none"',
                f'write the {name} version, or "none" if no release pairs with it',
            )
    sources = cite(row, state.citations)
    note = row.text("note")
    unverified, replace = row.flag("unverified"), row.flag("replace")
    if row.ok and torch is not None:
        pair = CompanionPair(
            torch, companions["torchvision"], companions["torchaudio"], unverified, sources, note
        )
        state.pairs.add(torch, pair, Origin(file, path), replace, f"torch {torch}")


def read_transformers(file: File, index: int, data: object, state: State) -> None:
    path: KeyPath = ("release", index)
    row = Row(file, path, data, "[[release]]", _TRANSFORMERS_KEYS, ("version", "requires_python", "torch"))
    version = row.version("version")
    requires = row.spec("requires_python")
    torch = row.spec("torch")
    runtime_min = row.version("runtime_min_torch")
    upload = row.date("upload_date")
    sources = cite(row, state.citations)
    note = row.text("note")
    yanked, unverified, replace = row.flag("yanked"), row.flag("unverified"), row.flag("replace")
    if row.ok and version is not None and requires is not None and torch is not None:
        release = TransformersRelease(
            version, requires, torch, runtime_min, yanked, upload, unverified, sources, note
        )
        state.transformers.add(version, release, Origin(file, path), replace, f"transformers {version}")


def read_platforms(file: File, state: State) -> None:
    data = file.data.get("platforms")
    if data is None:
        if file.layer == 0:
            file.problem(
                (),
                "torch.toml has no [platforms] table",
                None,
                'add [platforms] with rocm = ["linux-x86_64"] and unlabelled = [...]',
            )
        return
    row = Row(file, ("platforms",), data, "[platforms]", ("rocm", "unlabelled"), ("rocm", "unlabelled"))
    for key, target in (("rocm", state.rocm_platforms), ("unlabelled", state.unlabelled_platforms)):
        for item in row.strings(key) or []:
            if row.parse(key, item, parse_platform, "a platform", PLATFORM_HINT) is not None:
                target.add(item)
    index = file.data.get("index")
    if index is not None:
        row = Row(file, ("index",), index, "[index]", ("bound_packages",), ("bound_packages",))
        packages = row.strings("bound_packages")
        if packages is not None:
            state.index_bound = [*(state.index_bound or []), *packages]
