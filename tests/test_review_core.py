"""Regression tests for the core review's fixes: each failed before its fix.

Utilisation over the run only (hung calls used to push it to 5.8), limiters at
exactly their rate (float refill rejected a third of such requests), a default
breaker whose ignored probe timeouts left it HALF_OPEN for good, a recovery target
turned off by ``inf``, ``timeseries`` of runs where nothing reached the backend,
and a retry budget that kept every send time."""

import math

import numpy as np
import pytest

import simrouter
from simrouter.config import load_scenario
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import GCRA, RetryBudget, TokenBucket, build_breaker
from simrouter.sim.backend import Backend
from simrouter.targets import evaluate_targets

HANG = 30.0
SERVICE = 0.01
HANGING = [  # no queueing (200 slots), constant 10 ms service, 5 % of calls hang 30 s past a 1 s router timeout
    "limiter.algorithm=none", "breaker.preset=none", f"backend.latency={SERVICE}", "backend.capacity=200",
    "backend.failures.processing=0", "backend.failures.validation=0", "backend.failures.timeout=0.05",
    f"backend.hang_time={HANG}", "router.timeout=1.0", "workload.requests_per_user=50",
]


@pytest.mark.parametrize("engine", ["auto", "events"])
def test_backend_busy_time_counts_only_work_done_within_the_run(engine):
    result = simrouter.simulate("concurrent", seed=3, overrides=HANGING, engine=engine)
    frame = result.to_frame()
    admitted = frame[frame["outcome"].isin(["succeeded", "timeouts", "failures"])]
    assert (admitted["outcome"] == "timeouts").sum() > 10  # hung calls run ~25 s past the run's end
    # Independent: no queueing, so each call is served from its send for SERVICE (or HANG), cut at the run's end.
    service = np.where(admitted["outcome"] == "timeouts", HANG, SERVICE)
    expected = np.minimum(admitted["sent_s"] + service, result.sim_time_s) - admitted["sent_s"]
    assert result.backend_busy_s == pytest.approx(expected.sum(), rel=1e-9)
    assert 0 < result.summary["backend"]["utilization"] <= 1.0


class ConstantService:
    def serve(self, start):
        return 1.0, SUCCESS


def test_busy_time_until_counts_a_queued_call_only_from_its_start():
    config = load_scenario("concurrent", overrides=["backend.capacity=1"]).backend
    backend = Backend(config, ConstantService())
    assert backend.admit(0.0) == (1.0, SUCCESS)
    assert backend.admit(0.5) == (2.0, SUCCESS)  # queued behind the first
    assert backend.busy_time == 2.0
    assert backend.busy_time_until(0.5) == pytest.approx(0.5)
    assert backend.busy_time_until(1.5) == pytest.approx(1.5)
    assert backend.busy_time_until(3.0) == pytest.approx(2.0)


@pytest.mark.parametrize("rate", [3.0, 7.0, 10.0, 150.0])
def test_limiters_admit_every_request_sent_exactly_at_their_rate(rate):
    bucket, gcra = TokenBucket(rate, 1, 0.0), GCRA(rate, 0, 0.0)
    on_rate = [k / rate for k in range(2000)]  # as workload.arrival_times spaces constant arrivals
    assert all(bucket.try_acquire(t) for t in on_rate)
    assert all(gcra.try_acquire(t) for t in on_rate)
    # Still a limit: 0.1 % faster than the rate, about one request in a thousand is refused.
    bucket, gcra = TokenBucket(rate, 1, 0.0), GCRA(rate, 0, 0.0)
    fast = [k / (rate * 1.001) for k in range(2000)]
    for limiter in (bucket, gcra):
        admitted = sum(limiter.try_acquire(t) for t in fast)
        assert admitted <= 1 + math.floor(rate * fast[-1]) + 1  # burst + rate * T (+1 for the first at t = 0)
        assert admitted < 2000


def test_default_breaker_ignored_probe_timeout_gives_its_place_back():
    scenario = load_scenario("concurrent", overrides=[
        "breaker.count_timeouts=false", "breaker.failure_threshold=1",
        "breaker.half_open_max_calls=1", "breaker.success_threshold=1",
    ])
    breaker = build_breaker(scenario.breaker)
    assert breaker.allow(0.0)
    breaker.record(FAILURE, 0.1, breaker.epoch)
    wait = scenario.breaker.open_duration
    assert breaker.allow(0.1 + wait)  # the probe
    breaker.record(TIMEOUT, 0.1 + wait + 5.0, breaker.epoch)  # ignored: neither success nor failure
    assert breaker.allow(0.1 + wait + 6.0)  # a new probe may go (was rejected for good)
    breaker.record(SUCCESS, 0.1 + wait + 6.1, breaker.epoch)
    assert breaker.state.value == "closed"


def never_reclosed_summary():
    return {
        "latency_ms": {"p95": 10.0, "p99": 20.0},
        "throughput": {"rps": 200.0, "goodput_rps": 200.0},
        "error_rate": 0.0,
        "breaker": {"recovery_s": None, "recoveries": [{"fault": 0, "fault_end": 45.0, "closed_at": None, "recovery_s": None}]},
    }


@pytest.mark.parametrize(("max_recovery", "passed"), [("inf", None), ("60", False)])
def test_recovery_target_is_off_with_inf_even_when_the_breaker_never_reclosed(max_recovery, passed):
    targets = load_scenario("breaker-failure", overrides=[f"targets.max_recovery_s={max_recovery}"]).targets
    recovery = evaluate_targets(never_reclosed_summary(), targets, has_faults=True)[-1]
    assert recovery.name == "breaker_recovery" and recovery.passed is passed


def test_timeseries_of_runs_where_nothing_reached_the_backend():
    rejected = simrouter.simulate("concurrent", seed=1, overrides=[
        "backend.failures.validation=1.0", "backend.failures.processing=0", "backend.failures.timeout=0",
        "workload.requests_per_user=3", "workload.think_time=0.5",
    ])
    series = rejected.timeseries(interval=1.0)
    assert series["validation_errors"].sum() == 30 and series["succeeded"].sum() == 0
    assert series[["p50_ms", "p95_ms", "p99_ms"]].isna().all().all()
    assert (series["rps"] * 1.0).sum() == 30
    empty = simrouter.simulate("breaker-failure", seed=1, overrides=["workload.rate=0.01", "duration=1", "faults=[]"])
    assert empty.summary["requests"]["sent"] == 0
    series = empty.timeseries()
    assert len(series) == 0 and {"p50_ms", "rps", "breaker_state"} <= set(series.columns)


def test_retry_budget_forgets_old_requests_without_retries():
    budget = RetryBudget(0.2, window=10.0)
    for k in range(10_000):
        budget.deposit(k * 0.1)  # 1000 s of requests, no retry asked
    assert len(budget._requests) <= 101  # only the last window's
    assert budget.balance(999.9) == pytest.approx(0.2 * 100)
