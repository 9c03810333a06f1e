"""Command handlers: `handler(args, out, err) -> exit code`, one per subcommand (its arguments:
`resolver/arguments.py`). Each is imported when its command runs, so a command loads only what it
uses."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import TextIO, cast

Handler = Callable[[argparse.Namespace, TextIO, TextIO], int]

# subcommand -> (module of resolver.commands, handler)
COMMANDS: dict[str, tuple[str, str]] = {
    "detect": ("solving", "cmd_detect"),
    "doctor": ("solving", "cmd_doctor"),
    "resolve": ("solving", "cmd_resolve"),
    "lock": ("solving", "cmd_lock"),
    "audit": ("solving", "cmd_audit"),
    "matrix": ("environments", "cmd_matrix"),
    "verify": ("environments", "cmd_verify"),
    "check": ("environments", "cmd_check"),
    "export": ("environments", "cmd_export"),
    "sync": ("environments", "cmd_sync"),
    "info": ("environments", "cmd_info"),
}


def handler(command: str) -> Handler:
    module, name = COMMANDS[command]
    return cast(Handler, getattr(importlib.import_module(f"resolver.commands.{module}"), name))
