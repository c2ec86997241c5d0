"""The ``simrouter`` command: parses arguments and dispatches to ``simrouter.commands``.

Errors a user can cause end here as one line on standard error and a
documented exit status (see ``simrouter.commands.common``), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

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


def _show_warning(message, category, filename, lineno, file=None, line=None, *, _default=warnings.showwarning) -> None:
    """A ``ScenarioWarning`` (``UnitWarning`` ...) as one ``simrouter: warning:`` line;
    other warnings as Python shows them."""
    from .errors import ScenarioWarning

    if issubclass(category, ScenarioWarning):
        print(f"simrouter: warning: {message}", file=sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    with interrupts.handling_signals(), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args = build_parser().parse_args(argv)
            return args.handler(args)
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CONFIG
        except ConfigError as exc:
            print(f"simrouter: configuration error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_CONFIG
        except BrokenPipeError:  # the reader went away (`simrouter run concurrent | head`): stop quietly, as Unix tools do
            _silence_stdout()
            return EXIT_OK
        except SystemExit as exc:
            # rich's Console meets a closed pipe by pointing stdout at /dev/null and
            # raising SystemExit(1) (Console.on_broken_pipe): the same quiet end, status 0.
            if exc.code == 1 and _stdout_is_devnull():
                return EXIT_OK
            raise
        except OSError as exc:  # a path given on the command line that cannot be read or written
            where = f" {exc.filename}" if exc.filename else ""
            print(f"simrouter: error:{where}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CONFIG
        except KeyboardInterrupt:
            print("simrouter: interrupted", file=sys.stderr)
            return interrupts.exit_status()


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit raises no
    second BrokenPipeError (the Python documentation's recipe, signal.SIGPIPE note)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _stdout_is_devnull() -> bool:
    try:
        out, null = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError):
        return False
    return (out.st_dev, out.st_ino) == (null.st_dev, null.st_ino)


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
