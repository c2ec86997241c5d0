"""``simrouter serve``'s /metrics scrape cost against the number of requests recorded.

Pushes N answers (default 2,000,000; 80 % successes, lognormal latencies) through
the service's recorder API (``RouterService.recorder.add``, the same call the
request handler makes), then times ``service.metrics()`` (the JSON of
``GET /metrics``) and the Prometheus rendering, each a few times, and prints the
median. Works on any version of the service that has that API, so the same
command gives the before and after figures::

    .venv/bin/python benchmarks/bench_service_metrics.py            # this tree
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/bench_service_metrics.py  # another

A scrape runs on the service's event loop: while it runs, no request is served.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import simrouter
from simrouter.live.prometheus import render
from simrouter.live.service import RouterService


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    service = RouterService(simrouter.load_scenario("concurrent"))
    rng = np.random.default_rng(1)
    n = args.requests
    kind = rng.choice([0, 1, 3, 4], size=n, p=[0.8, 0.1, 0.05, 0.05])
    sent = service.now() + 1.0 + np.cumsum(rng.exponential(1e-3, n))
    done = sent + np.where(kind == 1, 0.0, rng.lognormal(np.log(0.05), 0.8, n))
    add = service.recorder.add
    started = time.perf_counter()
    for row in zip(sent.tolist(), done.tolist(), kind.tolist()):
        add(*row)
    recording = time.perf_counter() - started
    print(f"{n:,} requests recorded in {recording:.1f} s ({recording / n * 1e6:.2f} us each)")
    for name, scrape in (("GET /metrics", service.metrics), ("GET /metrics/prometheus", lambda: render(service))):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            scrape()
            times.append(time.perf_counter() - t0)
        print(f"{name}: median {statistics.median(times) * 1000:.1f} ms per scrape (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; {args.repeat} scrapes)")


if __name__ == "__main__":
    main()
