"""Conda lockfiles: `environment.yml` and `conda-lock.yml` for one target, without a conda executable.

The resolution becomes conda specs (`pytorch ==2.8.0 cuda126_*`, `cuda-version ==12.6`, ...) from
the facts in `matrices/conda.toml`. py-rattler solves them in-process against the configured channels
for the target's conda platform, with the *target host's* virtual packages (`__cuda` from its driver,
`__glibc`, `__osx`, `__archspec`), never this machine's. The lock is written with conda-lock's own
models and writer, and its content hash is conda-lock's own, computed from the generated
`environment.yml` and a virtual-package spec, so `conda-lock` agrees with it.

`engine="conda-lock"` runs real conda-lock (through the runner) on the same two files instead; it
needs conda, mamba or micromamba on PATH.

A CUDA target's specs require a CUDA build (build-string glob and the cuda-version pin): a driver too
old for it makes the solve fail (NoCompatibleCombination naming `__cuda`), never a quiet CPU build.

py-rattler and conda-lock are an optional extra (`pip install 'stack-resolver[conda]'`) and are
imported only here, only when a conda lock is made.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from resolver import __version__
from resolver.errors import ExternalToolError, InputError, NoCompatibleCombination
from resolver.host.model import Host
from resolver.lock.conda_specs import VirtualPackage as VirtualPackage
from resolver.lock.conda_specs import channel_strings as channel_strings
from resolver.lock.conda_specs import conda_platform as conda_platform
from resolver.lock.conda_specs import conda_specs as conda_specs
from resolver.lock.conda_specs import driver_cuda as driver_cuda
from resolver.lock.conda_specs import render_environment as render_environment
from resolver.lock.conda_specs import virtual_package_spec as virtual_package_spec
from resolver.lock.conda_specs import virtual_packages as virtual_packages
from resolver.lock.runner import Runner, run_subprocess
from resolver.matrix.conda import conda_facts
from resolver.matrix.model import Matrix
from resolver.matrix.vocab import CPU, CUDA, Variant
from resolver.solve.reasons import CondaUnsolvable, NoCondaMapping, Reason, Unavailable
from resolver.solve.search import Resolution
from resolver.sources import Channels

ENVIRONMENT = "environment.yml"
CONDA_LOCKFILE = "conda-lock.yml"
VIRTUAL_PACKAGE_SPEC = "virtual-packages.yml"
ENGINES = ("rattler", "conda-lock")
CONDA_EXECUTABLES = ("micromamba", "mamba", "conda")
INSTALL_HINT = "pip install 'stack-resolver[conda]'"


# --- optional imports ------------------------------------------------------------------------


def _import_rattler() -> Any:
    try:
        import rattler
        import rattler.exceptions
    except ImportError as exc:
        raise ExternalToolError(f"conda locks need py-rattler ({exc})", hint=INSTALL_HINT) from None
    return rattler


def _import_conda_lock() -> Any:
    try:
        import conda_lock.lockfile
        import conda_lock.lockfile.v2prelim.models
    except ImportError as exc:
        raise ExternalToolError(f"conda locks need conda-lock ({exc})", hint=INSTALL_HINT) from None
    return conda_lock


def tool_versions() -> dict[str, str]:
    found = {}
    for dist in ("py-rattler", "conda-lock"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CondaSettings:
    channels: Channels = field(default_factory=Channels)
    cache_dir: Path | None = None
    engine: str = "rattler"
    offline: bool = False
    runner: Runner = run_subprocess
    environ: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 900.0


def _gateway(rattler: Any, settings: CondaSettings) -> Any:
    config = rattler.SourceConfig(cache_action="force-cache-only") if settings.offline else None
    cache = settings.cache_dir
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    return rattler.Gateway(cache_dir=cache, default_config=config)


def _rattler_channels(rattler: Any, channels: Channels) -> list[Any]:
    if channels.alias is None:
        return [rattler.Channel(c) for c in channel_strings(channels)]
    config = rattler.ChannelConfig(channel_alias=channels.alias.rstrip("/") + "/")
    return [rattler.Channel(c, config) for c in channel_strings(channels)]


def _rattler_virtual(rattler: Any, packages: Iterable[VirtualPackage]) -> list[Any]:
    return [
        rattler.GenericVirtualPackage(
            rattler.PackageName(p.name), rattler.Version(p.version), rattler.BuildString(p.build)
        )
        for p in packages
    ]


def _fetch_error(exc: Exception, channels: Channels) -> ExternalToolError:
    return ExternalToolError(
        f"conda channel request failed: {exc}",
        hint=f"check the channels ({', '.join(channel_strings(channels))}), [conda] channel_alias, "
        "STACK_RESOLVER_CONDA_CHANNELS, the network, or drop --offline",
    )


# --- what the channels carry -----------------------------------------------------------------


def channel_gaps(
    matrix: Matrix, host: Host, packages: Sequence[str], settings: CondaSettings
) -> tuple[dict[tuple[str, str], Reason], dict[str, Reason]]:
    """(torch version, variant) and transformers versions the channels lack for the target's
    platform, each with why: the solver then skips them, as it skips builds missing on a pip index."""
    rattler = _import_rattler()
    facts = conda_facts(matrix)
    subdir = conda_platform(host, facts).subdir
    torch_row = facts.packages["torch"]
    names = [torch_row.conda, facts.conda_name("transformers")]
    channels = _rattler_channels(rattler, settings.channels)
    where = ", ".join(channel_strings(settings.channels))
    try:
        result = asyncio.run(
            _gateway(rattler, settings).query(channels, [subdir, "noarch"], names, recursive=False)
        )
    except Exception as exc:
        raise _fetch_error(exc, settings.channels) from None
    torch_builds: set[tuple[str, str]] = set()
    transformers: set[str] = set()
    for per_channel in result:
        for record in per_channel:
            name = record.name.normalized
            if name == torch_row.conda:
                torch_builds.add((str(record.version), str(record.build)))
            elif name == facts.conda_name("transformers"):
                transformers.add(str(record.version))
    missing: dict[tuple[str, str], Reason] = {}
    for release in matrix.torch:
        version = str(release.version)
        for variant in release.variants:
            parsed = Variant.of(variant)
            if parsed is not None and parsed.kind == CUDA:
                glob = torch_row.build_cuda.format(cuda=parsed.number) if torch_row.build_cuda else None
            elif variant == CPU:
                glob = torch_row.build_cpu
            else:
                missing[(version, variant)] = NoCondaMapping(variant)
                continue
            if not any(
                v == version and (glob is None or fnmatch.fnmatchcase(b, glob)) for v, b in torch_builds
            ):
                missing[(version, variant)] = Unavailable(f"conda channel {where} ({subdir})")
    absent = Unavailable(f"conda channel {where}", "transformers")
    missing_transformers: dict[str, Reason] = {
        str(row.version): absent for row in matrix.transformers if str(row.version) not in transformers
    }
    return missing, missing_transformers


# --- the solve and the lock ------------------------------------------------------------------


@dataclass(frozen=True)
class CondaInputs:
    """Everything a conda lock is made from; its hash decides reuse."""

    name: str
    subdir: str
    channels: tuple[str, ...]
    specs: tuple[str, ...]
    virtual: tuple[VirtualPackage, ...]
    engine: str

    @property
    def environment_text(self) -> str:
        return render_environment(self.name, self.channels, self.specs, self.subdir)

    @property
    def virtual_spec_text(self) -> str:
        return virtual_package_spec(self.subdir, self.virtual)

    def record(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "platform": self.subdir,
            "channels": list(self.channels),
            "specs": list(self.specs),
            "virtual_packages": {p.name: p.spec_text for p in self.virtual},
            "tools": tool_versions(),
        }

    def inputs_hash(self) -> str:
        payload = {
            "environment": self.environment_text,
            "record": self.record(),
            "stack_resolver": __version__,
        }
        return "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def conda_inputs(
    name: str,
    host: Host,
    matrix: Matrix,
    resolution: Resolution,
    packages: Sequence[str],
    settings: CondaSettings,
) -> CondaInputs:
    if settings.engine not in ENGINES:
        raise InputError("unknown conda engine", value=settings.engine, hint=f"one of {', '.join(ENGINES)}")
    facts = conda_facts(matrix)
    return CondaInputs(
        name=name,
        subdir=conda_platform(host, facts).subdir,
        channels=channel_strings(settings.channels),
        specs=conda_specs(resolution, packages, facts),
        virtual=virtual_packages(host, matrix, facts),
        engine=settings.engine,
    )


def solve_records(inputs: CondaInputs, settings: CondaSettings) -> list[Any]:
    """Solve in-process with py-rattler. Unsolvable specs are NoCompatibleCombination (exit 3): the
    channels hold no packages that fit this host; the message names the virtual packages."""
    rattler = _import_rattler()
    try:
        records: list[Any] = asyncio.run(
            rattler.solve(
                _rattler_channels(rattler, settings.channels),
                list(inputs.specs),
                gateway=_gateway(rattler, settings),
                platforms=[inputs.subdir, "noarch"],
                virtual_packages=_rattler_virtual(rattler, inputs.virtual),
            )
        )
    except rattler.exceptions.SolverError as exc:
        virtual = tuple(f"{p.name}={p.spec_text}" for p in inputs.virtual)
        unsolvable = CondaUnsolvable(inputs.subdir, virtual, tuple(inputs.specs), str(exc).strip())
        raise NoCompatibleCombination(reasons=(unsolvable,)) from None
    except Exception as exc:
        raise _fetch_error(exc, settings.channels) from None
    return sorted(records, key=lambda r: r.name.normalized)


def _dependencies(depends: Iterable[str], rattler: Any) -> dict[str, str]:
    """`name -> version spec` as conda-lock records them (several specs of one name joined with ,)."""
    merged: dict[str, list[str]] = {}
    for text in depends:
        spec = rattler.MatchSpec(text)
        version = str(spec.version) if spec.version is not None else ""
        merged.setdefault(spec.name.normalized, [])
        if version and version != "*":
            merged[spec.name.normalized].append(version)
    return {name: ",".join(versions) for name, versions in sorted(merged.items())}


def _content_hash(staging: Path, inputs: CondaInputs) -> dict[str, str]:
    """conda-lock's own content hash of the generated environment.yml and virtual-package spec."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    # conda-lock maps the conda name `pip` through a PyPI mapping it would download; an empty local
    # one keeps this offline (only the identity mapping is ever needed here).
    mapping = staging / "pypi-mapping.json"
    mapping.write_text("{}", encoding="utf-8")
    spec = make_lock_spec(
        src_files=[staging / ENVIRONMENT], platform_overrides=[inputs.subdir], mapping_url=str(mapping)
    )
    repo = virtual_package_repo_from_specification(staging / VIRTUAL_PACKAGE_SPEC)
    hashes: dict[str, str] = compute_content_hashes(spec, repo)
    return hashes


