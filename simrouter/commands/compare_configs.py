"""``simrouter compare-configs A B``: paired differences B - A under common random numbers.

A and B are built-in scenario names or TOML files (the same one twice, with
``--set-a``/``--set-b``, compares two settings of one scenario). Prints one row
per metric: the means of A and B, B - A with its paired-t 95 % interval, and
the relative change; a bold row's interval excludes 0. For the recovery time
a run that never recovered is counted at the run's end (censored), the share
of such runs is shown for each side, and the difference is marked as a lower
(>=) or upper (<=) bound, or refused when both sides have such runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, seed_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare-configs", help="compare two configurations: paired differences with confidence intervals (common random numbers)")
    parser.add_argument("a", metavar="A", help="a built-in scenario name or a TOML file")
    parser.add_argument("b", metavar="B", help="a built-in scenario name or a TOML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a field in both A and B (repeatable)")
    parser.add_argument("--set-a", action="append", default=[], metavar="KEY=VALUE", help="override a field in A only (repeatable)")
    parser.add_argument("--set-b", action="append", default=[], metavar="KEY=VALUE", help="override a field in B only (repeatable)")
    parser.add_argument("--seed", type=seed_arg, default=1, help="random seed (default 1), shared by A and B")
    parser.add_argument("--replications", type=int, default=20, metavar="R", help="paired replications (default 20)")
    parser.add_argument("--metric", action="append", metavar="KEY", help="a dotted summary figure to compare, e.g. latency_ms.p95 (repeatable; default: latency, throughput, errors, breaker, utilisation)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the comparison as JSON ('-' for standard output)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..comparison import compare_configs
    from ..config import load_scenario
    from ..replications import check_count
    from .run import write_json

    check_count(args.replications, "--replications", 2)
    a = load_scenario(args.a, [*args.overrides, *args.set_a])
    b = load_scenario(args.b, [*args.overrides, *args.set_b])
    comparison = compare_configs(a, b, seed=args.seed, replications=args.replications, metrics=args.metric)
    if args.json is not None:
        write_json(comparison.to_dict(), args.json)
    if args.json is None or str(args.json) != "-":
        print_comparison(comparison)
    return EXIT_OK


def print_comparison(comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    a, b = comparison.a, comparison.b
    table = Table(title=f"B - A: {b.scenario.name} vs {a.scenario.name}, {a.replications} paired replications, seed {a.seed}")
    for name in ("metric", "A", "B", "B - A", "95 % CI", "change"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    notes = []
    for row in comparison.rows():
        bound = {"lower": ">= ", "upper": "<= "}.get(row["bound"], "")
        cells = [row["metric"], _side(row["a"], row["never_a"]), _side(row["b"], row["never_b"]), "—" if row["difference"] is None else bound + _number(row["difference"])]
        cells.append("—" if row["low"] is None and row["high"] is None else f"[{_number(row['low'])}, {_number(row['high'])}]")
        cells.append("—" if row["relative"] is None else f"{bound}{row['relative']:+.1%}")
        table.add_row(*cells, style="bold" if row["significant"] else "")
        if row["never_a"] or row["never_b"]:
            notes.append(_never_note(row))
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note)
    console.print("Bold: the interval excludes 0 (a real difference at 95 %). Rows with n < replications left out runs lacking the figure.", style="dim")


def _side(mean, never) -> str:
    """A side's mean; with runs that never recovered, a lower bound and their share."""
    if not never:
        return _number(mean)
    return f">= {_number(mean)} ({never:.0%} never)"


def _never_note(row: dict) -> str:
    shares = f"never recovered: A {row['never_a']:.0%}, B {row['never_b']:.0%} of runs (counted at the run's end)"
    if row["reason"]:
        return f"{row['metric']}: {shares}; no difference reported: {row['reason']}."
    direction = {"lower": "B - A is at least the value shown", "upper": "B - A is at most the value shown"}.get(row["bound"], "")
    return f"{row['metric']}: {shares}; {direction}."


def _number(value) -> str:
    if value is None:
        return "—"
    return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
