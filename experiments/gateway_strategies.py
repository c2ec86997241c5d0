"""Which routing strategy for uneven replicas? The six strategies on 4 deployments of 8/8/4/2 slots.

One gateway in front of four deployments of the same model: two of 8 slots,
one of 4, one of 2 (22 slots; exponential service, mean 50 ms per request, so
each slot serves 20 req/s), weights proportional to capacity (8/8/4/2). Open
Poisson traffic at 80 % of the 440 req/s the 22 slots serve; no limiter,
breaker, failures or timeouts, so only the routing differs. Every strategy
runs the same replications with the same seed (common random numbers: the
same arrivals and service times; routing has its own random stream).

Per strategy: mean, P95 and P99 latency with their 95 % intervals (pooled
percentiles, sectioning intervals), the error rate and each deployment's share
of the attempts (mean and t-interval over the replications).

What theory says (docs/gateway.md, /work/shared/reference/ai-serving.md 4):

* ``simple-shuffle`` with weights proportional to capacity splits the Poisson
  stream into independent Poisson streams: deployment i is an M/M/c_i queue at
  the same utilisation 0.8, and the response time is the mixture of their
  response times (Erlang C). Its exact mean, P95 and P99 are in the
  ``theory_*`` columns of that row;
* ``round-robin`` gives each deployment a regular share of the arrivals (the
  2-slot one every 11th request: Erlang-11 gaps), less variable than Poisson,
  so it waits less than random routing (GI/M/c: more regular arrivals, shorter
  queues);
* ``least-busy`` counts attempts in flight, not free slots: the 2-slot
  deployment looks as idle as an 8-slot one with as many requests in flight,
  so it gets more than its capacity share and queues;
* ``usage-based`` (requests this minute) gives every deployment a quarter of
  the traffic whatever its capacity: 88 req/s to a deployment that serves 40,
  an overloaded queue for the whole run;
* ``latency-based`` (LiteLLM's mean of the recent answers, no in-flight term)
  herds: the deployment with the lowest mean takes the traffic until its
  queue's latencies raise the mean, while the samples of the others stay for
  ``latency_ttl`` (60 s).

Writes ``gateway_strategies.csv`` and ``gateway_strategies.png``.

    python experiments/gateway_strategies.py            # a few minutes on 2 cores
    python experiments/gateway_strategies.py --quick    # about half a minute
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import new_figure, parse_args, save  # noqa: E402

import simrouter  # noqa: E402
from simrouter import theory  # noqa: E402
from simrouter.executors import open_executor, run_tasks  # noqa: E402
from simrouter.replications import ReplicatedResult, ReplicationOutput, flatten, replication_output  # noqa: E402
from simrouter.policies.routing import ROUTING_STRATEGIES  # noqa: E402
from simrouter.stats import t_interval  # noqa: E402

NAME = "gateway_strategies"
DEPLOYMENTS = (("big-a", 8), ("big-b", 8), ("mid", 4), ("small", 2))  # (name, slots); weight = slots
SERVICE_MEAN_S = 0.05
UTILISATION = 0.8
TOTAL_SLOTS = sum(slots for _, slots in DEPLOYMENTS)
RATE = UTILISATION * TOTAL_SLOTS / SERVICE_MEAN_S  # 352 req/s
LATENCY_FIGURES = (("mean", "latency_ms.avg"), ("p95", "latency_ms.p95"), ("p99", "latency_ms.p99"))


def scenario(routing: str, quick: bool) -> simrouter.Scenario:
    """The uneven gateway with ``routing``; only the routing differs between strategies."""
    return simrouter.scenario_from_dict(
        {
            "name": f"gateway-{routing}",
            "duration": 40.0 if quick else 300.0,
            "warmup": 5.0 if quick else 30.0,
            "workload": {"model": "open", "arrival": "poisson", "rate": RATE, "users": 10},
            "limiter": {"algorithm": "none"},
            "breaker": {"preset": "none"},
            "backend": {
                "latency": {"dist": "exponential", "mean": SERVICE_MEAN_S},
                "failures": {"processing": 0.0, "timeout": 0.0, "validation": 0.0},
                "queue_limit": 100_000,
            },
            "router": {"timeout": 1000.0, "routing": routing, "max_fallbacks": 0},
            "deployments": [{"name": name, "weight": float(slots), "backend": {"capacity": slots}} for name, slots in DEPLOYMENTS],
        }
    )


def random_split_theory() -> dict[str, float]:
    """Mean, P95 and P99 (ms) of weight-proportional random routing: deployment i
    is M/M/c_i at rate RATE * c_i / 22, a request lands on it with probability c_i / 22."""
    mu = 1.0 / SERVICE_MEAN_S
    parts = [(slots / TOTAL_SLOTS, RATE * slots / TOTAL_SLOTS, slots) for _, slots in DEPLOYMENTS]
    mean = sum(p * theory.mmc_response_mean(lam, mu, c) for p, lam, c in parts)

    def survival(t: float) -> float:
        return sum(p * theory.mmc_response_sf(t, lam, mu, c) for p, lam, c in parts)

    def percentile(q: float) -> float:
        return brentq(lambda t: survival(t) - (1.0 - q), 0.0, 100.0)

    return {"mean": 1000.0 * mean, "p95": 1000.0 * percentile(0.95), "p99": 1000.0 * percentile(0.99)}


def strategy_row(routing: str, result) -> dict:
    """One CSV row: latency figures with intervals, error rate, shares per deployment."""
    row: dict = {"strategy": routing, "replications": result.replications}
    flat = flatten(result.summary)  # the mean of the runs' means; percentiles of the pooled samples
    for label, key in LATENCY_FIGURES:
        interval = result.interval(key)
        row[f"{label}_ms"] = flat.get(key)
        row[f"{label}_ci_low"], row[f"{label}_ci_high"] = (interval.low, interval.high) if interval else (np.nan, np.nan)
    errors = result.values("error_rate")
    row["error_rate"] = float(np.nanmean(errors))
    for index, (name, _) in enumerate(DEPLOYMENTS):
        shares = np.array([s["deployments"][index]["share"] for s in result.summaries], dtype=float)
        interval = t_interval(shares)
        row[f"share_{name}"] = float(shares.mean())
        row[f"share_{name}_ci_low"], row[f"share_{name}_ci_high"] = (interval.low, interval.high) if interval else (np.nan, np.nan)
    return row


def replication(routing: str, quick: bool, seed: int, index: int) -> ReplicationOutput:
    """One replication of one strategy (a worker's task: it builds its own scenario)."""
    return replication_output(scenario(routing, quick), seed, index)


def run_strategies(args) -> pd.DataFrame:
    tasks = {(routing, r): (routing, args.quick, args.seed, r) for routing in ROUTING_STRATEGIES for r in range(args.replications)}
    with open_executor("processes", args.workers) as executor:
        outputs = run_tasks(replication, tasks, executor)
    rows = []
    for routing in ROUTING_STRATEGIES:
        mine = [outputs[(routing, r)] for r in range(args.replications)]
        result = ReplicatedResult(scenario(routing, args.quick), args.seed, [o.summary for o in mine], latency_samples=[o.latency_ms for o in mine])
        rows.append(strategy_row(routing, result))
        print(f"{routing:>15}: mean {rows[-1]['mean_ms']:.1f} ms, P95 {rows[-1]['p95_ms']:.1f} ms, P99 {rows[-1]['p99_ms']:.1f} ms")
    table = pd.DataFrame(rows)
    expected = random_split_theory()
    for label in ("mean", "p95", "p99"):
        table[f"theory_{label}_ms"] = np.where(table["strategy"] == "simple-shuffle", expected[label], np.nan)
    return table


def figure(table: pd.DataFrame, replications: int):
    fig, (left, right) = new_figure(2, f"Routing over 4 deployments of 8/8/4/2 slots at 80 % load ({replications} replications each)")
    x = np.arange(len(table))
    width = 0.27
    for offset, (label, _) in zip((-width, 0.0, width), LATENCY_FIGURES):
        values = table[f"{label}_ms"].to_numpy()
        low = np.clip(values - table[f"{label}_ci_low"].to_numpy(), 0, None)
        high = np.clip(table[f"{label}_ci_high"].to_numpy() - values, 0, None)
        left.bar(x + offset, values, width, yerr=np.vstack([np.nan_to_num(low), np.nan_to_num(high)]), capsize=3, label=label.upper() if label != "mean" else "mean")
    shuffle = table.index[table["strategy"] == "simple-shuffle"][0]
    for offset, label in zip((-width, 0.0, width), ("mean", "p95", "p99")):
        left.plot([shuffle + offset], [table.loc[shuffle, f"theory_{label}_ms"]], marker="x", color="black", linestyle="none", label="theory (random split)" if label == "mean" else None)
    left.set_xticks(x, table["strategy"], rotation=20)
    left.set_yscale("log")
    left.set_ylabel("latency, ms (95 % CI; log scale)")
    left.grid(True, axis="y", alpha=0.3)
    left.legend(fontsize="small")

    bottom = np.zeros(len(table))
    capacity_below = 0
    for name, slots in DEPLOYMENTS:
        share = table[f"share_{name}"].to_numpy()
        right.bar(x, share, 0.6, bottom=bottom, label=f"{name} ({slots} slots: {slots / TOTAL_SLOTS:.0%} of capacity)")
        bottom += share
        capacity_below += slots
        right.axhline(capacity_below / TOTAL_SLOTS, color="grey", linestyle=":", linewidth=1)
    right.set_xticks(x, table["strategy"], rotation=20)
    right.set_ylim(0, 1)
    right.set_ylabel("share of attempts (dotted: capacity shares)")
    right.legend(fontsize="small", loc="lower right")
    return fig


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(__doc__.splitlines()[0], argv, replications=5)
    table = run_strategies(args)
    print(table[["strategy", "mean_ms", "p95_ms", "p99_ms", "theory_mean_ms", "theory_p95_ms", "error_rate"] + [f"share_{n}" for n, _ in DEPLOYMENTS]].to_string(index=False))
    save(table, figure(table, args.replications), args.out, NAME)
    return table


if __name__ == "__main__":
    main()
