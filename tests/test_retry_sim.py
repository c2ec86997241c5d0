"""Retries and hedges through the simulator: real extra load, logical accounting,
hedged latency against its closed form, the cancellable backend, and the
retry-storm scenario (a short stall becomes lasting overload without a retry
budget and clears with one)."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

import simrouter
from simrouter.distributions import Lognormal

LATENCY = Lognormal.from_percentiles(0.045, 0.234)  # a single lognormal, so hedging has a closed form
QUIET = ["limiter.algorithm=none", "breaker.preset=none", "router.timeout=inf", "backend.failures.processing=0",
         "backend.failures.validation=0", "backend.capacity=1000",
         f"backend.latency={{ dist = \"lognormal\", median = {LATENCY.median!r}, sigma = {LATENCY.sigma!r} }}"]  # no queueing, nothing but latency


def open_run(seed: int, *overrides: str, rate: float = 200.0, duration: float = 30.0):
    base = [f"workload.rate={rate}", f"duration={duration}", "workload.arrival=poisson"]
    return simrouter.simulate("breaker-failure", seed=seed, overrides=[*base, "faults=[]", *QUIET, *overrides])


def assert_one_outcome_each(result):
    requests = result.summary["requests"]
    assert requests["sent"] == sum(v for k, v in requests.items() if k != "sent") == len(result.sent)


def test_retries_follow_geometric_theory_and_latency_counts_from_first_send():
    # Constant 50 ms service, 30 % processing failures, 3 tries, backoff 0.1 s then 0.2 s
    # (no jitter): a request succeeds on try k with probability 0.7 * 0.3**(k-1); its
    # latency is exactly 50 ms, 200 ms or 450 ms (50 + 100 + 50 + 200 + 50).
    p = 0.3
    results = [open_run(seed, "backend.latency=0.05", f"backend.failures.processing={p}", "router.retry.max_attempts=3",
                        'router.retry.retry_on=["failures"]', "router.retry.jitter=none", "router.retry.backoff_base=0.1",
                        "router.retry.backoff_max=1.0") for seed in (1, 2, 3)]
    frame = np.concatenate([r.to_frame()[["latency_ms", "attempts", "outcome"]].to_numpy() for r in results])
    latency, attempts, outcome = frame[:, 0].astype(float), frame[:, 1].astype(int), frame[:, 2]
    assert np.allclose(latency, np.choose(attempts - 1, [50.0, 200.0, 450.0]))
    assert set(outcome[attempts < 3]) == {"succeeded"}
    n = len(outcome)
    success = (outcome == "succeeded").mean()
    assert success == pytest.approx(1 - p**3, abs=5 * math.sqrt(p**3 * (1 - p**3) / n))
    law = {1: 1 - p, 2: p * (1 - p), 3: p**2}  # P(attempts = k)
    mean = sum(k * q for k, q in law.items())  # 1 + p + p^2
    variance = sum(k * k * q for k, q in law.items()) - mean**2
    assert attempts.mean() == pytest.approx(mean, abs=5 * math.sqrt(variance / n))
    for result in results:
        assert_one_outcome_each(result)
        counts = result.summary["attempts"]
        assert counts["total"] == result.summary["requests"]["sent"] + counts["retries"] and counts["hedges"] == 0


def test_retries_pass_the_limiter_again():
    # A global bucket (50/s, burst 1) against 100/s: a retry with zero backoff comes at the
    # same instant, finds the bucket still empty and is rejected too, so every rate-limited
    # request made exactly two attempts and the outcomes are those of a run without retries.
    limiter = ['limiter={ algorithm = "token_bucket", scope = "global", rate = 50, burst = 1 }']
    plain = open_run(4, *limiter, rate=100, duration=20)
    retried = open_run(4, *limiter, "router.retry.max_attempts=2", 'router.retry.retry_on=["rate_limited"]',
                       "router.retry.backoff_base=0", "router.retry.backoff_max=0", rate=100, duration=20)
    limited = plain.summary["requests"]["rate_limited"]
    assert limited > 500
    assert retried.summary["requests"] == plain.summary["requests"]
    assert retried.summary["attempts"]["retries"] == limited


def test_retry_budget_caps_retries_at_its_ratio():
    # Every call fails for the whole run; 4 tries allowed, but the budget allows retries
    # of at most 20 % of the requests of the last 10 s (no reserve).
    result = open_run(5, "faults=[{ start = 0.0, end = 100.0, error_rate = 1.0 }]", "router.retry.max_attempts=4",
                      "router.retry.budget=true", "router.retry.budget_ratio=0.2", "router.retry.budget_min_per_s=0",
                      rate=100, duration=30)
    counts, sent = result.summary["attempts"], result.summary["requests"]["sent"]
    assert 0.19 * sent <= counts["retries"] <= 0.2 * sent + 1
    assert counts["retries_denied_by_budget"] > 0.75 * sent
    assert result.summary["requests"]["failures"] == sent
    assert_one_outcome_each(result)


# ---------------------------------------------------------------- hedging


SINGLE = stats.lognorm(s=LATENCY.sigma, scale=LATENCY.median)


def hedged_sf(t, delay: float):
    """P(latency > t) with one hedge after `delay`, no queueing: min(L1, delay + L2)."""
    t = np.asarray(t, dtype=float)
    return SINGLE.sf(t) * np.where(t > delay, SINGLE.sf(np.maximum(t - delay, 0.0)), 1.0)


@pytest.mark.parametrize("cancel", [True, False], ids=["cancel_loser", "left_running"])
def test_hedged_latency_matches_theory(cancel):
    delay = 0.1
    results = [open_run(seed, "router.hedge.max_hedges=1", f"router.hedge.delay={delay}",
                        f"router.hedge.cancel_loser={str(cancel).lower()}") for seed in (1, 2)]
    latency = np.concatenate([r.latencies() for r in results])
    # Infinite capacity: every logical latency is an independent draw of min(L1, delay + L2),
    # so a one-sample KS test against that law is exact (false alarm 1e-3).
    assert stats.kstest(latency, lambda x: 1 - hedged_sf(x, delay)).pvalue > 1e-3
    hedged_share = sum(r.summary["attempts"]["hedges"] for r in results) / latency.size
    p_slow = SINGLE.sf(delay)  # a hedge goes out when the first copy outlasts the delay
    assert hedged_share == pytest.approx(p_slow, abs=5 * math.sqrt(p_slow * (1 - p_slow) / latency.size))
    p99 = optimize.brentq(lambda t: float(hedged_sf(t, delay)) - 0.01, delay, 5.0)
    assert np.percentile(latency, 99) == pytest.approx(p99, rel=0.05)  # 4 standard errors (1.25 %) for n = 12,000
    assert p99 < 0.75 * LATENCY.quantile(0.99)  # the tail is cut: 234 ms -> 165 ms for 13 % more load


def test_percentile_hedge_delay_hedges_that_share_of_requests():
    result = open_run(3, "router.hedge.max_hedges=1", "router.hedge.percentile=90", "router.hedge.delay=1.0")
    sent = result.summary["requests"]["sent"]
    # After the first REFRESH answers the delay is the P90 of recent copies, so about 10 %
    # of the requests outlast it (the first 64 use the fixed 1 s delay and never hedge).
    share = result.summary["attempts"]["hedges"] / sent
    assert share == pytest.approx(0.10, abs=5 * math.sqrt(0.09 / sent) + 64 / sent)


def test_event_backend_reproduces_the_fast_backend():
    # A queueing case (16 slots at 83 % load). A hedge that never fires (delay 1e6 s) with
    # cancel_loser selects the event-driven backend; it draws service times at service
    # start, the fast one at admission, both in FIFO order, so the runs must agree request
    # for request: stronger than comparing distributions (a KS test on these identical
    # samples would be trivial). The distribution itself is checked above against theory.
    queueing = ["backend.capacity=14", "router.timeout=0.3", "backend.failures.processing=0.01"]
    for seed in (1, 2):
        fast = open_run(seed, *queueing, duration=20)
        event = open_run(seed, *queueing, "router.hedge.max_hedges=1", "router.hedge.delay=1e6", duration=20)
        assert event.summary["attempts"]["hedges"] == 0
        assert np.array_equal(fast.sent, event.sent) and np.array_equal(fast.kind, event.kind)
        assert np.allclose(fast.done, event.done, rtol=0, atol=1e-9)
        assert event.backend_busy_s == pytest.approx(fast.backend_busy_s)
        assert event.sim_time_s == pytest.approx(fast.sim_time_s)
        assert fast.summary["requests"]["timeouts"] > 0  # the case does queue
        assert stats.ks_2samp(fast.latencies(), event.latencies()).pvalue == pytest.approx(1.0)


def test_cancelling_losers_gives_capacity_back():
    hedging = ["backend.capacity=16", "router.hedge.max_hedges=1", "router.hedge.delay=0.05"]
    cancelled = open_run(2, *hedging, "router.hedge.cancel_loser=true", rate=150, duration=20)
    running = open_run(2, *hedging, "router.hedge.cancel_loser=false", rate=150, duration=20)
    for result in (cancelled, running):
        assert result.summary["attempts"]["hedges"] > 0.3 * result.summary["requests"]["sent"]
        assert_one_outcome_each(result)
    # Left running, every hedged request's loser still takes a full service.
    assert cancelled.backend_busy_s < 0.9 * running.backend_busy_s


# ---------------------------------------------------------------- the retry-storm scenario


def recovery_after_fault(result, fault_end: float) -> float | None:
    """Seconds from the fault's end until every later 1-s bin of sends succeeds >= 95 %
    (None: not by the end of the run). Healthy bins hold ~150 requests of which 0.1 %
    are validation errors, so a healthy bin under 95 % is practically impossible."""
    frame = result.to_frame()
    bins = np.floor(frame.sent_s).astype(int)
    ok = (frame.outcome == "succeeded").groupby(bins).mean()
    after = ok[ok.index >= fault_end]
    bad = after[after < 0.95]
    if bad.empty:
        return 0.0
    last_bad = int(bad.index.max())
    return None if last_bad >= int(after.index.max()) else last_bad + 1 - fault_end


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_retry_storm_persists_without_budget_and_clears_with_one(seed):
    storm = simrouter.simulate("retry-storm", seed=seed)
    budget = simrouter.simulate("retry-storm", seed=seed, overrides=["router.retry.budget=true"])
    fault_end = storm.scenario.faults[0].end
    late = lambda r: r.sent >= fault_end + 15  # noqa: E731 - the last 20 s of the run
    storm_ok = (storm.kind[late(storm)] == 0).mean()
    budget_ok = (budget.kind[late(budget)] == 0).mean()
    # Without a budget the backlog of a 5 s stall feeds itself: almost nothing succeeds
    # 15-35 s after the stall ended, every request takes ~4 attempts, the backend is saturated.
    assert storm_ok < 0.05
    assert storm.summary["attempts"]["per_request"] > 2.5
    assert recovery_after_fault(storm, fault_end) is None
    # With a 20 % budget retries add at most ~20 % load and the backlog clears within 20 s.
    assert budget_ok > 0.99
    assert recovery_after_fault(budget, fault_end) < 20
    assert budget.summary["attempts"]["per_request"] < 1.3
    assert budget.summary["backend"]["utilization"] < storm.summary["backend"]["utilization"]
