"""The ``simrouter`` command: parses arguments and dispatches to ``simrouter.commands``.

Errors a user can cause end here as one line on standard error and a
documented exit status (see ``simrouter.commands.common``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from .commands import COMMANDS
from .commands.common import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_TARGET_FAILED
from .errors import ConfigError

__all__ = ["main", "EXIT_OK", "EXIT_TARGET_FAILED", "EXIT_CONFIG", "EXIT_INTERRUPTED"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simrouter", description="Simulate an AI request router under load.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"simrouter: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("simrouter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
