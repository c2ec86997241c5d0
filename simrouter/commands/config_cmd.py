"""``simrouter config SCENARIO``: the full configuration, defaults filled in, as
JSON, or with ``--toml`` as a scenario file that ``simrouter run`` reads back
(and that ``config --toml`` reproduces byte for byte: ``config.writer``)."""

from __future__ import annotations

import json

from .common import EXIT_OK, add_scenario_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="print a scenario's full configuration (defaults filled in) as JSON, or --toml as a scenario file")
    add_scenario_options(parser, seed=False)
    parser.add_argument("--toml", action="store_true", help="print TOML that `simrouter run` reads (a starting file for a variant)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from ..config import load_scenario
    from ..result import strict_json

    scenario = load_scenario(args.scenario, args.overrides)
    if args.toml:
        from ..config.writer import scenario_toml

        print(scenario_toml(scenario), end="")
    else:
        print(json.dumps(strict_json(scenario.to_dict()), indent=2))
    return EXIT_OK
