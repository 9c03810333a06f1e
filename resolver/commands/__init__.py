"""Command handlers: `handler(args, out, err) -> exit code`, one per subcommand of `cli.py`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO

from resolver.commands.environments import cmd_check, cmd_export, cmd_info, cmd_matrix, cmd_sync, cmd_verify
from resolver.commands.solving import cmd_audit, cmd_detect, cmd_doctor, cmd_lock, cmd_resolve

Handler = Callable[[argparse.Namespace, TextIO, TextIO], int]

COMMANDS: dict[str, Handler] = {
    "detect": cmd_detect,
    "doctor": cmd_doctor,
    "resolve": cmd_resolve,
    "lock": cmd_lock,
    "audit": cmd_audit,
    "matrix": cmd_matrix,
    "verify": cmd_verify,
    "check": cmd_check,
    "export": cmd_export,
    "sync": cmd_sync,
    "info": cmd_info,
}
