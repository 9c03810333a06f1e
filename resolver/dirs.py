"""Where the tool keeps its cache, by each OS's convention (platformdirs).

`STACK_RESOLVER_CACHE_DIR` names the HTTP cache itself (as it always has); the other caches (conda
repodata, the provisioned Poetry) sit beside it. Without it: `$XDG_CACHE_HOME/stack-resolver`
(default `~/.cache`) on Linux, `~/Library/Caches/stack-resolver` on macOS,
`%LOCALAPPDATA%\\stack-resolver\\Cache` on Windows.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

APP = "stack-resolver"


def user_cache_root(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """The per-user cache folder for this tool, from `environ` (injectable for tests)."""
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        # platformdirs reads XDG_CACHE_HOME from os.environ; read it from `environ` the same way.
        xdg = environ.get("XDG_CACHE_HOME", "").strip()
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(environ) / ".cache"
        return base / APP
    if platform == "darwin":
        return _home(environ) / "Library" / "Caches" / APP
    if platform == "win32":
        local = environ.get("LOCALAPPDATA", "").strip()
        if local:
            return Path(local) / APP / "Cache"
    import platformdirs  # only where no convention above applies

    return platformdirs.user_cache_path(APP, appauthor=False)


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME", "").strip()
    return Path(home) if home else Path.home()


def http_cache_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get("STACK_RESOLVER_CACHE_DIR", "").strip()
    return Path(configured) if configured else user_cache_root(environ) / "http"


def cache_root(environ: Mapping[str, str]) -> Path:
    """The folder every cache of the tool lives in."""
    return http_cache_dir(environ).parent
