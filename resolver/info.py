"""`stack-resolver info`: what is in effect here, and where each piece came from: the project,
the indexes (with the variable or file that set each), the cache, the matrix, Poetry and the
optional extras. Reads only; never installs Poetry nor touches the network."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resolver import __version__
from resolver.config import TeamConfig
from resolver.dirs import cache_root, http_cache_dir
from resolver.lock.poetry.provision import POETRY_VERSION, installed_poetry, provision_home
from resolver.matrix.load import default_matrix_dir, load_matrix
from resolver.project import Project
from resolver.sources import Indexes

# Optional extras: the module each needs.
EXTRAS = {"nvml": "pynvml", "conda": "rattler", "conda-lock": "conda_lock", "uv": "uv"}


def locate_poetry(environ: Mapping[str, str]) -> tuple[str, str]:
    """(what would run, how it was found), in `default_poetry_argv`'s order, installing nothing."""
    configured = environ.get("STACK_RESOLVER_POETRY")
    if configured:
        return configured, "STACK_RESOLVER_POETRY"
    if importlib.util.find_spec("poetry") is not None and importlib.util.find_spec("poetry.console"):
        return f"{sys.executable} -m poetry", "installed beside the tool"
    provisioned = installed_poetry(environ)
    if provisioned is not None:
        return str(provisioned), "installed by the tool"
    found = shutil.which("poetry", path=environ.get("PATH"))
    if found is not None:
        return found, "on PATH"
    return (
        "",
        f"not found: Poetry {POETRY_VERSION} will be installed into {provision_home(environ)} on first use",
    )


def _poetry_version(command: str) -> str | None:
    from resolver.errors import ResolverError
    from resolver.lock.poetry.tool import PoetryTool

    argv = tuple(command.split(" ")) if command.endswith(" -m poetry") else (command,)
    try:
        return PoetryTool(argv=argv).version()
    except (ResolverError, OSError):
        return None


def gather(
    environ: Mapping[str, str], project: Project, team: TeamConfig, indexes: Indexes, matrix_dir: Path | None
) -> dict[str, Any]:
    directory = matrix_dir or default_matrix_dir()
    try:
        matrix_version: str | None = load_matrix(directory).version
    except Exception as exc:  # info reports a broken matrix; it does not fail on it
        matrix_version = f"unreadable: {exc}"
    poetry, how = locate_poetry(environ)
    listed = [("pytorch", indexes.pytorch), ("general", indexes.general)]
    index_rows: list[dict[str, str | None]] = [
        {"role": role, "url": url, "from": indexes.origin(role) or "Poetry's default"}
        for role, url in listed
        if url is not None
    ]
    index_rows += [{"role": "extra", "url": u, "from": indexes.origin(f"extra:{u}")} for u in indexes.extra]
    index_rows += [
        {"role": "find-links", "url": u, "from": indexes.origin(f"find-links:{u}")}
        for u in indexes.find_links
    ]
    return {
        "version": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "project": {
            "root": str(project.root),
            "team_file": str(project.team_file) if project.team_file else None,
            "how": project.how,
        },
        "indexes": index_rows,
        "cert": {"path": indexes.cert, "from": indexes.origin("cert")} if indexes.cert else None,
        "cache": {"root": str(cache_root(environ)), "http": str(http_cache_dir(environ))},
        "matrix": {"directory": str(directory), "version": matrix_version},
        "poetry": {
            "path": poetry or None,
            "found": how,
            "version": _poetry_version(poetry) if poetry else None,
            "pinned": POETRY_VERSION,
        },
        "extras": {name: importlib.util.find_spec(module) is not None for name, module in EXTRAS.items()},
    }


def render(info: Mapping[str, Any]) -> str:
    lines = [f"stack-resolver {info['version']} on Python {info['python']}"]
    project = info["project"]
    lines.append(f"project:  {project['root']} ({project['how']})")
    lines.append("indexes:")
    for row in info["indexes"]:
        lines.append(f"  {row['role']:10s} {row['url']}  (from {row['from']})")
    if info["cert"]:
        lines.append(f"CA bundle: {info['cert']['path']}  (from {info['cert']['from']})")
    lines.append(f"cache:    {info['cache']['root']}")
    lines.append(f"matrix:   {info['matrix']['version']}  {info['matrix']['directory']}")
    poetry = info["poetry"]
    where = poetry["path"] or "-"
    version = poetry["version"] or "?"
    lines.append(f"poetry:   {where}  version {version}, pinned {poetry['pinned']} ({poetry['found']})")
    extras = ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in info["extras"].items())
    lines.append(f"extras:   {extras}")
    return "\n".join(lines) + "\n"
