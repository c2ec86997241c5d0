"""Output-analysis statistics: t-intervals, paired intervals, relative precision, MSER-5.

The interval functions are checked against an independent formula (scipy's t
quantile written out) and against their coverage on data with a known mean.
MSER-5 is checked on synthetic series whose transient is known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

import simrouter
from simrouter import ConfigError, load_scenario
from simrouter.stats import paired_t_interval, relative_half_width, t_interval
from simrouter.warmup import choose_warmup, mser


def textbook_interval(values, level):
    values = np.asarray(values, dtype=float)
    n = values.size
    half = scipy_stats.t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return values.mean() - half, values.mean() + half


def test_t_interval_matches_the_textbook_formula():
    values = [3.1, 2.7, 3.9, 3.3, 2.2, 3.0]
    for level in (0.9, 0.95, 0.999):
        interval = t_interval(values, level)
        low, high = textbook_interval(values, level)
        assert interval.low == pytest.approx(low, rel=1e-12)
        assert interval.high == pytest.approx(high, rel=1e-12)
        assert interval.n == 6 and interval.mean == pytest.approx(np.mean(values))


def test_t_interval_needs_two_values_and_a_valid_level():
    assert t_interval([1.0]) is None
    assert t_interval([]) is None
    with pytest.raises(ValueError, match="level"):
        t_interval([1.0, 2.0], level=1.5)


def test_t_interval_covers_the_true_mean_at_its_level():
    # 2000 intervals from n = 5 normal samples: coverage is 0.95 +/- 3 sigma (0.0146).
    rng = np.random.default_rng(11)
    covered = sum(t_interval(rng.normal(10.0, 2.0, 5)).covers(10.0) for _ in range(2000))
    assert abs(covered / 2000 - 0.95) < 0.015


def test_paired_interval_is_the_interval_of_the_differences():
    a = np.array([10.0, 12.0, 9.0, 11.0, 13.0])
    b = a + np.array([1.0, 1.2, 0.8, 1.1, 0.9])
    paired = paired_t_interval(a, b)
    low, high = textbook_interval(b - a, 0.95)
    assert (paired.low, paired.high) == pytest.approx((low, high))
    # Pairing removes the shared variation: far narrower than either side's interval.
    assert paired.half_width < t_interval(b).half_width / 5
    with pytest.raises(ValueError, match="length"):
        paired_t_interval(a, b[:3])


def test_relative_half_width_edge_cases():
    assert relative_half_width([5.0, 5.0, 5.0]) == 0.0
    assert relative_half_width([-1.0, 1.0]) == math.inf  # mean 0, not constant
    assert relative_half_width([1.0]) == math.inf
    values = [9.0, 10.0, 11.0]
    assert relative_half_width(values) == pytest.approx(t_interval(values).half_width / 10.0)


# ---------------------------------------------------------------- MSER-5


def ar1(rng, n, phi=0.5):
    noise = rng.standard_normal(n)
    series = np.empty(n)
    series[0] = noise[0]
    for i in range(1, n):
        series[i] = phi * series[i - 1] + noise[i]
    return series


@pytest.mark.parametrize("seed", range(10))
def test_mser5_finds_a_known_step_transient(seed):
    # Mean 3 for the first 500 observations, then stationary AR(1) noise (sd 1.15):
    # the truncation must land on the step, a few batches past it at most
    # (over seeds 0-199 it fell in [495, 575]).
    rng = np.random.default_rng(seed)
    series = ar1(rng, 5000)
    series[:500] += 3.0
    truncation = mser(series)
    assert 490 <= truncation.observations <= 600, truncation
    assert truncation.reliable


@pytest.mark.parametrize("seed", range(10))
def test_mser5_on_a_decaying_transient_deletes_where_it_fades(seed):
    # A transient decaying linearly from 4 to 0 over 500 observations: MSER stops
    # where the remaining bias is lost in the noise (the last ~100 observations
    # of the ramp carry a bias below 0.8 sd), never beyond the transient's end
    # (over seeds 0-199 it fell in [300, 485]).
    rng = np.random.default_rng(seed)
    series = ar1(rng, 5000)
    series[:500] += 4.0 * (1 - np.arange(500) / 500)
    assert 250 <= mser(series).observations <= 520


@pytest.mark.parametrize("seed", range(10))
def test_mser5_keeps_a_stationary_series(seed):
    # at most 2 % deleted (over seeds 0-199: at most 80 observations)
    assert mser(ar1(np.random.default_rng(seed), 5000)).observations <= 100


def test_mser5_flags_a_run_too_short_to_settle():
    trend = np.linspace(10.0, 0.0, 1000)  # never stationary: the minimum sits at k/2
    truncation = mser(trend)
    assert truncation.batches == truncation.total_batches // 2
    assert not truncation.reliable
    assert mser(np.arange(12.0)).observations == 0  # fewer than 4 batches: nothing deleted


def test_mser5_agrees_with_a_direct_computation():
    rng = np.random.default_rng(3)
    series = ar1(rng, 1003)
    series[:80] += 2.0
    k = series.size // 5
    z = series[: k * 5].reshape(k, 5).mean(axis=1)
    direct = [((z[d:] - z[d:].mean()) ** 2).sum() / (k - d) ** 2 for d in range(k // 2 + 1)]
    assert mser(series).batches == int(np.argmin(direct))


# ---------------------------------------------------------------- warmup = "auto"


def test_warmup_auto_is_accepted_and_anything_else_named():
    assert load_scenario("concurrent", ["warmup=auto"]).warmup == "auto"
    assert load_scenario("concurrent", ["warmup=2.5"]).warmup == 2.5
    for bad in ("warmup=soon", "warmup=true"):
        with pytest.raises(ConfigError) as caught:
            load_scenario("concurrent", [bad])
        assert caught.value.field == "warmup" and "auto" in caught.value.message


def test_choose_warmup_uses_the_send_time_of_the_first_kept_request():
    # 200 admitted requests every 0.1 s; the first 50 take 1 s, the rest 0.1 s
    # (with a little noise): MSER-5 must delete exactly the 50 slow ones.
    sent = np.arange(200) * 0.1
    latency = np.where(np.arange(200) < 50, 1.0, 0.1) + np.random.default_rng(0).normal(0, 0.005, 200)
    kind = np.zeros(200, dtype=np.int8)  # all successes
    choice = choose_warmup(sent, sent + latency, kind)
    assert choice.deleted_requests == 50
    assert choice.seconds == pytest.approx(5.0)
    assert choice.method == "mser-5" and choice.reliable


def slow_start_scenario(warmup):
    # M/M/1 at rho 0.95 started empty: early requests are much faster than in
    # steady state (relaxation time ~ 1/(sqrt(mu)-sqrt(lambda))^2 = 1.6k s).
    return simrouter.Scenario(
        name="slow start",
        duration=3000.0,
        warmup=warmup,
        workload=simrouter.WorkloadConfig(model="open", rate=0.95, users=1),
        limiter=simrouter.LimiterConfig(algorithm="none"),
        breaker=simrouter.BreakerConfig(preset="none"),
        backend=simrouter.BackendConfig(capacity=1, queue_limit=10**9, latency=simrouter.Exponential(1.0), failures=simrouter.Failures(0, 0, 0)),
        router=simrouter.RouterConfig(timeout=math.inf),
    )


def test_simulate_with_auto_warmup_reports_the_truncation_it_applied():
    result = simrouter.simulate(slow_start_scenario("auto"), seed=4)
    warmup = result.summary["warmup"]
    assert warmup["method"] == "mser-5"
    assert 0 < warmup["seconds"] < 1500  # something deleted, never more than half
    # The run's statistics exclude exactly what was sent before the chosen warm-up,
    # as a fixed warm-up of the same length would.
    fixed = simrouter.simulate(slow_start_scenario(warmup["seconds"]), seed=4)
    assert result.summary["latency_ms"] == fixed.summary["latency_ms"]
    assert fixed.summary["warmup"] == {"seconds": warmup["seconds"], "method": "fixed", "deleted_requests": None, "reliable": None, "capped_by": None, "replications": None}
