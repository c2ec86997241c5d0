"""``simrouter run SCENARIO``: simulate once, print the dashboard, optionally write JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import EXIT_OK, EXIT_TARGET_FAILED, add_scenario_options, run_label, write_json
from .replication_options import add_replication_options, replicated, replication_note, simulate_replicated


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="simulate one scenario and print its dashboard")
    add_scenario_options(parser)
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the result as JSON ('-' for standard output)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target fails")
    add_replication_options(parser)
    parser.add_argument("--plot", metavar="DIR", type=Path, help="write the run's plots (latency, timeline) as PNGs into DIR")
    parser.add_argument("--label", help="name this variant in plot file names, plot and report titles (default: a short digest of the --set overrides)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..config import load_scenario
    from ..report import print_dashboard
    from ..sim import simulate

    scenario = load_scenario(args.scenario, args.overrides)
    result = simulate_replicated(scenario, args) if replicated(args) else simulate(scenario, seed=args.seed, progress=True)
    to_stdout = args.json is not None and str(args.json) == "-"
    label = run_label(args)
    if args.json is not None:
        data = result.to_dict()
        if label:
            data["label"] = label  # the HTML report's title for this run
        write_json(data, args.json)
    if not to_stdout:
        print_dashboard(result)
        if replicated(args):
            print(replication_note(result))
    if args.plot is not None:
        from ..report import write_run_plots

        try:
            written = write_run_plots(simulate(scenario, seed=args.seed) if replicated(args) else result, args.plot, label=label)
        except OSError as exc:
            raise ConfigError("--plot", f"cannot write plots into {args.plot}: {exc.strerror or exc}") from None
        if not to_stdout:
            print("plots: " + ", ".join(str(path) for path in written))
    return EXIT_TARGET_FAILED if args.check and not result.passed else EXIT_OK


__all__ = ["register", "handle", "write_json"]  # write_json lives in .common; kept importable from here
