"""``simrouter report INPUT... -o report.html``: one self-contained HTML report.

Inputs: run JSONs (``simrouter run --json``), sweep tables (CSV/Parquet) and
compare tables (CSV), in any mix; see ``simrouter.report.html_report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write a self-contained HTML report of run JSONs, sweep or compare tables")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="run JSON, sweep CSV/Parquet or compare CSV (any number)")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="PATH", help="the HTML file to write (default report.html)")
    parser.add_argument("--title", default="simrouter report", help="the report's title")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..report.html_report import write_report

    out = write_report(args.inputs, args.output, args.title)
    print(f"report: {out} ({out.stat().st_size / 1024:,.0f} KiB)")
    return EXIT_OK
