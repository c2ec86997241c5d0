"""``simrouter live SCENARIO --target URL``: run a scenario's workload against a live target."""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from pathlib import Path

from .. import interrupts
from .common import EXIT_OK, EXIT_TARGET_FAILED, add_scenario_options
from .serve import TOKEN_ENV


def register(subparsers) -> None:
    parser = subparsers.add_parser("live", help="run a scenario's workload in wall time against a live HTTP target")
    add_scenario_options(parser)
    parser.add_argument(
        "--target", required=True, metavar="URL",
        help="the router's base URL, e.g. http://127.0.0.1:8000 or http://host/api (requests go to URL + the [request] path, "
        "default POST URL/submit; userinfo is sent as Basic auth, never shown)",
    )
    add_live_options(parser)
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the result as JSON ('-' for standard output)")
    parser.add_argument("--streams", metavar="PATH", type=Path, help="also write each streamed answer's send, chunk arrivals and tokens (for simrouter calibrate --fit step-time)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target fails")
    parser.add_argument(
        "--dashboard", action="store_true",
        help="redraw the dashboard during the run from the generator's own measurements (any target: its /metrics is not needed)",
    )
    parser.add_argument("--interval", type=float, default=5.0, metavar="S", help="--dashboard: seconds between redraws, and the rolling window (default 5)")
    parser.set_defaults(handler=handle)


