"""GPU product names ("RTX 4090", "NVIDIA GeForce RTX 4090", "a100-sxm4-80gb") to the compute
capability the matrix lists them under, so a name is accepted wherever a compute capability is."""

from __future__ import annotations

import re

from resolver.errors import InputError
from resolver.host.model import ComputeCapability
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


def product_capability(matrix: Matrix, text: str) -> ComputeCapability | None:
    """The compute capability of the product `text` names, or None when no product matches. A
    name that matches products of different capabilities is bad input, naming them."""
    wanted = _words(text)
    if not wanted:
        return None
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
    found = exact or partial or (within[max(within)] if within else {})
    if len(found) > 1:
        names = "; ".join(
            f"{product} ({cc})" for cc, product in sorted(found.items(), key=lambda i: str(i[0]))
        )
        raise InputError("more than one GPU has this name", value=text, hint=f"be more precise: {names}")
    return next(iter(found), None)
