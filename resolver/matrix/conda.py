"""Conda facts (`conda.toml`): what the resolver's choices are called on conda channels.

Read by the matrix loader with the same located rows as every other matrix file, so `--matrix`,
`$STACK_RESOLVER_MATRIX` and overlays apply to it and `matrix validate` reports its problems. The
file is optional: a matrix without it has no conda facts, and only a conda lock needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from resolver.errors import InputError, Location
from resolver.matrix.load import CONDA_FILE as FILE
from resolver.matrix.located import Citations, File, Keyed, Origin, Row, cite, short
from resolver.matrix.model import PLATFORMS, CondaFacts, CondaPackage, CondaPlatform, Matrix

TOP_KEYS = ("cuda", "defaults", "platform", "package")
DEFAULT_KEYS = ("linux", "glibc", "osx")


@dataclass
class CondaState:
    """conda.toml rows read so far, across the base directory and its overlays."""

    platforms: Keyed[CondaPlatform]
    packages: Keyed[CondaPackage]
    cuda: dict[str, str]
    defaults: dict[str, str]
    sources: list[str]
    seen: bool = False

    @classmethod
    def empty(cls) -> CondaState:
        return cls(Keyed("[[platform]]"), Keyed("[[package]]"), {}, {}, [])

    def facts(self) -> CondaFacts | None:
        if not self.seen:
            return None
        return CondaFacts(
            platforms={key: value for key, (value, _) in self.platforms.rows.items()},
            packages={key: value for key, (value, _) in self.packages.rows.items()},
            cuda_package=self.cuda["package"],
            cuda_pin=self.cuda["pin"],
            defaults=dict(self.defaults),
            sources=tuple(dict.fromkeys(self.sources)),
        )


def conda_facts(matrix: Matrix) -> CondaFacts:
    """The matrix's conda facts; InputError when its directories hold no conda.toml."""
    if matrix.conda is None:
        raise InputError(
            f"the matrix has no {FILE}",
            location=Location(str(matrix.directories[0] / FILE)),
            hint=f"a conda lock needs {FILE} in the matrix directory (restore the shipped one)",
        )
    return matrix.conda


def _need(row: Row, key: str) -> str | None:
    value = row.text(key)
    if value == "":
        row.fail(
            (key,), f"{key!r} must be a non-empty string", value, "see the header of matrices/conda.toml"
        )
        return None
    return value


def read_conda(file: File, conda: CondaState, citations: Citations) -> None:
    """Read one conda.toml; its citations are checked with every other row's."""
    conda.seen = True
    base = file.layer == 0
    cuda = Row(file, ("cuda",), file.data.get("cuda", {}), "[cuda]", ("package", "pin", "source", "note"))
    for key in ("package", "pin"):
        value = _need(cuda, key)
        if value is not None:
            conda.cuda[key] = value
        elif base and key not in cuda.data:
            cuda.fail((), f"[cuda] lacks the required key {key!r}", None, None, key=key)
    if "source" in cuda.data:
        conda.sources.extend(cite(cuda, citations))
    defaults = Row(
        file, ("defaults",), file.data.get("defaults", {}), "[defaults]", (*DEFAULT_KEYS, "source", "note")
    )
    for key in DEFAULT_KEYS:
        value = _need(defaults, key)
        if value is not None:
            conda.defaults[key] = value
        elif base and key not in defaults.data:
            defaults.fail((), f"[defaults] lacks the required key {key!r}", None, None, key=key)
    if "source" in defaults.data:
        conda.sources.extend(cite(defaults, citations))
    for index, data in enumerate(_rows(file, "platform")):
        _read_platform(file, index, data, conda, citations)
    for index, data in enumerate(_rows(file, "package")):
        _read_package(file, index, data, conda, citations)


def _rows(file: File, key: str) -> list[object]:
    rows = file.data.get(key, [])
    if not isinstance(rows, list):
        file.problem(
            (key,), f"expected [[{key}]] rows", short(rows), f"write each row under a [[{key}]] header"
        )
        return []
    return rows


def _read_platform(file: File, index: int, data: object, conda: CondaState, citations: Citations) -> None:
    path = ("platform", index)
    keys = ("platform", "subdir", "archspec", "virtual", "source", "note", "replace")
    row = Row(file, path, data, "[[platform]]", keys, ("platform", "subdir", "archspec"))
    platform, subdir, archspec = _need(row, "platform"), _need(row, "subdir"), _need(row, "archspec")
    if platform is not None and platform not in PLATFORMS:
        row.fail(("platform",), "unknown platform", platform, "one of " + ", ".join(PLATFORMS))
    virtual = row.strings("virtual") or []
    for name in virtual:
        if not name.startswith("__"):
            row.fail(("virtual",), "not a virtual package name", name, "virtual packages start with __")
    sources = cite(row, citations)
    replace = row.flag("replace")
    if row.ok and platform is not None and subdir is not None and archspec is not None:
        value = CondaPlatform(platform, subdir, archspec, tuple(virtual), sources)
        conda.platforms.add(platform, value, Origin(file, path), replace, platform)


def _read_package(file: File, index: int, data: object, conda: CondaState, citations: Citations) -> None:
    path = ("package", index)
    keys = ("name", "conda", "build_cuda", "build_cpu", "unverified", "source", "note", "replace")
    row = Row(file, path, data, "[[package]]", keys, ("name", "conda"))
    name, conda_name = _need(row, "name"), _need(row, "conda")
    build_cuda, build_cpu = row.text("build_cuda"), row.text("build_cpu")
    unverified = row.flag("unverified")
    sources: tuple[str, ...] = ()
    if "source" in row.data or not unverified:  # an unverified row may say so instead of citing
        sources = cite(row, citations)
    replace = row.flag("replace")
    if row.ok and name is not None and conda_name is not None:
        value = CondaPackage(name, conda_name, build_cuda, build_cpu, unverified, sources)
        conda.packages.add(name, value, Origin(file, path), replace, name)