def write_lockfile(staging: Path, inputs: CondaInputs, records: Sequence[Any]) -> bytes:
    """conda-lock.yml through conda-lock's models and writer; no timestamps, so a re-lock of the
    same solution is byte-identical."""
    rattler = _import_rattler()
    conda_lock = _import_conda_lock()
    models = conda_lock.lockfile.v2prelim.models
    packages = []
    for record in records:
        if record.md5 is None or record.sha256 is None:
            raise ExternalToolError(
                f"{record.url} has no md5 or sha256 in the channel's repodata",
                hint="conda-lock.yml needs both; index the channel with a current indexer",
            )
        packages.append(
            models.LockedDependency(
                name=record.name.normalized,
                version=str(record.version),
                manager="conda",
                platform=inputs.subdir,
                dependencies=_dependencies(record.depends, rattler),
                url=record.url,
                hash=models.HashModel(md5=record.md5.hex(), sha256=record.sha256.hex()),
                build=str(record.build),
                categories={"main"},
            )
        )
    lockfile = models.Lockfile(
        package=packages,
        metadata=models.LockMeta(
            content_hash=_content_hash(staging, inputs),
            channels=list(inputs.channels),
            platforms=[inputs.subdir],
            sources=[ENVIRONMENT],
        ),
    )
    conda_lock.lockfile.write_conda_lock_file(lockfile, staging / CONDA_LOCKFILE, metadata_choices=None)
    data: bytes = (staging / CONDA_LOCKFILE).read_bytes()
    return data


