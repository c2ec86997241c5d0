"""Issue 17 items 6, 7 and 8, measured: what the live figures say about timeouts, dropped
arrivals and lag, against the misbehaving servers of ``tests/misbehaving_server.py``.

    python experiments/live_trust_figures.py            # prints one block per item

* item 6: 10 closed users x 20 requests against a target that never answers 3 requests
  in 10, client timeout 0.5 s: latency P95/P99/max/count, how many requests took >= 500 ms,
  and whether the P95 / P99 targets pass;
* item 7: open, 100 req/s evenly spaced for 3 s, a 100 ms target, 4 connections,
  ``max_backlog = 10``, error-rate target 5 %: arrivals, dropped, error rate, P99, targets;
* item 8: the same run: requests sent late, and (where the generator reports it) how much
  of the lag was the generator's own scheduling and how much waiting for a connection.

It runs on older versions too (fields they lack print as "-"), which is how the
before/after figures in the closing note were taken.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import simrouter  # noqa: E402
from misbehaving_server import misbehaving_server  # noqa: E402
from simrouter.live.loadgen import LiveOptions, run_live  # noqa: E402


def _get(data, path, default="-"):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def _ms(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.1f} ms"


def _targets(summary) -> str:
    return ", ".join(f"{t['name']} {'pass' if t['passed'] else 'FAIL' if t['passed'] is False else 'off'}" for t in summary["targets"] if t["name"] in ("p95_latency", "p99_latency", "error_rate"))


def item_6() -> None:
    scenario = simrouter.load_scenario("concurrent", ["workload.requests_per_user=20", "limiter.algorithm=none", "breaker.preset=none"])
    with misbehaving_server("hang_some", tenths=3) as server:
        result = run_live(scenario, server.url, LiveOptions(client_timeout=0.5, handle_signals=False))
    s = result.summary
    took = result.done - result.sent
    print("item 6: 30 % of requests never answered, client timeout 0.5 s, 200 requests")
    print(f"  requests: {s['requests']['sent']} sent, {s['requests']['succeeded']} succeeded, {s['requests']['client_timeouts']} client timeouts; "
          f"{int(np.count_nonzero(took >= 0.5))} took >= 500 ms")
    lat = s["latency_ms"]
    print(f"  latency_ms: p95 {_ms(lat['p95'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}, count {lat['count']}")
    print(f"  targets: {_targets(s)}")


def item_7_8() -> None:
    scenario = simrouter.load_scenario(
        "breaker-failure", ["duration=3", "workload.rate=100", "workload.arrival=constant", "faults=[]", "limiter.algorithm=none", "breaker.preset=none", "targets.max_error_rate=0.05"]
    )
    with misbehaving_server("slow", delay=0.1) as server:
        result = run_live(scenario, server.url, LiveOptions(connections=4, max_backlog=10, client_timeout=5.0, handle_signals=False))
    s = result.summary
    live = s["live"]
    schedule = live["schedule"]
    print("item 7: 100 ms target, 100 req/s for 3 s, 4 connections, max_backlog 10")
    print(f"  arrivals {schedule['arrivals']}, dropped {schedule['dropped']}, requests.sent {s['requests']['sent']}, "
          f"requests.dropped {_get(s, 'requests.dropped')}, error_rate {s['error_rate']:.3f}")
    print(f"  latency_ms: p99 {_ms(s['latency_ms']['p99'])}, count {s['latency_ms']['count']}; targets: {_targets(s)}")
    generator = live.get("generator", {})
    print("item 8: the same run")
    print(f"  late (> {schedule['late_threshold_ms']:g} ms): {schedule['late']} of {schedule['sent']}; mean lag {_ms(schedule['mean_lag_ms'])}, max lag {_ms(schedule['max_lag_ms'])}")
    print(f"  scheduler lag: p99 {_ms(_get(generator, 'scheduler_lag_ms.p99', None))}, max {_ms(_get(generator, 'scheduler_lag_ms.max', None))}; "
          f"pool wait: p99 {_ms(_get(generator, 'pool_wait_ms.p99', None))}, max {_ms(_get(generator, 'pool_wait_ms.max', None))}")
    print(f"  late because of: {_get(generator, 'late_by')}; limited by: {_get(generator, 'limited_by')}")
    print("  notes: " + " | ".join(n for n in live["notes"] if "behind" in n or "late" in n or "connection" in n or "generator" in n))


def main() -> int:
    item_6()
    item_7_8()
    return 0


if __name__ == "__main__":
    sys.exit(main())
