"""``simrouter proxy --upstream URL``: a fault-injecting reverse proxy in front of one backend (docs/proxy.md)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import EXIT_OK, is_loopback, seed_arg
from .serve import TOKEN_ENV


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT like 127.0.0.1:8100 (port 0: a free one), got {text!r}")
    return host.strip("[]"), int(port)


def register(subparsers) -> None:
    parser = subparsers.add_parser("proxy", help="a fault-injecting reverse proxy in front of one backend (break your own router)")
    parser.add_argument("--upstream", required=True, metavar="URL", help="the backend's base URL, e.g. http://127.0.0.1:9000")
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 8100), metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8100)")
    parser.add_argument("--admin-token", default=None, help=f"token for /admin/faults (default: ${TOKEN_ENV}, else a random one, printed)")
    parser.add_argument("--seed", type=seed_arg, default=1, help="seed of the fault draws (default 1)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import asyncio

    from ..proxy.server import check_upstream

    check_upstream(args.upstream)  # a ConfigError before anything starts
    token = args.admin_token or os.environ.get(TOKEN_ENV)
    asyncio.run(_run(args, token))
    return EXIT_OK




async def _run(args, token) -> None:
    import asyncio
    import signal

    from ..errors import ConfigError
    from ..proxy.server import FaultProxy, start_proxy

    proxy = FaultProxy(args.upstream, admin_token=token, seed=args.seed)
    host, port = args.listen
    try:
        runner, url = await start_proxy(proxy, host, port)
    except OSError as exc:
        raise ConfigError("--listen", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    shown = "(from --admin-token / $" + TOKEN_ENV + ")" if token else proxy.admin_token
    print(f"simrouter proxy: listening on {url}, forwarding to {proxy.upstream} (admin token {shown})", flush=True)
    if not is_loopback(host):
        print(f"simrouter proxy: warning: {host} is not a loopback address; other machines can reach this proxy and its admin API", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print("simrouter proxy: stopped", file=sys.stderr, flush=True)
