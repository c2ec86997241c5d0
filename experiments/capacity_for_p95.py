"""How many backend slots keep P95 latency under 150 ms as traffic grows?

Open Poisson traffic at each rate (no rate limiter, the default breaker and
backend) against a range of ``backend.capacity`` values around the offered
load ``a = rate x mean service time``: from ``a`` rounded up + 1 to
``a + 2.5 sqrt(a) + 4`` slots (square-root staffing brackets the answer). Each
point is replicated with the same seed (common random numbers: at every
capacity the same arrivals and service times, so the curves differ only by the
capacity). The capacity needed at a rate is the smallest whose mean P95 is
under the target and stays under it for every larger capacity tried (so one
lucky point cannot answer); ``upper_bound_holds`` says whether the 95 %
interval's upper end is under the target too.

The default backend's own service time already has a P95 not far below the
target, so the target leaves little room for queueing: the answer sits well
above the offered load, and at low rates (few samples per run) the intervals
stay wide.

Writes ``capacity_for_p95.csv`` (rate, offered load, capacity needed, its P95
and interval, utilisation), ``capacity_for_p95.sweep.csv`` (the aggregated
sweep) and ``capacity_for_p95.png``.

    python experiments/capacity_for_p95.py            # about a minute on 2 cores
    python experiments/capacity_for_p95.py --quick    # seconds
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import metric_rows, new_figure, parse_args, plot_lines, run_sweep, save  # noqa: E402

import simrouter  # noqa: E402

NAME = "capacity_for_p95"
TARGET_MS = 150.0
RATES = (50, 100, 200, 400, 800)
QUICK_RATES = (50, 200)
BASE = {
    "scenario": "concurrent",
    "metrics": ["latency_ms.p95", "latency_ms.p99", "backend.utilization", "error_rate"],
    "set": {
        "name": "capacity",
        "warmup": 5.0,
        "workload": {"model": "open", "arrival": "poisson", "users": 10},
        "limiter": {"algorithm": "none"},
    },
}


def candidate_capacities(rate: float, mean_service_s: float) -> range:
    load = rate * mean_service_s
    return range(math.ceil(load) + 1, math.ceil(load + 2.5 * math.sqrt(load)) + 5)


def capacity_needed(summary: pd.DataFrame, rates, mean_service_s: float) -> pd.DataFrame:
    p95 = metric_rows(summary, "latency_ms.p95")
    utilisation = metric_rows(summary, "backend.utilization").set_index(["workload.rate", "backend.capacity"])["mean"]
    rows = []
    for rate in rates:
        tried = p95[p95["workload.rate"] == rate].sort_values("backend.capacity")
        holds = (tried["mean"] < TARGET_MS).to_numpy()
        # The smallest capacity from which every larger one tried holds too.
        first = next((i for i in range(len(holds)) if holds[i:].all()), None)
        if first == 0:
            print(f"warning: at {rate} req/s even the smallest capacity tried holds the target; the answer may be lower")
        row = {"workload.rate": rate, "offered_load": rate * mean_service_s, "capacity_needed": None, "p95_ms": None, "p95_ci_low": None, "p95_ci_high": None, "upper_bound_holds": None, "utilization": None}
        if first is not None:
            chosen = tried.iloc[first]
            capacity = int(chosen["backend.capacity"])
            row.update(
                capacity_needed=capacity, p95_ms=chosen["mean"], p95_ci_low=chosen["ci_low"], p95_ci_high=chosen["ci_high"],
                upper_bound_holds=bool(chosen["ci_high"] < TARGET_MS), utilization=utilisation[(rate, capacity)],
            )
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(__doc__.splitlines()[0], argv, replications=5)
    rates = QUICK_RATES if args.quick else RATES
    base = dict(BASE, set=dict(BASE["set"], duration=20.0 if args.quick else 120.0))
    mean_service_s = simrouter.load_scenario(base["scenario"]).backend.latency.mean
    points = [{"workload": {"rate": float(rate)}, "backend": {"capacity": c}} for rate in rates for c in candidate_capacities(rate, mean_service_s)]
    spec, summary = run_sweep({**base, "name": NAME, "points": points}, args)
    answer = capacity_needed(summary, rates, mean_service_s)
    print(answer.to_string(index=False))
    clipped = summary.attrs.get("ci_low_clipped_at_0") or []
    if clipped:  # a latency cannot be negative: the t-interval's low end is shown as 0
        print(f"note: 95 % intervals reaching below 0 were clipped at 0 for {', '.join(clipped)} (few replications, skewed figures)")

    figure, (left, right) = new_figure(2, f"Backend capacity for P95 < {TARGET_MS:g} ms ({spec.replications} replications a point)")
    plot_lines(left, summary, "backend.capacity", "workload.rate", "latency_ms.p95", target=TARGET_MS)
    left.set_ylim(bottom=0, top=2 * TARGET_MS)  # a latency is never negative
    left.set_ylabel("P95 latency, ms (mean and 95 % CI)")
    left.legend(fontsize="small")
    found = answer.dropna(subset=["capacity_needed"])
    right.plot(found["workload.rate"], found["capacity_needed"], marker="o", label=f"capacity needed (mean P95 < {TARGET_MS:g} ms)")
    right.plot(answer["workload.rate"], answer["offered_load"], linestyle=":", color="grey", label="offered load (utilisation 100 %)")
    right.set_xlabel("traffic, requests/s")
    right.set_ylabel("backend slots")
    right.grid(True, alpha=0.3)
    right.legend(fontsize="small")
    save(answer, figure, args.out, NAME)
    summary.to_csv(args.out / f"{NAME}.sweep.csv", index=False)
    return answer


if __name__ == "__main__":
    main()