def add_live_options(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``simrouter compare``."""
    live = parser.add_argument_group("live run")
    live.add_argument("--connections", type=int, default=None, help="open model: connections (default 256); closed: one per user")
    live.add_argument("--max-requests", type=int, default=0, help="stop after this many requests (default: the scenario's bounds)")
    live.add_argument("--client-timeout", type=float, default=None, metavar="S", help="seconds to wait for an answer (default router.timeout + 5)")
    live.add_argument("--late-threshold", type=float, default=10.0, metavar="MS", help="an arrival sent this much after its intended time is late (default 10)")
    live.add_argument(
        "--max-backlog", type=int, default=None, metavar="N",
        help="open model: an arrival finding connections + N requests pending is dropped (kind dropped, a failure; default 10000)",
    )
    live.add_argument("--admin-token", default=None, help=f"token for the target's /admin/faults (${TOKEN_ENV} only with --target-is-serve)")
    live.add_argument(
        "--target-is-serve", action="store_true",
        help=f"the target is simrouter's own serve: send it ${TOKEN_ENV} for [[faults]] when no --admin-token is given",
    )
    live.add_argument("--no-faults", action="store_true", help="do not send the scenario's [[faults]] to the target")
    live.add_argument(
        "--fault-proxy", default=None, metavar="URL",
        help=f"simrouter proxy in front of one of the target's backends: send it the [[faults]] (with --admin-token or ${TOKEN_ENV}) and observe the target's breaker from its record (docs/proxy.md)",
    )
    live.add_argument(
        "--map", dest="rules", action="append", default=[], metavar="STATUS[:TEST]=KIND",
        help="classify answers, e.g. --map 503=queue_full, --map '503:X-Reason=overload=queue_full' (a header) or "
        "--map '429:error.code=insufficient_quota=failures' (a field of the JSON error body); before the defaults, repeatable",
    )
    live.add_argument("--no-default-map", action="store_true", help="use only the --map rules")
    live.add_argument(
        "--client", choices=("auto", "fast", "aiohttp"), default="auto",
        help="HTTP client for the requests: fast (lean keep-alive HTTP/1.1, http:// only), aiohttp; auto: fast for http://",
    )
    live.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio",
        help="the generator's event loop (default asyncio; uvloop: optional dependency, pip install 'simrouter[fast]'; see docs/live-precision.md)",
    )
    live.add_argument(
        "--processes", type=int, default=1, metavar="N",
        help="open model: spread the arrivals over N generator processes (each sends every N-th one; results merged; default 1)",
    )


def live_options(args: argparse.Namespace):
    """``LiveOptions`` from parsed arguments (validated: ConfigError names the option)."""
    from ..errors import ConfigError
    from ..live.loadgen import LiveOptions
    from ..protocols.answers import AnswerClassifier

    for name in ("connections", "max_requests"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "connections" else 0):
            raise ConfigError(f"--{name.replace('_', '-')}", f"expected a whole number >= {1 if name == 'connections' else 0}, got {value}")
    if args.client_timeout is not None and not 0 < args.client_timeout < float("inf"):
        raise ConfigError("--client-timeout", f"expected a finite number of seconds > 0 (every request must end), got {args.client_timeout}")
    if not args.late_threshold >= 0:
        raise ConfigError("--late-threshold", f"expected milliseconds >= 0, got {args.late_threshold}")
    if args.max_backlog is not None and args.max_backlog < 0:
        raise ConfigError("--max-backlog", f"expected a whole number >= 0, got {args.max_backlog}")
    AnswerClassifier(args.rules, defaults=not args.no_default_map)  # a --map rule of an unknown form: ConfigError now
    # The environment's token is a secret for simrouter's own serve: never sent to another host unasked.
    fault_proxy = check_target(args.fault_proxy, "--fault-proxy") if getattr(args, "fault_proxy", None) else None
    # The environment's token may go to simrouter's own serve or proxy; never to another host unasked.
    token = args.admin_token or (os.environ.get(TOKEN_ENV) if args.target_is_serve or fault_proxy else None)
    extra = {} if args.max_backlog is None else {"max_backlog": args.max_backlog}
    if getattr(args, "processes", 1) < 1:
        raise ConfigError("--processes", f"expected a whole number >= 1, got {args.processes}")
    dashboard = getattr(args, "dashboard", False)
    if dashboard:
        if not 0 < args.interval < float("inf"):
            raise ConfigError("--interval", f"expected a finite number of seconds > 0, got {args.interval:g}")
        if getattr(args, "processes", 1) != 1:
            raise ConfigError("--dashboard", "draws one process's measurements: use it with --processes 1")
        extra["dashboard_interval"] = args.interval
    return LiveOptions(
        connections=args.connections,
        max_requests=args.max_requests,
        client_timeout=args.client_timeout,
        late_threshold=args.late_threshold / 1000.0,
        admin_token=token,
        target_is_serve=args.target_is_serve,
        inject_faults=not args.no_faults,
        fault_proxy=fault_proxy,
        seed=args.seed,
        rules=tuple(args.rules),
        default_rules=not args.no_default_map,
        client=args.client,
        progress=not dashboard,
        loop=getattr(args, "loop", "asyncio"),
        processes=getattr(args, "processes", 1),
        **extra,
    )


def check_target(url: str, option: str = "--target") -> str:
    """``url`` if it is an http(s)://[USER:PASS@]HOST[:PORT][/PATH] base URL, else ConfigError('--target')
    (the message never repeats userinfo)."""
    from urllib.parse import urlsplit

    from ..errors import ConfigError

    from ..live.http1 import redact

    parts = urlsplit(url)
    shown = redact(url) if "@" in parts.netloc else url
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(option, f"expected a port from 1 to 65535 in {shown!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(option, f"expected a base URL like http://127.0.0.1:8000 or http://host/api, got {shown!r}")
    if parts.query or parts.fragment:
        raise ConfigError(option, f"expected a base URL without a query or fragment (requests go to URL/submit), got {shown!r}")
    return url.rstrip("/")


@contextmanager
def redacting(scenario):
    """Resolve the ``[request]`` section's ``${VAR}`` references (an unset one is a
    ConfigError naming it, before anything is sent) and keep their values out of any
    error raised inside: its message is re-raised with each value put back as ``${VAR}``."""
    from ..errors import ConfigError
    from ..protocols.encode import RequestEncoder

    secrets = RequestEncoder(scenario.request).secrets
    try:
        yield secrets
    except ConfigError as exc:
        if secrets and secrets.redact(str(exc)) != str(exc):
            raise ConfigError(secrets.redact(exc.field), secrets.redact(exc.message)) from None
        raise
    except Exception as exc:
        if secrets and secrets.redact(str(exc)) != str(exc):
            raise RuntimeError(secrets.redact(f"{type(exc).__name__}: {exc}")) from None
        raise


def handle(args: argparse.Namespace) -> int:
    from ..config import load_scenario
    from ..live.loadgen import run_live
    from ..live.report import print_live
    from .common import write_json

    scenario = load_scenario(args.scenario, args.overrides)
    options = live_options(args)
    if args.streams is not None:  # before anything is sent: the record needs streamed answers
        from ..live.stream_record import check_streaming

        check_streaming(scenario)
    with redacting(scenario):
        result = run_live(scenario, check_target(args.target), options)
    to_stdout = args.json is not None and str(args.json) == "-"
    if args.json is not None:
        write_json(result.to_dict(), args.json)
    if args.streams is not None:  # simrouter.live.stream_record
        from ..live.stream_record import from_live

        from_live(result).write(args.streams)
    if not to_stdout:
        print_live(result)
        if options.fault_proxy:
            from ..live.observed_breaker import describe

            print(describe(result.fault_injection.get("observed_breaker")))
    if result.cut_short:
        return interrupts.exit_status()
    return EXIT_TARGET_FAILED if args.check and not result.passed else EXIT_OK
