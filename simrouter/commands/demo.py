"""``simrouter demo``: simulate every built-in scenario and print the dashboards."""

from __future__ import annotations

from .common import EXIT_OK, EXIT_TARGET_FAILED, seed_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="simulate every built-in scenario and print the dashboards")
    parser.add_argument("--seed", type=seed_arg, default=1, help="random seed (default 1)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target fails")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from ..config import builtin_names
    from ..report import print_dashboard
    from ..sim import simulate

    failed = []
    for name in builtin_names():
        result = simulate(name, seed=args.seed)
        print_dashboard(result)
        if not result.passed:
            failed.append(name)
    if failed:
        print(f"targets missed in: {', '.join(failed)}")
    return EXIT_TARGET_FAILED if args.check and failed else EXIT_OK
