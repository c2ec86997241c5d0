"""TTFT through ``simrouter proxy`` against direct, on the same nginx SSE stream in the same run.

    .venv/bin/python benchmarks/bench_proxy.py [--n 200]

nginx (Debian's echo module, ``tests/nginx_fixture.py``) sends a chat-completion SSE
stream whose first chunk comes 20 ms after the request and each next one 5 ms later.
One keep-alive client measures, request by request, alternating direct and proxied,
the time to the first body byte (TTFT) and to the last (E2E). Prints median and p99
of each and the proxy's added median TTFT. Goal (issue 16): within 2 ms of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from nginx_fixture import DONE, chat_chunk, nginx_server, sse_directives  # noqa: E402

from simrouter.proxy.server import ProxyThread  # noqa: E402


async def measure(urls: list[str], n: int) -> dict[str, list[tuple[float, float]]]:
    out = {url: [] for url in urls}
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            for url in urls:
                start = time.perf_counter()
                async with session.get(url) as response:
                    first = None
                    async for _piece in response.content.iter_any():
                        if first is None:
                            first = time.perf_counter() - start
                out[url].append((first, time.perf_counter() - start))
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    n = parser.parse_args().n
    events = [(0.020, chat_chunk("a"))] + [(0.005, chat_chunk("b")) for _ in range(8)] + [(0, DONE)]
    with nginx_server({"/sse": sse_directives(events)}) as nginx, ProxyThread(nginx) as proxy:
        direct, proxied = nginx + "/sse", proxy.url + "/sse"
        asyncio.run(measure([direct, proxied], 10))  # warm-up: connections, caches
        results = asyncio.run(measure([direct, proxied], n))
    figures = {}
    for name, url in (("direct", direct), ("proxy", proxied)):
        ttft = [t for t, _ in results[url]]
        e2e = [e for _, e in results[url]]
        figures[name] = statistics.median(ttft)
        print(f"{name:7s} TTFT median {statistics.median(ttft) * 1000:7.2f} ms  p99 {p99(ttft) * 1000:7.2f} ms   E2E median {statistics.median(e2e) * 1000:7.2f} ms")
    added = (figures["proxy"] - figures["direct"]) * 1000
    print(f"proxy adds {added:.2f} ms to the median TTFT (goal: < 2 ms) -> {'ok' if added < 2 else 'OVER'}")


if __name__ == "__main__":
    main()
