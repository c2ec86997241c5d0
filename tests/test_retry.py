"""Client policies as clock-free objects: backoff and jitter (AWS definitions),
retry decisions, retry-budget arithmetic, hedge delays."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simrouter import ConfigError, load_scenario
from simrouter.config import HedgeConfig, RetryConfig
from simrouter.outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from simrouter.policies import Backoff, HedgePolicy, RetryBudget, RetryPolicy


def test_backoff_without_jitter_grows_geometrically_to_the_cap():
    backoff = Backoff(base=0.1, multiplier=2.0, cap=1.0, jitter="none")
    assert [backoff.delay(n, 0.0, 0.5) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.delay(10_000, 0.0, 0.5) == 1.0  # no overflow for absurd retry numbers
    assert Backoff(base=0.0, jitter="none").delay(3, 0.0, 0.5) == 0.0


@settings(max_examples=300, deadline=None)
@given(base=st.floats(0.001, 1.0), multiplier=st.floats(1.0, 4.0), extra=st.floats(0.0, 10.0),
       retry=st.integers(0, 80), u=st.floats(0.0, 1.0, exclude_max=True), previous=st.floats(0.001, 20.0))
def test_jitter_ranges(base, multiplier, extra, retry, u, previous):
    cap = base + extra
    t = min(cap, base * multiplier**retry)
    full = Backoff(base, multiplier, cap, "full").delay(retry, previous, u)
    equal = Backoff(base, multiplier, cap, "equal").delay(retry, previous, u)
    assert 0.0 <= full <= t * (1 + 1e-12)  # full jitter: uniform(0, t)
    assert t / 2 * (1 - 1e-12) <= equal <= t * (1 + 1e-12)  # equal jitter: t/2 + uniform(0, t/2)
    previous = max(previous, base)  # decorrelated starts at base and never goes below it
    decorrelated = Backoff(base, multiplier, cap, "decorrelated").delay(retry, previous, u)
    assert base * (1 - 1e-12) <= decorrelated <= min(cap, 3 * previous) * (1 + 1e-12)  # min(cap, uniform(base, 3 prev))


def test_jitter_means_match_their_definitions():
    rng = np.random.default_rng(7)
    n, t = 20_000, 0.4  # retry 2 of base 0.1: t = 0.4 (cap 1)
    sd_uniform = t / np.sqrt(12 * n)  # standard error of a mean of uniform(0, t) draws
    full = [Backoff(0.1, 2.0, 1.0, "full").sample(2, 0.1, rng) for _ in range(n)]
    equal = [Backoff(0.1, 2.0, 1.0, "equal").sample(2, 0.1, rng) for _ in range(n)]
    assert np.mean(full) == pytest.approx(t / 2, abs=5 * sd_uniform)
    assert np.mean(equal) == pytest.approx(3 * t / 4, abs=5 * sd_uniform / 2)
    decorrelated = [Backoff(0.1, 2.0, 10.0, "decorrelated").sample(0, 0.5, rng) for _ in range(n)]
    assert np.mean(decorrelated) == pytest.approx((0.1 + 1.5) / 2, abs=5 * 1.4 / np.sqrt(12 * n))


def test_retry_policy_counts_tries_and_kinds():
    policy = RetryPolicy(RetryConfig(max_attempts=3, retry_on=["timeouts", "rate_limited"]))
    assert policy.enabled
    assert policy.retryable(TIMEOUT, 1) and policy.retryable(RATE_LIMITED, 2)
    assert not policy.retryable(TIMEOUT, 3)  # three tries made: no fourth
    assert not any(policy.retryable(kind, 1) for kind in (SUCCESS, FAILURE, QUEUE_FULL, BREAKER_REJECTED, VALIDATION))
    assert not RetryPolicy(RetryConfig()).enabled  # max_attempts = 1: off


def test_retry_budget_arithmetic():
    budget = RetryBudget(ratio=0.2, window=10.0, min_per_s=0.0)
    for i in range(10):
        budget.deposit(i / 10)  # 10 requests at 0.0 .. 0.9
    assert budget.balance(1.0) == pytest.approx(2.0)  # 20 % of 10
    assert [budget.try_withdraw(1.0) for _ in range(3)] == [True, True, False]  # a denied retry is not counted
    assert budget.balance(1.0) == pytest.approx(0.0)
    # At 10.05 the request sent at 0.0 has left the window (10 s, open at its old end): 1.8 - 2 < 1.
    assert not budget.try_withdraw(10.05) and budget.balance(10.05) == pytest.approx(-0.2)
    # At 11.0 both the requests and the retries have left it.
    assert budget.balance(11.0) == 0.0 and not budget.try_withdraw(11.0)
    reserve = RetryBudget(ratio=0.0, window=10.0, min_per_s=1.0)  # Finagle's minRetriesPerSec
    assert sum(reserve.try_withdraw(0.0) for _ in range(15)) == 10


def test_hedge_delay_follows_the_percentile_of_recent_answers():
    fixed = HedgePolicy(HedgeConfig(max_hedges=1, delay=0.2))
    fixed.observe(5.0)
    assert fixed.delay() == 0.2
    policy = HedgePolicy(HedgeConfig(max_hedges=1, delay=0.2, percentile=90, window=1000))
    for latency in np.linspace(0.0, 1.0, HedgePolicy.REFRESH - 1):
        policy.observe(latency)
    assert policy.delay() == 0.2  # not re-estimated before REFRESH answers
    policy.observe(1.0)
    assert policy.delay() == pytest.approx(np.percentile([*np.linspace(0.0, 1.0, 63), 1.0], 90))
    for _ in range(1000):  # the window forgets old answers
        policy.observe(0.5)
    assert policy.delay() == pytest.approx(0.5)


CLIENT_MISTAKES = [
    (["router.retry.max_attempts=0"], "router.retry.max_attempts", ">= 1"),
    (['router.retry.retry_on=["timeouts", "validation_errors"]'], "router.retry.retry_on.1", "'breaker_rejected'"),
    (["router.retry.jitter=random"], "router.retry.jitter", "'decorrelated'"),
    (["router.retry.backoff_max=0.01"], "router.retry.backoff_max", ">= backoff_base"),
    (["router.retry.budget_ration=0.1"], "router.retry.budget_ration", "did you mean 'budget_ratio'"),
    (["router.hedge.percentile=120"], "router.hedge.percentile", "<= 100"),
    (["router.hedge.cancel=true"], "router.hedge.cancel", "did you mean 'cancel_loser'"),
]


def test_client_policy_config_errors_name_their_field():
    for overrides, field, phrase in CLIENT_MISTAKES:
        with pytest.raises(ConfigError, match=re.escape(phrase)) as caught:
            load_scenario("concurrent", overrides)
        assert caught.value.field == field, overrides
