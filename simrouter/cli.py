"""The ``simrouter`` command.

Exit status: 0 success; 1 a target failed (only with ``--check``); 2 bad
configuration or usage (one message naming the field); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import builtin_names, load_scenario
from .errors import ConfigError

EXIT_OK = 0
EXIT_TARGET_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simrouter", description="Simulate an AI request router under load.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="simulate one scenario and print its dashboard")
    run.add_argument("scenario", help="a built-in scenario name or a TOML file")
    _add_run_options(run)
    run.add_argument("--json", metavar="PATH", type=Path, help="write the result as JSON ('-' for standard output)")
    run.add_argument("--check", action="store_true", help="exit with status 1 when a target fails")

    demo = sub.add_parser("demo", help="simulate every built-in scenario and print the dashboards")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--check", action="store_true", help="exit with status 1 when a target fails")

    sub.add_parser("scenarios", help="list the built-in scenarios")

    show = sub.add_parser("config", help="print a scenario's full configuration (defaults filled in) as JSON")
    show.add_argument("scenario")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1); same seed and config, same result")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field, e.g. --set backend.capacity=8 --set workload.rate=200 (repeatable)",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"simrouter: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("simrouter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args) -> int:
    from .report import print_dashboard
    from .sim import simulate

    scenario = load_scenario(args.scenario, args.overrides)
    result = simulate(scenario, seed=args.seed)
    if args.json is not None:
        text = json.dumps(result.to_dict(), indent=2)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text + "\n")
    if str(args.json) != "-":
        print_dashboard(result)
    return EXIT_TARGET_FAILED if args.check and not result.passed else EXIT_OK


def _demo(args) -> int:
    from .report import print_dashboard
    from .sim import simulate

    failed = []
    for name in builtin_names():
        result = simulate(name, seed=args.seed)
        print_dashboard(result)
        if not result.passed:
            failed.append(name)
    if failed:
        print(f"targets failed in: {', '.join(failed)}")
    return EXIT_TARGET_FAILED if args.check and failed else EXIT_OK


def _scenarios(args) -> int:
    for name in builtin_names():
        print(f"{name:20s} {load_scenario(name).description}")
    return EXIT_OK


def _config(args) -> int:
    scenario = load_scenario(args.scenario, args.overrides)
    print(json.dumps(scenario.to_dict(), indent=2))
    return EXIT_OK


_COMMANDS = {"run": _run, "demo": _demo, "scenarios": _scenarios, "config": _config}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
