"""Options and exit statuses shared by the subcommands.

Exit status: 0 success; 1 a target failed (only with ``--check``); 2 bad
configuration or usage (one message naming the field); 130 interrupted.
"""

from __future__ import annotations

import argparse

EXIT_OK = 0
EXIT_TARGET_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def add_scenario_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """SCENARIO, --set and (optionally) --seed."""
    parser.add_argument("scenario", help="a built-in scenario name or a TOML file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field, e.g. --set backend.capacity=8 --set workload.rate=200 (repeatable)",
    )
    if seed:
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1); same seed and config, same result")
