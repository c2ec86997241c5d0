"""``simrouter serve``: the reference AI router as an HTTP service on loopback."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .common import EXIT_OK, is_loopback, port_arg, seed_arg

TOKEN_ENV = "SIMROUTER_ADMIN_TOKEN"
DEFAULT_HEADER_TIMEOUT_S = 10.0  # simrouter.live.header_timeout.DEFAULT_HEADER_TIMEOUT_S (not imported: keeps `--help` light)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the reference router service (limiter, breaker, stand-in backend; with [[deployments]]: a gateway over one per deployment) over HTTP")
    parser.add_argument("--config", default=None, metavar="SCENARIO", help="a scenario TOML file or built-in name (default: the embedded defaults)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. --set backend.capacity=8 (repeatable)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port_arg, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--seed", type=seed_arg, default=1, help="seed of the backend's latency and failure draws (default 1)")
    parser.add_argument("--admin-token", default=None, help=f"token for /admin (default: ${TOKEN_ENV}, else a random one, printed)")
    parser.add_argument(
        "--header-timeout", type=_seconds, default=DEFAULT_HEADER_TIMEOUT_S, metavar="S",
        help=f"close a connection that has not sent a request's complete header block S seconds after it opened or after the request's first byte (slowloris; default {DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--protocol", choices=("simrouter", "openai"), default="simrouter", help="simrouter: POST /submit (default); openai: /v1/chat/completions, /v1/completions, /v1/models (docs/protocols.md)"
    )
    parser.add_argument(
        "--upstream", default=None, metavar="URL",
        help="a real HTTP backend instead of the stand-in: each call is POST URL {} (2xx succeeded; e.g. through simrouter proxy, docs/proxy.md)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..config import Scenario, load_scenario

    scenario = load_scenario(args.config, args.overrides) if args.config else Scenario().replace(args.overrides)
    import asyncio  # here, not at module level: every simrouter command imports this module

    token = args.admin_token or os.environ.get(TOKEN_ENV)
    asyncio.run(_serve(scenario, args, token))
    return EXIT_OK


async def _serve(scenario, args, token) -> None:
    import asyncio

    from ..errors import ConfigError
    from ..live.loadgen import uses_client_policies
    from ..live.service import start_service
    from ..live.service_thread import router_service

    if args.protocol == "openai" and scenario.deployments:
        raise ConfigError("--protocol", "openai behind [[deployments]] is not supported yet; use --protocol simrouter (POST /submit)")
    if scenario.backend.is_llm and (args.protocol != "openai" or args.upstream):
        # The batching model streams tokens: only the OpenAI front end speaks them.
        raise ConfigError("--protocol", 'backend.model = "llm" is served with --protocol openai (and no --upstream); got ' + (f"--upstream {args.upstream}" if args.upstream else f"--protocol {args.protocol}"))
    if args.protocol == "openai":  # the same policies behind OpenAI-compatible endpoints
        from ..live.openai_service import OpenAIService

        service = OpenAIService(scenario, seed=args.seed, admin_token=token, header_timeout=args.header_timeout)
    else:
        factory = None
        if args.upstream:  # the breaker and limiter in front of a real backend (e.g. simrouter proxy)
            from ..proxy.upstream import upstream_factory

            factory = upstream_factory(args.upstream)
        # With [[deployments]]: the gateway over one stand-in per deployment (live.gateway_service).
        service = router_service(scenario, seed=args.seed, admin_token=token, header_timeout=args.header_timeout, backend_factory=factory)
    try:
        runner, url = await start_service(service, args.host, args.port)
    except OSError as exc:
        raise ConfigError("--port", f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    shown = "(from --admin-token / $" + TOKEN_ENV + ")" if token else service.admin_token
    print(f"simrouter serve: listening on {url} (scenario {scenario.name}; admin token {shown})", flush=True)
    if not is_loopback(args.host):
        print(f"simrouter serve: warning: {args.host} is not a loopback address; other machines can reach this service", file=sys.stderr, flush=True)
    if uses_client_policies(scenario):
        print("simrouter serve: note: router.retry / router.hedge are not applied by the service", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print("simrouter serve: stopped", file=sys.stderr, flush=True)
