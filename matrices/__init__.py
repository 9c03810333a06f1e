"""The shipped compatibility matrix: data only (the TOML files beside this one).

Edited here, at the top of the repository; the build installs it as `resolver/matrices/`
(`[tool.poetry] packages` in pyproject.toml), where `resolver.matrix.load.default_matrix_dir`
finds it with `importlib.resources`. This file only makes the folder a package the build can
place inside `resolver/`.
"""
