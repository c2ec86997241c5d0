"""Which per-user rate limit keeps latency in check without rejecting too much?

The ``rate-limit-stress`` scenario (400 req/s spread over 10 users, i.e. 40 req/s
each, into the default 16-slot backend) swept over ``limiter.rate`` (tokens per
second per user) and ``limiter.burst`` (bucket size). For each setting,
replicated with common random numbers:

* ``error_rates.rate_limited``: the share of requests the limiter rejects
  (the "violations" users see as 429s);
* ``latency_ms.p95`` and ``latency_ms.p99`` of the requests let through;
* ``throughput.success_rps``: answered successfully per second.

The backend serves at most capacity / mean service time requests per second
(printed); a limit that admits more than that fills the queue and latency
climbs to the router timeout. A bigger burst lets more
requests through at once (every bucket starts full), and the queue those
bursts build keeps P95 up long after. The answer, per burst, is the largest
rate whose mean P95 stays under the target (``best_limits``, printed).

Writes ``rate_limit_tuning.csv`` (the aggregated sweep) and ``rate_limit_tuning.png``.

    python experiments/rate_limit_tuning.py            # about a minute on 2 cores
    python experiments/rate_limit_tuning.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Panel, metric_rows, parse_args, plot_panels, run_sweep, save  # noqa: E402

import simrouter  # noqa: E402

NAME = "rate_limit_tuning"
METRICS = ["error_rates.rate_limited", "latency_ms.p95", "latency_ms.p99", "throughput.success_rps", "error_rate"]
GRID = {"limiter": {"burst": [5, 10, 20, 50], "rate": [10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]}}
QUICK_GRID = {"limiter": {"burst": [5, 50], "rate": [10.0, 20.0, 40.0]}}
P95_TARGET_MS = 150.0

PANELS = [
    Panel("error_rates.rate_limited", "requests rate limited, %", scale=100.0),
    Panel("latency_ms.p95", "P95 latency, ms (log scale)", target=P95_TARGET_MS, log=True),
    Panel("throughput.success_rps", "successful requests/s"),
]


def best_limits(summary: pd.DataFrame) -> pd.DataFrame:
    """Per burst, the largest rate whose mean P95 is under the target, and its rejections."""
    p95 = metric_rows(summary, "latency_ms.p95")
    rejected = metric_rows(summary, "error_rates.rate_limited").set_index(["limiter.burst", "limiter.rate"])["mean"]
    rows = []
    for burst, group in p95.groupby("limiter.burst", sort=True):
        holding = group[group["mean"] < P95_TARGET_MS]
        rate = holding["limiter.rate"].max() if not holding.empty else None
        rows.append({"limiter.burst": burst, "largest_rate_holding_p95": rate, "rate_limited_share": None if rate is None else rejected[(burst, rate)]})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(__doc__.splitlines()[0], argv, replications=5)
    spec, summary = run_sweep({"name": NAME, "scenario": "rate-limit-stress", "metrics": METRICS, "grid": QUICK_GRID if args.quick else GRID}, args)
    backend = simrouter.load_scenario("rate-limit-stress").backend
    print(f"backend service rate: {backend.capacity / backend.latency.mean:.0f} req/s at most")
    print(best_limits(summary).to_string(index=False))

    title = f"Per-user rate limit under 40 req/s per user ({spec.replications} replications a point)"
    save(summary, plot_panels(summary, "limiter.rate", "limiter.burst", "limiter.rate, tokens/s per user", title, PANELS), args.out, NAME)
    return summary


if __name__ == "__main__":
    main()
