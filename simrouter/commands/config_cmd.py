"""``simrouter config SCENARIO``: the full configuration, defaults filled in, as JSON."""

from __future__ import annotations

import json

from .common import EXIT_OK, add_scenario_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="print a scenario's full configuration (defaults filled in) as JSON")
    add_scenario_options(parser, seed=False)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from ..config import load_scenario
    from ..result import strict_json

    print(json.dumps(strict_json(load_scenario(args.scenario, args.overrides).to_dict()), indent=2))
    return EXIT_OK