def check_lockfile(path: Path) -> Any:
    """Parse a conda-lock.yml back with conda-lock's parser; a failure is an ExternalToolError."""
    conda_lock = _import_conda_lock()
    try:
        return conda_lock.lockfile.parse_conda_lock_file(path)
    except Exception as exc:
        raise ExternalToolError(f"{path.name} does not parse as a conda-lock file: {exc}") from None


def conda_executable(environ: Mapping[str, str]) -> str | None:
    path = environ.get("PATH", "")
    for name in CONDA_EXECUTABLES:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def run_conda_lock(staging: Path, inputs: CondaInputs, settings: CondaSettings) -> bytes:
    """Real conda-lock on the generated environment.yml with the target's virtual packages."""
    _import_conda_lock()
    exe = conda_executable(settings.environ)
    if exe is None:
        raise ExternalToolError(
            "--engine conda-lock needs conda, mamba or micromamba on PATH",
            hint="install one of them, or use the default in-process engine (--engine rattler)",
        )
    argv = [
        sys.executable,
        "-m",
        "conda_lock",
        "lock",
        "--file",
        ENVIRONMENT,
        "--platform",
        inputs.subdir,
        "--virtual-package-spec",
        VIRTUAL_PACKAGE_SPEC,
        "--lockfile",
        CONDA_LOCKFILE,
        "--conda",
        exe,
    ]
    if Path(exe).name.startswith("micromamba"):
        argv.append("--micromamba")
    elif Path(exe).name.startswith("mamba"):
        argv.append("--mamba")
    completed = settings.runner(argv, cwd=staging, env=dict(settings.environ), timeout=settings.timeout)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-15:]
        raise ExternalToolError(
            f"conda-lock failed (exit {completed.returncode}):\n" + "\n".join(tail),
            hint="the same environment.yml and virtual-packages.yml are what it ran on",
        )
    output = staging / CONDA_LOCKFILE
    if not output.is_file():
        raise ExternalToolError("conda-lock exited 0 but wrote no conda-lock.yml")
    return output.read_bytes()


