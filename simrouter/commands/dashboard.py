"""``simrouter dashboard --target URL``: watch a live target's ``/metrics`` in the terminal.

Redraws in place every ``--interval`` seconds until Ctrl-C (exit status 0), or
after ``--count`` polls / ``--duration`` seconds. A target that stops answering
is shown as such; plain text when standard output is not a terminal.
"""

from __future__ import annotations

import argparse

from .common import EXIT_OK


def register(subparsers) -> None:
    parser = subparsers.add_parser("dashboard", help="watch a live target's /metrics as a terminal dashboard")
    parser.add_argument("--target", required=True, metavar="URL", help="the target, e.g. http://127.0.0.1:8080 (GET URL/metrics)")
    parser.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between polls (default 5)")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N polls")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for each answer (default: the interval, 1 to 10 s)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..report.live_dashboard import watch

    try:
        watch(args.target, interval=args.interval, count=args.count, duration=args.duration, timeout=args.timeout)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch normally ends
    return EXIT_OK
