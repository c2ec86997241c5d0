"""The ``simrouter`` command: parses arguments and dispatches to ``simrouter.commands``.

Errors a user can cause end here as one line on standard error and a
documented exit status (see ``simrouter.commands.common``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import interrupts
from .commands import COMMANDS
from .commands.common import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNS_FAILED, EXIT_TARGET_FAILED, EXIT_TERMINATED
from .errors import ConfigError

__all__ = ["main", "EXIT_OK", "EXIT_TARGET_FAILED", "EXIT_CONFIG", "EXIT_RUNS_FAILED", "EXIT_INTERRUPTED", "EXIT_TERMINATED"]


class UsageError(Exception):
    """A command line argparse cannot parse (its message names the argument)."""

    def __init__(self, prog: str, message: str):
        super().__init__(f"{prog}: usage error: {message} (see {prog} --help)")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors raised as ``UsageError`` (one line, exit status 2)
    instead of printed with the whole usage text."""

    def error(self, message: str):
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simrouter", description="Simulate an AI request router under load.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    with interrupts.handling_signals():
        try:
            args = build_parser().parse_args(argv)
            return args.handler(args)
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CONFIG
        except ConfigError as exc:
            print(f"simrouter: configuration error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_CONFIG
        except OSError as exc:  # a path given on the command line that cannot be read or written
            where = f" {exc.filename}" if exc.filename else ""
            print(f"simrouter: error:{where}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CONFIG
        except KeyboardInterrupt:
            print("simrouter: interrupted", file=sys.stderr)
            return interrupts.exit_status()


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
