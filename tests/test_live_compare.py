"""``simrouter compare`` on ``concurrent``: simulated and live P50 / P95 agree.

Why the tolerance can be tight, and what it is
----------------------------------------------
``compare`` starts ``simrouter serve`` with the scenario's seed, and the service
draws its backend latencies from the same random streams as simulated
replication 0 (common random numbers). In ``concurrent`` (10 closed users, 16
backend slots) nothing ever queues, so the live run's latencies are the SAME
service times as the simulated ones, each plus what the real clock adds:
loopback HTTP both ways, aiohttp's handlers, and the event loop's timer
(``call_later`` fires up to ~1 ms late: epoll waits in whole milliseconds). If
every request's overhead lies in [0, o_max], every order statistic, hence every
percentile, of the live sample lies in [sim, sim + o_max] of the paired
simulated one.

o_max is not a constant: it depends on how loaded this 2-core machine is (other
test workers, the service and the generator share it; at a load average of 6
the median overhead was measured at 2-14 ms, against ~1.5 ms on a quiet
machine). So the test *calibrates* it under the same conditions, just before
and just after the comparison: ``simrouter serve`` in a subprocess with a
constant 10 ms backend, the same 10 closed users, 100 requests each time;
overhead = latency - 10 ms. The tolerance is the largest overhead seen in those
200 calls plus 1 ms above the paired figure, and 1 ms below it (HDR's 3-digit
nearest rank against numpy's interpolation between neighbouring order
statistics, ~0.3 ms here).

The unpaired verdict (live inside the simulation's prediction interval for one
run) is NOT asserted: it does not account for the overhead, and on this machine
at a load average of 6-7 the overhead (7-8 ms) put the live P50 outside the
99 % interval (41-50 ms) while the paired check, which does account for it,
held. The test checks that the verdict is computed from the figures shown.
"""

from __future__ import annotations

import numpy as np

import simrouter
from simrouter.live.compare import compare, serve_subprocess
from simrouter.live.loadgen import LiveOptions, run_live

CALIBRATION_LATENCY_S = 0.010
SCALE = ["workload.requests_per_user=10"]


def calibrated_overhead_ms() -> np.ndarray:
    """Per-request overhead (ms) of 100 calls to a constant 10 ms backend, 10 closed users."""
    scenario = simrouter.load_scenario(
        "concurrent",
        [*SCALE, "limiter.algorithm=none", f"backend.latency={CALIBRATION_LATENCY_S}", "backend.failures.processing=0.0", "backend.failures.validation=0.0"],
    )
    with serve_subprocess(scenario) as (url, _):
        result = run_live(scenario, url, LiveOptions(handle_signals=False))
    overhead_ms = (result.latencies() - CALIBRATION_LATENCY_S) * 1000.0
    assert overhead_ms.size == 100 and overhead_ms.min() >= 0.0  # a timer never fires early
    return overhead_ms


def test_compare_concurrent_p50_p95_match_within_the_calibrated_overhead():
    before = calibrated_overhead_ms()
    comparison = compare("concurrent", seed=3, replications=5, overrides=["workload.requests_per_user=30"])
    after = calibrated_overhead_ms()
    tolerance_ms = max(before.max(), after.max()) + 1.0
    live = comparison.live.summary["requests"]
    assert live["sent"] == 300 and live["succeeded"] + live["failures"] + live["validation_errors"] == 300
    for metric in ("latency_ms.p50", "latency_ms.p95"):
        row = comparison.row(metric)
        difference = row.live - row.sim_paired
        assert -1.0 <= difference <= tolerance_ms, (metric, row, tolerance_ms)
        assert row.inside == (row.pi_low <= row.live <= row.pi_high)
        assert row.ci_low <= row.sim_mean <= row.ci_high and row.pi_low <= row.ci_low
    frame = comparison.to_frame()
    assert {"metric", "sim_mean", "ci_low", "ci_high", "pi_low", "pi_high", "live", "rel_diff", "inside"} <= set(frame.columns)
    assert comparison.to_dict()["rows"][0]["metric"] == "latency_ms.p50"
