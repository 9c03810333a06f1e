"""User content in an environment's pyproject.toml is kept byte for byte (README, "Guarantees" 3).

Each tests/data/pyprojects/<name>.toml is a pyproject.toml as a user left it after editing the
generated one (comments, odd spacing and quoting, unknown tables, extra dependencies and sources,
CRLF line endings, ...). Its sidecar <name>.spec.toml is the EnvironmentSpec the tool derives for
that environment, with the owned keys of the file already in the state the spec implies. So:

- a re-render with the same spec is a no-op: not one byte changes;
- a re-render after a new torch pin changes exactly the line(s) holding the torch pin, nothing else.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from resolver.lock.poetry.pyproject import Dependency, EnvironmentSpec, SourceSpec, render_pyproject

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).parents[1] / "data" / "pyprojects"
CASES = sorted(p for p in DATA.glob("*.toml") if not p.name.endswith(".spec.toml"))


def _read(path: Path) -> str:
    # newline="" keeps CRLF as written: the comparison is byte for byte.
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _spec(case: Path) -> EnvironmentSpec:
    data: dict[str, Any] = tomllib.loads((case.parent / f"{case.stem}.spec.toml").read_text("utf-8"))
    return EnvironmentSpec(
        name=data["name"],
        requires_python=data["requires_python"],
        dependencies=tuple(Dependency(d["requirement"], d.get("source")) for d in data["dependencies"]),
        sources=tuple(SourceSpec(s["name"], s["url"], s["priority"]) for s in data.get("sources", [])),
        previously_owned=frozenset(data.get("previously_owned", [])),
    )


def _with_new_torch_pin(spec: EnvironmentSpec) -> tuple[EnvironmentSpec, str, str]:
    """The same spec with another torch version (same local label), and (old, new) requirement."""
    torch = next(d for d in spec.dependencies if d.name == "torch")
    version = str(next(iter(Requirement(torch.requirement).specifier)).version)
    _, plus, label = version.partition("+")
    new_version = ("2.7.1" if not version.startswith("2.7.1") else "2.6.0") + plus + label
    new_requirement = f"torch=={new_version}"
    deps = tuple(Dependency(new_requirement, d.source) if d is torch else d for d in spec.dependencies)
    return (
        EnvironmentSpec(spec.name, spec.requires_python, deps, spec.sources, spec.previously_owned),
        torch.requirement,
        new_requirement,
    )


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 20
    for case in CASES:
        assert (case.parent / f"{case.stem}.spec.toml").is_file(), f"{case.name} has no spec sidecar"


def test_corpus_has_crlf_and_unicode() -> None:
    texts = [_read(case) for case in CASES]
    assert any("\r\n" in text for text in texts)
    assert any(not text.isascii() for text in texts)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_rerun_is_a_no_op(case: Path) -> None:
    text = _read(case)
    rendered = render_pyproject(text, _spec(case), origin=str(case))
    assert rendered.encode("utf-8") == text.encode("utf-8"), "".join(
        difflib.unified_diff(text.splitlines(True), rendered.splitlines(True), "before", "after")
    )


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_new_torch_pin_changes_only_its_line(case: Path) -> None:
    text = _read(case)
    spec, old, new = _with_new_torch_pin(_spec(case))
    rendered = render_pyproject(text, spec, origin=str(case))
    before, after = text.splitlines(True), rendered.splitlines(True)
    assert len(before) == len(after), "".join(difflib.unified_diff(before, after))
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 1, "".join(difflib.unified_diff(before, after))
    line = changed[0]
    assert old in before[line]
    # The pin is replaced in place: same quoting, same comment, same line ending.
    assert after[line] == before[line].replace(old, new)
    # And a re-render of the new text with the new spec is again a no-op.
    assert render_pyproject(rendered, spec) == rendered
