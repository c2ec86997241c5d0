"""``simrouter init [FILE]``: write a commented template of every scenario
section (``config.writer.template``) to FILE (default ``scenario.toml``; '-':
standard output). An existing file is kept unless ``--force``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, write_atomically


def register(subparsers) -> None:
    parser = subparsers.add_parser("init", help="write a commented scenario template (every section, its defaults) to start from")
    parser.add_argument("file", nargs="?", type=Path, default=Path("scenario.toml"), help="where to write it (default scenario.toml; '-' for standard output)")
    parser.add_argument("--name", default=None, help="the scenario's name (default: the file's stem)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..config.writer import template
    from ..errors import ConfigError

    to_stdout = str(args.file) == "-"
    text = template(args.name or ("my-router" if to_stdout else args.file.stem))
    if to_stdout:
        print(text, end="")
        return EXIT_OK
    if args.file.exists() and not args.force:
        raise ConfigError("FILE", f"{args.file} exists; give another name or --force to overwrite it")
    write_atomically(args.file, lambda temporary: temporary.write_text(text), "FILE")
    print(f"wrote {args.file}: edit it, then `simrouter run {args.file}`")
    return EXIT_OK
