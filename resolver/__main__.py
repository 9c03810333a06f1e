# PYTHON_ARGCOMPLETE_OK
from __future__ import annotations

from resolver.cli import run

run()
