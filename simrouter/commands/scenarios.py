"""``simrouter scenarios``: list the built-in scenarios."""

from __future__ import annotations

from .common import EXIT_OK


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenarios", help="list the built-in scenarios")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from ..config import builtin_names, load_scenario

    for name in builtin_names():
        print(f"{name:20s} {load_scenario(name).description}")
    return EXIT_OK
