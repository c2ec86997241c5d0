"""``compare``'s verdicts (issue 17, item 15), on hand-made summaries: no run needed.

* replications that agree (every one without errors) still give an interval of
  positive width: the live figure's own sampling error is in it;
* about ten rows: each row's interval is Bonferroni-adjusted (or, with
  ``adjust="none"``, the table says how many "no" to expect by chance);
* runs whose breaker never recovered are counted, not dropped;
* an interval too wide to tell anything gives "inconclusive", not "yes";
* live and simulated percentiles are computed the same way (linear
  interpolation over the run's latencies), not HDR nearest rank against numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

import simrouter
from simrouter.live.compare import comparison_rows, prediction_interval

SENT = 3000


def summary(p50=40.0, p99=100.0, avg=45.0, rps=50.0, error_rate=0.0, trips=0, recovery_s=None, recovered=None, timeouts=0.0):
    return {
        "requests": {"sent": SENT},
        "latency_ms": {"p50": p50, "p90": p99 * 0.8, "p95": p99 * 0.9, "p99": p99, "avg": avg},
        "throughput": {"rps": rps, "window_s": SENT / rps},
        "error_rate": error_rate,
        "error_rates": {"timeouts": timeouts},
        "breaker": {"trips": trips, "recovery_s": recovery_s, "recovered": recovered},
    }


def rows_by_metric(*args, **kwargs):
    return {r.metric: r for r in comparison_rows(*args, **kwargs)}


NO_FAULTS = simrouter.load_scenario("concurrent")
FAULTS = simrouter.load_scenario("breaker-failure")


def test_agreeing_replications_do_not_collapse_the_interval_to_a_point():
    sims = [summary(error_rate=0.0, p99=100.0) for _ in range(5)]  # all alike
    live = summary(error_rate=2 / SENT, p99=100.4)
    error = rows_by_metric(NO_FAULTS, sims, live, None)["error_rate"]
    assert error.pi_high > 0
    assert error.inside  # 2 errors in 3000 against 0 in each of 5 runs: no evidence of a difference
    assert error.live_se > 0 and error.verdict == "yes"
    latencies = np.random.default_rng(3).lognormal(np.log(0.04), 0.4, SENT)
    p99 = rows_by_metric(NO_FAULTS, sims, live, None, live_latencies_s=latencies)["latency_ms.p99"]
    assert p99.pi_high > p99.pi_low and p99.live_se > 0


def test_prediction_interval_is_t_s_sqrt_1_plus_1_over_n_plus_the_live_error():
    values = np.array([10.0, 12.0, 11.0, 13.0, 9.0])
    low, high = prediction_interval(values, 0.95, live_se=0.0)
    from scipy.stats import t

    half = t.ppf(0.975, 4) * values.std(ddof=1) * np.sqrt(1 + 1 / 5)
    assert (low, high) == pytest.approx((11.0 - half, 11.0 + half))
    wider = prediction_interval(values, 0.95, live_se=2.0)
    assert wider[1] - wider[0] == pytest.approx(2 * t.ppf(0.975, 4) * np.sqrt(values.var(ddof=1) * 1.2 + 4.0))


def test_rows_are_bonferroni_adjusted_and_the_table_says_so():
    from simrouter.live.compare import row_level

    rng = np.random.default_rng(4)
    sims = [summary(p50=40 + rng.normal(0, 1), p99=100 + rng.normal(0, 3), avg=45 + rng.normal(0, 1), rps=50 + rng.normal(0, 1)) for _ in range(5)]
    live = summary()
    adjusted = comparison_rows(NO_FAULTS, sims, live, None)
    plain = comparison_rows(NO_FAULTS, sims, live, None, adjust="none")
    m = len(adjusted)
    assert m >= 7
    assert all(r.row_level == pytest.approx(1 - 0.05 / m) for r in adjusted)
    assert all(r.row_level == 0.95 for r in plain)
    for a, p in zip(adjusted, plain):
        assert a.pi_high - a.pi_low > p.pi_high - p.pi_low
    assert row_level(0.95, 10) == pytest.approx(0.995)
    with pytest.raises(simrouter.ConfigError, match="--adjust"):
        row_level(0.95, 10, "holm-ish")


def test_never_recovered_runs_are_counted_not_dropped():
    recovered = [summary(trips=1, recovery_s=2.0 + 0.1 * i, recovered=True) for i in range(3)]
    never = [summary(trips=1, recovery_s=None, recovered=False) for _ in range(2)]
    live_never = summary(trips=1, recovery_s=None, recovered=False)
    row = rows_by_metric(FAULTS, recovered + never, live_never, None)["breaker.recovery_s"]
    assert row.sim_not_recovered == 2 and row.sim_runs == 3 and row.live_not_recovered
    assert row.verdict == "yes"  # it happened in 2 of 5 simulated runs too
    all_recovered = [summary(trips=1, recovery_s=2.0 + 0.1 * i, recovered=True) for i in range(5)]
    assert rows_by_metric(FAULTS, all_recovered, live_never, None)["breaker.recovery_s"].verdict == "no"
    none_recovered = [summary(trips=1, recovery_s=None, recovered=False) for _ in range(5)]
    live_recovered = summary(trips=1, recovery_s=2.0, recovered=True)
    assert rows_by_metric(FAULTS, none_recovered, live_recovered, None)["breaker.recovery_s"].verdict == "no"


def test_an_interval_too_wide_to_tell_is_inconclusive_not_yes():
    from simrouter.live.compare import WIDE

    sims = [summary(p99=v) for v in (60.0, 420.0, 150.0, 330.0, 90.0)]  # P99 all over the place
    live = summary(p99=200.0)
    row = rows_by_metric(NO_FAULTS, sims, live, None)["latency_ms.p99"]
    assert row.inside
    assert (row.pi_high - row.pi_low) / 2 > WIDE * row.sim_mean
    assert row.verdict == "inconclusive"
    narrow = [summary(p50=v) for v in (40.0, 41.0, 39.5, 40.5, 40.2)]
    assert rows_by_metric(NO_FAULTS, narrow, summary(p50=40.3), None)["latency_ms.p50"].verdict == "yes"
    assert rows_by_metric(NO_FAULTS, narrow, summary(p50=60.0), None)["latency_ms.p50"].verdict == "no"


def test_live_and_simulated_percentiles_use_one_definition():
    from simrouter.live import hdr
    from simrouter.metrics import latency_stats

    latencies = np.random.default_rng(8).lognormal(np.log(0.05), 0.6, 20)  # n = 20: nearest rank and linear differ
    live = summary()
    live["latency_ms"] = {k: v for k, v in hdr.stats(hdr.histogram(latencies)).items() if k != "p99_9"}  # what the live summary holds
    exact = latency_stats(latencies.copy())
    assert abs(live["latency_ms"]["p50"] / exact["p50"] - 1) > 0.01  # the two definitions do differ here
    sims = [summary(p50=exact["p50"] * f) for f in (0.98, 1.0, 1.02, 0.99, 1.01)]
    rows = rows_by_metric(NO_FAULTS, sims, live, None, live_latencies_s=latencies)
    for p in (50, 90, 95, 99):
        assert rows[f"latency_ms.p{p}"].live == pytest.approx(exact[f"p{p}"], rel=1e-12)
    assert rows["latency_ms.avg"].live == pytest.approx(exact["avg"], rel=1e-12)
