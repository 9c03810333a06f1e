"""`stack-resolver verify` for a conda target: install its `conda-lock.yml` into a fresh prefix.

Steps, each a plain function: read what the target promises (`conda-lock.yml`, parsed with
conda-lock's own parser, for the target's conda platform; `resolution.json`'s `conda` section for
the specs resolve pinned), download every locked archive through the tool's HTTP client (streamed,
retried, md5 and sha256 computed on the way and compared with the lock), install exactly those
archives with py-rattler into a fresh prefix, read the prefix's `conda-meta/*.json` back, and, if
the prefix holds a Python, run `resolver/smoke.py` with it as the Poetry path does.

Versions are compared the conda way: a locked or installed record fits the resolution when
`rattler.VersionSpec` of the pinned spec (`==2.8.0`) matches its version (so `2.8` equals `2.8.0`)
and its build string matches the spec's glob (`cpu_*`, `cuda126_*`). The smoke test expects the
conda version (`2.8.0`, no local label: conda builds report none).

py-rattler and conda-lock are imported lazily (`pip install 'stack-resolver[conda]'`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resolver import progress
from resolver.errors import ExternalToolError, InputError, Location
from resolver.host.model import Host
from resolver.index.client import IndexClient
from resolver.lock.conda import CONDA_LOCKFILE, INSTALL_HINT, check_lockfile
from resolver.lock.record import RESOLUTION
from resolver.lock.runner import Runner, run_subprocess
from resolver.matrix.load import load_conda_facts
from resolver.matrix.model import variant_cuda, variant_kind
from resolver.verify.poetry import Expectations, Report, _record, run_smoke
from resolver.verify.smoke import PACKAGES, Check
from resolver.verify.vendors import expected_devices, host_gfx

__all__ = [
    "CondaExpectations",
    "LockedPackage",
    "download_archives",
    "install_prefix",
    "installed_checks",
    "installed_records",
    "lock_checks",
    "prefix_python",
    "read_conda_expectations",
    "smoke_expectations",
    "spec_fits",
    "verify_conda_target",
]

NO_PYTHON = "the prefix has no Python interpreter: the channel provides none"


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    build: str
    url: str
    md5: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.split("#", 1)[0].rsplit("/", 1)[-1]

    @property
    def shown(self) -> str:
        return f"{self.name} {self.version} {self.build}"


@dataclass(frozen=True)
class CondaExpectations:
    """What a conda target promises: the locked records for its platform and the resolved specs."""

    target: str
    subdir: str
    python: str
    variant: str
    cuda: str | None
    packages: tuple[LockedPackage, ...]
    #: names of packages the lock installs with pip (verify installs conda packages only)
    pip_packages: tuple[str, ...]
    #: managed package (torch, ...) -> the conda spec resolve pinned, e.g. "pytorch ==2.8.0 cpu_*"
    specs: Mapping[str, str]
    #: managed package -> the version its conda build reports, e.g. "2.8.0"
    versions: Mapping[str, str]
    #: (recorded in resolution.json, of conda-lock.yml now); the first is None for older records
    lock_sha256: tuple[str | None, str]
    host_gpus: int
    gfx_targets: tuple[str, ...] = ()

    def locked(self, conda_name: str) -> LockedPackage | None:
        return next((p for p in self.packages if p.name == conda_name), None)


# --- optional imports ------------------------------------------------------------------------------


def _import_rattler() -> Any:
    try:
        import rattler
        import rattler.package_streaming
    except ImportError as exc:
        raise ExternalToolError(
            f"verifying a conda target needs py-rattler ({exc})", hint=INSTALL_HINT
        ) from None
    return rattler


# --- what the target promises ---------------------------------------------------------------------


def _spec_name(spec: str) -> str:
    return spec.split()[0] if spec.split() else ""


def _pinned_version(spec: str) -> str | None:
    """`pytorch ==2.8.0 cpu_*` -> `2.8.0`; None for a spec that pins no single version."""
    parts = spec.split()
    if len(parts) > 1 and parts[1].startswith("==") and not any(c in parts[1] for c in "*,|<>!"):
        return parts[1][2:]
    return None


def read_conda_expectations(directory: Path, host: Host) -> CondaExpectations:
    record = _record(directory)
    resolution = record["resolution"]
    where = str(directory / RESOLUTION)
    conda = record.get("conda")
    if not isinstance(conda, dict):
        raise InputError(
            "resolution.json has no 'conda' section",
            location=Location(where),
            hint="run `stack-resolver resolve --format conda` again",
        )
    variant = resolution.get("variant")
    if not isinstance(variant, str) or variant_kind(variant) is None:
        raise InputError(
            "resolution.json names no valid variant",
            location=Location(where, key="resolution.variant"),
            value=variant,
            hint="run `stack-resolver resolve` again",
        )
    lock_path = directory / CONDA_LOCKFILE
    lock = check_lockfile(lock_path)
    subdir = conda.get("platform")
    if not isinstance(subdir, str):
        platforms = [str(p) for p in lock.metadata.platforms]
        if len(platforms) != 1:
            raise InputError(
                "resolution.json names no conda platform",
                location=Location(where, key="conda.platform"),
                hint="run `stack-resolver resolve --format conda` again",
            )
        subdir = platforms[0]
    packages, pip = [], []
    for package in lock.package:
        if str(package.platform) != subdir:
            continue
        if package.manager != "conda":
            pip.append(str(package.name))
            continue
        packages.append(
            LockedPackage(
                name=str(package.name),
                version=str(package.version),
                build=str(package.build or ""),
                url=str(package.url),
                md5=str(package.hash.md5 or ""),
                sha256=str(package.hash.sha256 or ""),
            )
        )
    if not packages:
        raise InputError(
            f"conda-lock.yml has no conda packages for {subdir}",
            location=Location(str(lock_path)),
            hint="run `stack-resolver resolve --format conda` again",
        )
    facts = load_conda_facts()
    recorded = [str(s) for s in conda.get("specs", []) if isinstance(s, str)]
    specs: dict[str, str] = {}
    versions: dict[str, str] = {}
    for name in PACKAGES:
        spec = next((s for s in recorded if _spec_name(s) == facts.conda_name(name)), None)
        if spec is None:
            continue
        specs[name] = spec
        resolved = resolution.get(name)
        # conda builds carry the public version only: 2.8.0+cu126 is 2.8.0 in a conda prefix
        public = str(resolved).split("+", 1)[0] if resolved is not None else None
        version = _pinned_version(spec) or public
        if version is not None:
            versions[name] = version
    cuda = variant_cuda(variant)
    recorded_sha = conda.get("lock_sha256")
    return CondaExpectations(
        target=directory.name,
        subdir=subdir,
        python=str(resolution.get("python")),
        variant=variant,
        cuda=None if cuda is None else str(cuda),
        packages=tuple(sorted(packages, key=lambda p: p.name)),
        pip_packages=tuple(sorted(pip)),
        specs=specs,
        versions=versions,
        lock_sha256=(
            recorded_sha if isinstance(recorded_sha, str) else None,
            hashlib.sha256(lock_path.read_bytes()).hexdigest(),
        ),
        host_gpus=expected_devices(host, variant),
        gfx_targets=host_gfx(host),
    )


def spec_fits(spec: str, version: str, build: str) -> bool:
    """A record fits a pinned conda spec: conda's version matching, the build string's glob."""
    rattler = _import_rattler()
    parts = spec.split()
    try:
        if len(parts) > 1 and not rattler.VersionSpec(parts[1]).matches(rattler.Version(version)):
            return False
    except Exception:  # an unparsable version is not the version resolved
        return False
    return len(parts) < 3 or fnmatch.fnmatchcase(build, parts[2])


def lock_checks(expect: CondaExpectations) -> list[Check]:
    """The lock is the one resolve wrote and holds the builds the resolution pinned."""
    checks: list[Check] = []
    recorded, actual = expect.lock_sha256
    if recorded is not None:
        checks.append(
            Check(
                "conda-lock.yml as written by resolve",
                "pass" if recorded == actual else "fail",
                f"sha256 {recorded} (resolution.json)",
                f"sha256 {actual}",
                "" if recorded == actual else "the lock was edited or replaced: run `stack-resolver resolve`",
            )
        )
    for package, spec in expect.specs.items():
        locked = expect.locked(_spec_name(spec))
        found = f"{locked.shown} (conda-lock.yml)" if locked is not None else "not in conda-lock.yml"
        ok = locked is not None and spec_fits(spec, locked.version, locked.build)
        checks.append(
            Check(
                f"{package} locked as resolved",
                "pass" if ok else "fail",
                f"{spec} (resolution.json)",
                found,
                "" if ok else "the lock was edited or is stale: run `stack-resolver resolve`",
            )
        )
    if expect.pip_packages:
        checks.append(
            Check(
                "pip packages in the lock",
                "fail",
                "none (verify installs conda packages only)",
                ", ".join(expect.pip_packages),
                "these would not be installed: the prefix could not match the lock",
            )
        )
    return checks


# --- downloads and the install --------------------------------------------------------------------


def download_archives(
    packages: Sequence[LockedPackage], directory: Path, client: IndexClient
) -> tuple[list[Check], dict[str, Path]]:
    """Fetch every locked archive into `directory`, comparing md5 and sha256 with the lock.
    Returns (checks, archive path by package name); any failed check means: do not install."""
    checks: list[Check] = []
    archives: dict[str, Path] = {}
    directory.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for number, package in enumerate(packages, 1):
        destination = directory / package.filename
        progress.status(f"downloading {number}/{len(packages)} files, {progress.size(fetched)}")
        try:
            got = client.download(package.url, destination)
            fetched += got.size
        except (ExternalToolError, OSError) as exc:
            detail = exc.render() if isinstance(exc, ExternalToolError) else str(exc)
            checks.append(Check(f"download {package.filename}", "fail", "downloaded", "failed", detail))
            continue
        expected = f"sha256:{package.sha256 or '(none)'} md5:{package.md5 or '(none)'}"
        if got.sha256 != package.sha256 or got.md5 != package.md5:
            checks.append(
                Check(
                    f"hash of {package.filename}",
                    "fail",
                    f"{expected} (conda-lock.yml)",
                    f"sha256:{got.sha256} md5:{got.md5} (served)",
                    f"{package.name} {package.version}: the channel serves other bytes than were locked: "
                    f"{package.url}",
                )
            )
            continue
        archives[package.name] = destination
    if not checks:
        checks.append(
            Check(
                "hashes of the locked archives",
                "pass",
                "md5 and sha256 as in conda-lock.yml",
                f"{len(archives)} archives match",
            )
        )
    return checks, archives


def install_prefix(
    packages: Sequence[LockedPackage], archives: Mapping[str, Path], prefix: Path, subdir: str, cache: Path
) -> Check:
    """`rattler.install` of exactly the downloaded archives into a fresh `prefix`. Each archive is
    unpacked into the package cache first, so rattler links the bytes that were checked instead of
    fetching them again; conda-meta still records the locked URL. Link scripts are not run."""
    name, expected = "install the lock", "rattler installs the lock into a fresh prefix"
    rattler = _import_rattler()
    try:
        records = []
        for package in packages:
            archive = archives[package.name]
            record = asyncio.run(rattler.RepoDataRecord.from_package_archive(archive))
            record.url = package.url
            record.md5 = bytes.fromhex(package.md5)
            entry = f"{record.name.normalized}-{record.version}-{record.build}"
            rattler.package_streaming.extract(archive, cache / entry)
            records.append(record)
        asyncio.run(
            rattler.install(
                records,
                target_prefix=prefix,
                cache_dir=cache,
                platform=rattler.Subdir(subdir),
                show_progress=False,
                execute_link_scripts=False,
            )
        )
    except Exception as exc:  # rattler raises its own assorted errors: each is a failed install
        return Check(name, "fail", expected, "failed", f"{type(exc).__name__}: {exc}")
    return Check(name, "pass", expected, f"{len(records)} packages")


def installed_records(prefix: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, build) from the prefix's `conda-meta/*.json`."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "name" in data:
            found[str(data["name"])] = (str(data.get("version")), str(data.get("build")))
    return found


def installed_checks(expect: CondaExpectations, installed: Mapping[str, tuple[str, str]]) -> list[Check]:
    """Every locked record is in the prefix as locked, nothing else is; the managed packages fit
    the resolution."""
    checks: list[Check] = []
    for locked_package in expect.packages:
        found = installed.get(locked_package.name)
        if found == (locked_package.version, locked_package.build):
            continue
        checks.append(
            Check(
                f"{locked_package.name} installed as locked",
                "fail",
                f"{locked_package.version} {locked_package.build} (conda-lock.yml)",
                f"{found[0]} {found[1]} (conda-meta)" if found is not None else "not installed",
                locked_package.url,
            )
        )
    locked = {p.name for p in expect.packages}
    for extra in sorted(set(installed) - locked):
        version, build = installed[extra]
        checks.append(
            Check(f"{extra} installed as locked", "fail", "not in conda-lock.yml", f"{version} {build}")
        )
    if not checks:
        checks.append(
            Check(
                "records installed as locked",
                "pass",
                "name, version and build as in conda-lock.yml",
                f"{len(expect.packages)} records match",
            )
        )
    for package, spec in expect.specs.items():
        record = installed.get(_spec_name(spec))
        ok = record is not None and spec_fits(spec, record[0], record[1])
        checks.append(
            Check(
                f"{package} installed as resolved",
                "pass" if ok else "fail",
                f"{spec} (resolution.json)",
                f"{_spec_name(spec)} {record[0]} {record[1]} (conda-meta)" if record else "not installed",
            )
        )
    return checks


def prefix_python(prefix: Path) -> Path | None:
    python = prefix / ("python.exe" if os.name == "nt" else "bin/python")
    return python if python.is_file() else None


def _current_subdir() -> str:
    return str(_import_rattler().Platform.current())


def smoke_expectations(expect: CondaExpectations, installed: Mapping[str, tuple[str, str]]) -> Expectations:
    """The smoke test's expectations: the conda versions (no local label) of the managed packages
    the prefix holds."""
    present = {p: v for p, v in expect.versions.items() if _spec_name(expect.specs[p]) in installed}
    return Expectations(
        target=expect.target,
        python=expect.python,
        variant=expect.variant,
        cuda=expect.cuda,
        locked=present,
        resolved={p: expect.versions.get(p) for p in PACKAGES},
        host_gpus=expect.host_gpus,
        gfx_targets=expect.gfx_targets,
    )


# --- the whole run --------------------------------------------------------------------------------


def verify_conda_target(
    directory: Path,
    host: Host,
    *,
    runner: Runner = run_subprocess,
    environ: Mapping[str, str] | None = None,
    keep: Path | None = None,
    client: IndexClient | None = None,
) -> Report:
    """Install `directory`'s conda-lock.yml into a fresh prefix and check it.

    Archives and the package cache live in a scratch folder that is always removed; the prefix
    too, unless `keep` (which must not exist yet) names where to create and keep it."""
    environ = dict(os.environ) if environ is None else dict(environ)
    _import_rattler()
    expect = read_conda_expectations(directory, host)
    checks = lock_checks(expect)
    if keep is not None and keep.exists():
        raise InputError(
            "the prefix folder already exists", value=str(keep), hint="give a new path to --keep"
        )
    if client is None:
        from resolver.clients import make_client

        client = make_client(environ, offline=False)
    python_record = expect.locked("python")
    version = f"{python_record.version if python_record else expect.python} (not run)"
    scratch = Path(tempfile.mkdtemp(prefix="stack-resolver-verify-"))
    prefix = scratch / "prefix" if keep is None else keep.resolve()
    try:
        hashes, archives = download_archives(expect.packages, scratch / "archives", client)
        checks.extend(hashes)
        if any(c.status == "fail" for c in hashes):
            reason = "a locked archive could not be fetched or does not match the lock"
            checks.append(Check("install the lock", "skip", "-", "-", reason))
            checks.append(Check("smoke test", "skip", "-", "-", "the lock was not installed"))
            return Report(expect.target, str(directory), expect.variant, version, tuple(checks))
        prefix.parent.mkdir(parents=True, exist_ok=True)
        install = install_prefix(expect.packages, archives, prefix, expect.subdir, scratch / "pkgs")
        checks.append(install)
        if install.status != "pass":
            checks.append(Check("smoke test", "skip", "-", "-", "the lock did not install"))
            return Report(expect.target, str(directory), expect.variant, version, tuple(checks))
        installed = installed_records(prefix)
        checks.extend(installed_checks(expect, installed))
        python = prefix_python(prefix)
        here = _current_subdir()
        if expect.subdir not in (here, "noarch"):
            reason = f"the target is {expect.subdir} and this machine is {here}"
            checks.append(Check("smoke test", "skip", "-", "-", reason))
        elif python is None:
            checks.append(Check("smoke test", "skip", "-", "-", NO_PYTHON))
        else:
            version, found = run_smoke(
                python, smoke_expectations(expect, installed), runner=runner, environ=environ
            )
            checks.extend(found)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Report(expect.target, str(directory), expect.variant, version, tuple(checks))
