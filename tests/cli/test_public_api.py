"""The public API in resolver/__init__.py: every name resolves, and `import resolver` stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import resolver


@pytest.mark.parametrize("name", resolver.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(resolver, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        resolver.no_such_name  # noqa: B018


def test_import_resolver_loads_no_submodule() -> None:
    code = "import sys, resolver; print(sorted(m for m in sys.modules if m.startswith('resolver.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_public_solve_gives_a_resolution() -> None:
    host = resolver.Host(os="linux", arch="x86_64", libc="glibc", libc_version="2.35", python="3.11")
    result = resolver.solve_combination(host, resolver.load_matrix(), resolver.Request())
    assert isinstance(result, resolver.Resolution) and result.variant == "cpu"
