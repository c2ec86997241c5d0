"""The gateway's cost per request: 4 deployments against one backend, in one run.

Issue 14's speed goal: routing adds per-request work (a strategy's pick, its
``sent`` / ``answered`` bookkeeping, the deployment's own limiter and breaker,
the attempt log, the per-deployment summary), and the full-router fast path
with 4 deployments stays within **1.5x** the single-backend time per request.

The single-backend scenario is ``concurrent`` scaled up: 10 closed users, an
exponential think time of 10 ms (as ``bench_sim.py``: no zero-time resends),
the per-user token bucket, the default breaker, the default backend of 16
slots with its processing and validation failures, the 5 s router timeout. The
gateway scenario is the same with ``[[deployments]]``: 4 deployments of 4
slots each (the same 16), each with its own copy of the default breaker and,
in the last row, its own token bucket too; ``max_fallbacks = 2`` (the
default), so a failed attempt is followed by a fallback. Each row times
``simulate(...).summary`` (the run and its summary, per-deployment figures
included) on the fast engine, paired with the single-backend run in rounds
(same seed; the pair's order alternates, single first in even rounds, so a
drift in machine speed weighs on both sides alike); the ratio is the median of
the per-round ratios (the machine is shared: absolute times drift, paired
ratios hold). Times are the process's CPU time (``time.process_time``: what
this process computed, not the time other engineers' processes held the two
cores); the wall-clock ratio is printed too, and the spread of the per-round
ratios says how far to trust the median.

``--quick`` shrinks the runs (seconds); ``--json PATH`` also writes the
figures. Exit status 0 whether or not the goal is met.

    python benchmarks/bench_gateway.py [--quick] [--rounds N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import simrouter
from simrouter.policies.routing import ROUTING_STRATEGIES

GOAL = 1.5
USERS = 10
DEPLOYMENTS = 4
SIZES = {"default": 200_000, "quick": 20_000}  # requests per run
DEPLOYMENT_LIMITER = {"algorithm": "token_bucket", "rate": 500.0, "burst": 100}  # generous: its cost, rarely a rejection


def single_scenario(requests: int) -> simrouter.Scenario:
    return simrouter.load_scenario(
        "concurrent",
        overrides=[f"workload.users={USERS}", f"workload.requests_per_user={requests // USERS}", 'workload.think_time={ dist = "exponential", mean = 0.01 }', "duration=1e9"],
    )


def gateway_scenario(requests: int, routing: str, deployment_limiters: bool = False) -> simrouter.Scenario:
    """The single-backend scenario behind a gateway of 4 deployments sharing its 16 slots."""
    data = single_scenario(requests).to_dict()
    capacity = data["backend"]["capacity"] // DEPLOYMENTS
    data["router"]["routing"] = routing
    data["deployments"] = [
        {"name": f"d{i}", "backend": {"capacity": capacity}, **({"limiter": dict(DEPLOYMENT_LIMITER)} if deployment_limiters else {})} for i in range(DEPLOYMENTS)
    ]
    return simrouter.scenario_from_dict(data)


def timed(fn) -> tuple[float, float, object]:
    """(CPU seconds, wall seconds, value) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, value


def paired(rounds: int, single, gateway) -> dict:
    """``rounds`` pairs of ``single()`` and ``gateway()`` in alternating order:
    per side the median CPU time, per round the gateway / single ratio (CPU and wall)."""
    times = {"single": [], "gateway": []}
    walls = {"single": [], "gateway": []}
    values = {}
    for i in range(rounds):
        for side in ("single", "gateway") if i % 2 == 0 else ("gateway", "single"):
            cpu, wall, values[side] = timed(single if side == "single" else gateway)
            times[side].append(cpu)
            walls[side].append(wall)
    ratios = [g / s for g, s in zip(times["gateway"], times["single"])]
    wall_ratios = [g / s for g, s in zip(walls["gateway"], walls["single"])]
    return {
        "single_s": statistics.median(times["single"]),
        "gateway_s": statistics.median(times["gateway"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "wall_ratio": statistics.median(wall_ratios),
        "values": (values["single"], values["gateway"]),
    }


def bench_row(label: str, single: simrouter.Scenario, gateway: simrouter.Scenario, requests: int, rounds: int) -> dict:
    run = paired(rounds, lambda: simrouter.simulate(single, seed=1).summary, lambda: simrouter.simulate(gateway, seed=1).summary)
    single_summary, gateway_summary = run.pop("values")
    assert single_summary["requests"]["sent"] == requests and gateway_summary["requests"]["sent"] == requests
    return {
        "row": label,
        "requests": requests,
        "single_us": 1e6 * run["single_s"] / requests,
        "gateway_us": 1e6 * run["gateway_s"] / requests,
        "ratio": run["ratio"],  # gateway CPU time / single CPU time, median over the rounds
        "ratios": run["ratios"],
        "wall_ratio": run["wall_ratio"],
        "fallbacks": gateway_summary.get("fallbacks", {}).get("total"),
        "shares": [round(d["share"], 3) for d in gateway_summary.get("deployments", [])],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (seconds)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per row (default 7; --quick: 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    requests = SIZES["quick" if args.quick else "default"]
    rounds = args.rounds or (3 if args.quick else 7)

    single = single_scenario(requests)
    simrouter.simulate(single_scenario(1_000), seed=1).summary  # warm imports and caches before timing
    rows = [bench_row(routing, single, gateway_scenario(requests, routing), requests, rounds) for routing in ROUTING_STRATEGIES]
    rows.append(bench_row("simple-shuffle + deployment limiters", single, gateway_scenario(requests, "simple-shuffle", deployment_limiters=True), requests, rounds))

    print(f"\nGateway of {DEPLOYMENTS} deployments against one backend: {requests:,} requests a run, {rounds} rounds, CPU-time medians (goal: ratio <= {GOAL})")
    print(f"{'routing':<38} {'single us/req':>13} {'gateway us/req':>14} {'ratio':>6} {'spread':>11} {'wall':>5}  goal  fallbacks  shares")
    for row in rows:
        verdict = "met " if row["ratio"] <= GOAL else "MISS"
        spread = f"{min(row['ratios']):.2f}-{max(row['ratios']):.2f}"
        print(f"{row['row']:<38} {row['single_us']:>13.2f} {row['gateway_us']:>14.2f} {row['ratio']:>6.2f} {spread:>11} {row['wall_ratio']:>5.2f}  {verdict}  {row['fallbacks']!s:>9}  {row['shares']}")
    if args.json:
        args.json.write_text(json.dumps({"goal": GOAL, "requests": requests, "rounds": rounds, "rows": rows}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
