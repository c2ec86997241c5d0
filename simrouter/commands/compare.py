"""``simrouter compare SCENARIO [--target URL]``: simulated (with intervals) vs live, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import interrupts
from .common import EXIT_OK, add_scenario_options
from .live import add_live_options, check_target, live_options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="simulate a scenario (replications) and run it live (against --target, or a fresh simrouter serve), side by side"
    )
    add_scenario_options(parser)
    parser.add_argument("--target", default=None, metavar="URL", help="a live router's base URL (default: start simrouter serve on a free loopback port)")
    parser.add_argument("--replications", type=int, default=5, help="simulated replications for the intervals (default 5)")
    parser.add_argument(
        "--adjust", choices=("bonferroni", "none"), default="bonferroni",
        help="bonferroni (default): each row's prediction interval widened so the whole table has a 5%% chance of any 'no' "
        "when the model is right; none: 95%% per row (about one 'no' in twenty rows by chance)",
    )
    add_live_options(parser)
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the comparison (with the live run) as JSON ('-' for standard output)")
    parser.add_argument("--csv", metavar="PATH", type=Path, help="write the table as CSV")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..config import load_scenario
    from ..live.compare import compare, render_table, render_timeline
    from .common import write_json

    scenario = load_scenario(args.scenario, args.overrides)
    target = check_target(args.target) if args.target else None
    comparison = compare(scenario, seed=args.seed, replications=args.replications, target=target, options=live_options(args), adjust=args.adjust)
    if args.json is not None:
        write_json(comparison.to_dict(), args.json)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        comparison.to_frame().to_csv(args.csv, index=False)
    if args.json is None or str(args.json) != "-":
        console = Console()
        Console(width=max(console.width, 104)).print(render_table(comparison))
        timeline = render_timeline(comparison)
        if timeline is not None:
            Console(width=max(console.width, 104)).print(timeline)
        for note in comparison.live.notes:
            print(f"note: {note}")
    return interrupts.exit_status() if comparison.live.cut_short else EXIT_OK