def lock_in_staging(inputs: CondaInputs, settings: CondaSettings, staging_parent: Path) -> bytes:
    """Make conda-lock.yml in a staging folder and return its bytes; the folder is always removed."""
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".stack-resolver-conda-", dir=staging_parent))
    try:
        (staging / ENVIRONMENT).write_text(inputs.environment_text, encoding="utf-8")
        (staging / VIRTUAL_PACKAGE_SPEC).write_text(inputs.virtual_spec_text, encoding="utf-8")
        if inputs.engine == "conda-lock":
            data = run_conda_lock(staging, inputs, settings)
        else:
            data = write_lockfile(staging, inputs, solve_records(inputs, settings))
        check_lockfile(staging / CONDA_LOCKFILE)
        return data
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class StagedConda:
    files: dict[str, bytes]
    record: dict[str, Any]
    reused: bool


def stage_conda(
    directory: Path, inputs: CondaInputs, settings: CondaSettings, previous: Mapping[str, Any]
) -> StagedConda:
    """The target's environment.yml and conda-lock.yml, reused when the inputs hash is unchanged."""
    record = inputs.record()
    record["inputs_hash"] = inputs.inputs_hash()
    environment = inputs.environment_text.encode("utf-8")
    old = previous.get("conda")
    lock_path = directory / CONDA_LOCKFILE
    if (
        isinstance(old, Mapping)
        and old.get("inputs_hash") == record["inputs_hash"]
        and lock_path.is_file()
        and (directory / ENVIRONMENT).is_file()
        and (directory / ENVIRONMENT).read_bytes() == environment
    ):
        return StagedConda({}, dict(old), reused=True)
    lock = lock_in_staging(inputs, settings, directory.parent)
    record["lock_sha256"] = hashlib.sha256(lock).hexdigest()
    return StagedConda({ENVIRONMENT: environment, CONDA_LOCKFILE: lock}, record, reused=False)
