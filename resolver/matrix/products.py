"""GPU product names ("RTX 4090", "NVIDIA GeForce RTX 4090", "a100-sxm4-80gb") to the compute
capability the matrix lists them under, so a name is accepted wherever a compute capability is
(`gpu_names`: the lookup every reader of a capability takes, see `resolver.host.gpunames`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from resolver.errors import InputError
from resolver.host.gpunames import CapabilityError, GpuNames
from resolver.host.model import ComputeCapability

if TYPE_CHECKING:  # `detect` names no GPU by product: it loads no matrix code
    from resolver.matrix.model import Matrix

# Words that brand a product without naming it: "NVIDIA GeForce RTX 4090" is the "RTX 4090".
_BRAND = {"nvidia", "geforce"}


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w and w not in _BRAND)


def _has_digit(word: str) -> bool:
    return any(c.isdigit() for c in word)


def product_names(product: str) -> list[tuple[str, ...]]:
    """The names one `products` entry of gpus.toml stands for: "GeForce RTX 4090/4080/4070 Ti" is
    three GPUs sharing "GeForce RTX"; a trailing word of the last ("... 4000/2000 Ada") belongs to
    each; a note in parentheses ("(DGX Spark)", "(e.g. RTX 3090)") is a name too."""
    base, _, note = product.partition("(")
    parts = [part.split() for part in base.split("/") if part.strip()]
    if not parts:
        return []
    first = parts[0]
    cut = next((i for i, w in enumerate(first) if _has_digit(w)), len(first))
    prefix = first[:cut]
    suffix = [w for w in parts[-1][1:] if not _has_digit(w)] if len(parts) > 1 else []
    names = []
    for index, words in enumerate(parts):
        if index > 0 and _has_digit(words[0]):
            words = prefix + words
        names.append(_words(" ".join(words)))
        if suffix and words[-len(suffix) :] != suffix:
            names.append(_words(" ".join(words + suffix)))
    note = note.rstrip(") ").replace("e.g.", " ")
    if note.strip():
        names.append(_words(note))
    return [n for n in names if n]


def _word_matches(pattern: str, word: str) -> bool:
    """A family word such as "30xx" stands for every model number it covers ("3090")."""
    if pattern == word:
        return True
    stem = pattern.removesuffix("xx")
    return stem != pattern and word.isdigit() and len(word) == len(pattern) and word.startswith(stem)


def _contains(name: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return any(
        all(_word_matches(p, w) for p, w in zip(name[i : i + len(wanted)], wanted, strict=True))
        for i in range(len(name) - len(wanted) + 1)
    )


def _matches(matrix: Matrix, text: str) -> dict[ComputeCapability, str]:
    """The capabilities (each with the product entry naming it) the name `text` fits."""
    wanted = _words(text)
    if not wanted:
        return {}
    exact: dict[ComputeCapability, str] = {}
    partial: dict[ComputeCapability, str] = {}
    # A driver's longer spelling ("NVIDIA H100 80GB HBM3") holds a listed name: the longest wins.
    within: dict[int, dict[ComputeCapability, str]] = {}
    for gpu in matrix.gpus.values():
        for product in gpu.products:
            for name in product_names(product):
                if len(name) == len(wanted) and _contains(name, wanted):
                    exact.setdefault(gpu.cc, product)
                elif _contains(name, wanted):
                    partial.setdefault(gpu.cc, product)
                elif _contains(wanted, name) and any(_has_digit(w) for w in name):
                    within.setdefault(len(name), {}).setdefault(gpu.cc, product)
    return exact or partial or (within[max(within)] if within else {})


def _listed(found: dict[ComputeCapability, str]) -> str:
    return "; ".join(f"{product} ({cc})" for cc, product in sorted(found.items(), key=lambda i: str(i[0])))


def product_capability(matrix: Matrix, text: str) -> ComputeCapability | None:
    """The compute capability of the product `text` names, or None when no product matches. A
    name that matches products of different capabilities is bad input, naming them."""
    found = _matches(matrix, text)
    if len(found) > 1:
        raise InputError(
            "more than one GPU has this name", value=text, hint=f"be more precise: {_listed(found)}"
        )
    return next(iter(found), None)


def _spelled(product: str, name: tuple[str, ...]) -> str:
    """A name in the product entry's own spelling: ("rtx", "4090") of "GeForce RTX 4090/..." is
    "RTX 4090"."""
    spelling = {w.lower(): w for w in re.split(r"[\s/()]+", product) if w}
    return " ".join(spelling.get(w, w) for w in name)


def close_products(matrix: Matrix, text: str, limit: int = 3) -> list[str]:
    """The listed product names spelled most like `text`, as "NAME (CC)"."""
    spelled: dict[str, str] = {}
    for gpu in matrix.gpus.values():
        for product in gpu.products:
            for name in product_names(product):
                spelled.setdefault(" ".join(name), f"{_spelled(product, name)} ({gpu.cc})")
    import difflib  # only when a name is not found: every command loads this module

    close = difflib.get_close_matches(" ".join(_words(text)), list(spelled), n=limit, cutoff=0.6)
    return [spelled[c] for c in close]


def gpu_names(matrix: Matrix) -> GpuNames:
    """The lookup host readers take (`resolver.host.gpunames`): a product name of this matrix to
    its compute capability; an unknown name names the close ones, an ambiguous one the candidates."""

    def capability(text: str) -> ComputeCapability:
        found = _matches(matrix, text)
        if len(found) > 1:
            raise CapabilityError(
                "more than one GPU has this name", f"be more precise: {_listed(found)}", ambiguous=True
            )
        if found:
            return next(iter(found))
        close = close_products(matrix, text)
        named = f"close: {'; '.join(close)}" if close else 'a GPU the matrix lists, e.g. "RTX 4090" or "A100"'
        raise CapabilityError(
            "not a compute capability (MAJOR.MINOR) or a GPU the matrix lists",
            f'{named}; or the capability as "8.6" (not "sm_86" or "86")',
        )

    return capability


def shipped_gpu_names() -> GpuNames:
    """`gpu_names` of the shipped matrix, loaded only when a name is looked up (`detect` and
    `doctor` otherwise read no matrix)."""
    loaded: list[Matrix] = []

    def capability(text: str) -> ComputeCapability:
        if not loaded:
            from resolver.matrix.load import load_matrix

            loaded.append(load_matrix())
        return gpu_names(loaded[0])(text)

    return capability
