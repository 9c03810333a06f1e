# PYTHON_ARGCOMPLETE_OK
"""`python -m resolver` and the `stack-resolver` script. An unchanged `resolve` is replayed from
the user cache (resolver/replay.py) before the command line and all it loads are imported."""

from __future__ import annotations

import sys


def main() -> None:
    from resolver import replay

    found = replay.lookup(sys.argv[1:])
    if isinstance(found, replay.Hit):
        try:
            code = found.play(sys.stdout, sys.stderr)
        except BrokenPipeError:  # `| head`: as cli.main ends it
            from resolver.cli import output_closed

            code = output_closed(sys.stdout)
        sys.exit(code)
    from resolver.cli import run

    run(found)


if __name__ == "__main__":
    main()
