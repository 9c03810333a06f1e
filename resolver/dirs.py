"""Where the tool keeps its cache, by each OS's convention (platformdirs).

`STACK_RESOLVER_CACHE_DIR` names the HTTP cache itself (as it always has); the other caches (conda
repodata, the provisioned Poetry, the replayed runs) sit beside it. Without it:
`$XDG_CACHE_HOME/stack-resolver` (default `~/.cache`) on Linux, `~/Library/Caches/stack-resolver`
on macOS, `%LOCALAPPDATA%\\stack-resolver\\Cache` on Windows.

Imports only `os` and `sys` at load time: the replay fast path (resolver/replay.py) finds its
cache through `cache_root_text` before anything heavier (pathlib included) is loaded.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself costs the fast path more than all of its work
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

APP = "stack-resolver"


def _root_text(environ: Mapping[str, str], platform: str) -> str | None:
    """The per-user cache folder by the OS's convention; None where only platformdirs knows it."""
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        # platformdirs reads XDG_CACHE_HOME from os.environ; read it from `environ` the same way.
        xdg = environ.get("XDG_CACHE_HOME", "").strip()
        base = xdg if xdg and os.path.isabs(xdg) else os.path.join(home_text(environ), ".cache")
        return os.path.join(base, APP)
    if platform == "darwin":
        return os.path.join(home_text(environ), "Library", "Caches", APP)
    if platform == "win32":
        local = environ.get("LOCALAPPDATA", "").strip()
        if local:
            return os.path.join(local, APP, "Cache")
    return None


def home_text(environ: Mapping[str, str]) -> str:
    """The user's home folder, from `environ` (injectable for tests): HOME, USERPROFILE (Windows
    without HOME), else what the OS says. The one rule for the cache folders and pip/uv's."""
    home = environ.get("HOME", "").strip() or environ.get("USERPROFILE", "").strip()
    return home if home else os.path.expanduser("~")


def user_cache_root(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """The per-user cache folder for this tool, from `environ` (injectable for tests)."""
    from pathlib import Path

    text = _root_text(environ, platform)
    if text is not None:
        return Path(text)
    import platformdirs  # only where no convention above applies

    return platformdirs.user_cache_path(APP, appauthor=False)


def http_cache_dir(environ: Mapping[str, str]) -> Path:
    from pathlib import Path

    configured = environ.get("STACK_RESOLVER_CACHE_DIR", "").strip()
    return Path(configured) if configured else user_cache_root(environ) / "http"


def cache_root(environ: Mapping[str, str]) -> Path:
    """The folder every cache of the tool lives in."""
    return http_cache_dir(environ).parent


def cache_root_text(environ: Mapping[str, str], platform: str = sys.platform) -> str | None:
    """`cache_root` as an absolute path string, without pathlib; None where only platformdirs
    knows the folder (the caller then goes without)."""
    configured = environ.get("STACK_RESOLVER_CACHE_DIR", "").strip()
    if configured:
        return os.path.dirname(os.path.abspath(configured))
    text = _root_text(environ, platform)
    return os.path.abspath(text) if text is not None else None
