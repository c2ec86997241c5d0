"""``simrouter capacity SCENARIO --vary PARAM --range LO:HI``: the highest load
(or fewest slots) that still meets every target (``simrouter.capacity_search``).

Prints one line per probe and the answer; ``--json PATH`` writes
``CapacityResult.to_dict()``; ``--plot DIR`` writes the plot of each target
against the parameter (``capacity-<scenario>-<parameter>[-<label>].png``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import EXIT_OK, add_scenario_options, run_label, write_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("capacity", help="find the highest load (or fewest slots) that meets every target, by replicated bisection")
    add_scenario_options(parser)
    parser.add_argument("--vary", required=True, metavar="PARAM", help="the parameter to search, e.g. workload.rate, workload.users, backend.capacity")
    parser.add_argument("--range", required=True, metavar="LO:HI", help="the interval to search, e.g. 10:200")
    parser.add_argument("--replications", type=int, default=5, metavar="R", help="replications per probe, same seeds at every probe (default 5)")
    parser.add_argument("--tolerance", type=float, metavar="W", help="stop when the bracket is at most W wide (default: 1 for whole numbers, 1 %% of the range otherwise)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the result as JSON ('-' for standard output)")
    parser.add_argument("--plot", metavar="DIR", type=Path, help="write the plot of each target against the parameter as a PNG into DIR")
    parser.add_argument("--label", help="name for the plot file and title (default: a short digest of the --set overrides)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..capacity_search import capacity
    from ..errors import ConfigError

    quiet = args.json is not None and str(args.json) == "-"

    def show(probe: dict) -> None:
        if not quiet:
            figures = ", ".join(f"{t['name']} {t['value']:.4g}" for t in probe["targets"] if t["passed"] is not None and t["value"] is not None)
            print(f"  {args.vary} = {probe['value']:<10g} {'pass' if probe['passed'] else 'FAIL'}  ({figures})", flush=True)

    result = capacity(args.scenario, args.vary, args.range, args.replications, seed=args.seed, tolerance=args.tolerance, overrides=args.overrides, on_probe=show)
    data = result.to_dict()
    label = run_label(args)
    if label:
        data["label"] = label
    if args.json is not None:
        write_json(data, args.json)
    if not quiet:
        answer = data[result.key]
        interval = f" (95 % interval {data['ci95'][0]:g} .. {data['ci95'][1]:g})" if data["ci95"] else ""
        binding = f"; binding target: {data['binding_target']}" if data["binding_target"] else ""
        print(f"{result.key.replace('_', ' ')} {args.vary} = {answer if answer is not None else 'none'}{interval}{binding}")
        if data["note"]:
            print(f"note: {data['note']}")
    if args.plot is not None:
        from ..report.capacity_plot import capacity_figure
        from ..report.run_plots import file_stem
        from ..report.style import save_png

        stem = file_stem("-".join(part for part in ("capacity", result.scenario.name, args.vary, label) if part))
        title = f"{result.scenario.name}{f' [{label}]' if label else ''}: {result.key} of {args.vary}"
        try:
            path = save_png(capacity_figure(data, title), args.plot / f"{stem}.png")
        except OSError as exc:
            raise ConfigError("--plot", f"cannot write the plot into {args.plot}: {exc.strerror or exc}") from None
        print(f"plot: {path}", file=sys.stderr if quiet else sys.stdout)
    return EXIT_OK
