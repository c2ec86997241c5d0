"""The clock-free policies against hand-computed sequences."""

import pytest

from simrouter.config import BreakerConfig, LimiterConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState, CircuitBreaker, TokenBucket, build_limiter

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def test_token_bucket_hand_computed_sequence():
    bucket = TokenBucket(rate=2.0, burst=3)
    # (time, expected decision, tokens left after): full bucket of 3, refill 2/s.
    steps = [
        (0.00, True, 2.0),
        (0.00, True, 1.0),
        (0.00, True, 0.0),
        (0.00, False, 0.0),  # empty
        (0.25, False, 0.5),  # half a token refilled
        (0.50, True, 0.0),  # 1.0 token -> spent
        (2.00, True, 2.0),  # refill capped at burst 3, then one spent
        (2.10, True, 1.2),
        (2.10, True, 0.2),
        (2.10, False, 0.2),
    ]
    for now, admitted, left in steps:
        assert bucket.try_acquire(now) is admitted, now
        assert bucket.tokens(now) == pytest.approx(left), now


def test_token_bucket_long_run_rate():
    bucket = TokenBucket(rate=10.0, burst=5)
    # Attempts every ms from 0 to 9.999 s: the initial 5 tokens plus floor(10/s * 9.999 s) = 99 refills.
    admitted = sum(bucket.try_acquire(i / 1000) for i in range(10_000))
    assert admitted == 5 + 99


def test_per_user_and_global_scope():
    per_user = build_limiter(LimiterConfig(scope="per_user", rate=1.0, burst=1))
    assert per_user.try_acquire("a", 0.0) and per_user.try_acquire("b", 0.0)
    assert not per_user.try_acquire("a", 0.5)
    shared = build_limiter(LimiterConfig(scope="global", rate=1.0, burst=1))
    assert shared.try_acquire("a", 0.0)
    assert not shared.try_acquire("b", 0.0)
    assert build_limiter(LimiterConfig(algorithm="none")).try_acquire("a", 0.0)


def make_breaker(**overrides):
    settings = dict(failure_threshold=3, failure_rate_threshold=0.5, window_size=10, minimum_calls=6,
                    open_duration=10.0, half_open_max_calls=2, success_threshold=2)
    settings.update(overrides)
    return CircuitBreaker(BreakerConfig(**settings))


def states(breaker):
    return [(tr.from_state, tr.to_state) for tr in breaker.transitions]


def test_consecutive_failures_trip_and_success_resets_count():
    b = make_breaker()
    for t, outcome in enumerate([FAILURE, FAILURE, SUCCESS, FAILURE, FAILURE]):
        assert b.allow(t)
        b.record(outcome, t)
    assert b.state is CLOSED  # the success reset the run of failures
    b.record(FAILURE, 5.0)
    assert b.state is OPEN and b.transitions[-1].t == 5.0


def test_failure_rate_trip_needs_minimum_calls():
    b = make_breaker(failure_threshold=0)
    for t, outcome in enumerate([FAILURE, SUCCESS, FAILURE, SUCCESS, FAILURE]):
        b.record(outcome, t)
    assert b.state is CLOSED  # 3/5 failed, but only 5 < minimum_calls outcomes
    b.record(SUCCESS, 5)
    assert b.state is CLOSED  # rate is checked when a failure is recorded
    b.record(FAILURE, 6)  # 4/7 >= 0.5
    assert b.state is OPEN


def test_failure_rate_uses_only_the_last_window():
    b = make_breaker(failure_threshold=0, window_size=4, minimum_calls=4)
    for t, outcome in enumerate([FAILURE, FAILURE, SUCCESS, SUCCESS, SUCCESS, SUCCESS, FAILURE]):
        b.record(outcome, t)
    assert b.state is CLOSED  # last 4 = S S S F: 25 %
    b.record(FAILURE, 7)  # S S F F: 50 %
    assert b.state is OPEN


def test_open_rejects_until_wait_then_half_open_probes_close_it():
    b = make_breaker(failure_threshold=1)
    b.record(FAILURE, 0.0)
    assert b.state is OPEN
    assert not b.allow(9.99)
    assert b.allow(10.0) and b.state is HALF_OPEN  # lazy: the first call after the wait
    probe_epoch = b.epoch
    assert b.allow(10.1)  # second probe
    assert not b.allow(10.2)  # probe cap reached
    b.record(SUCCESS, 10.3, probe_epoch)
    assert b.state is HALF_OPEN
    b.record(SUCCESS, 10.4, probe_epoch)
    assert b.state is CLOSED
    assert states(b) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_failed_probe_reopens_and_restarts_the_wait():
    b = make_breaker(failure_threshold=1)
    b.record(FAILURE, 0.0)
    assert b.allow(12.0)
    b.record(FAILURE, 12.5, b.epoch)
    assert b.state is OPEN
    assert not b.allow(22.0)  # wait counts from the re-open at 12.5
    assert b.allow(22.5)
    assert states(b) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN)]


def test_outcome_from_an_older_epoch_is_ignored():
    b = make_breaker(failure_threshold=1)
    assert b.allow(0.0)
    slow_call_epoch = b.epoch  # admitted while CLOSED
    b.record(FAILURE, 1.0)  # another call trips it
    assert b.allow(11.0) and b.state is HALF_OPEN
    b.record(SUCCESS, 11.5, slow_call_epoch)  # the slow CLOSED-era call finally answers
    b.record(FAILURE, 11.6, slow_call_epoch)
    assert b.state is HALF_OPEN  # neither counted as a probe


def test_timeouts_count_only_when_configured():
    counted = make_breaker(failure_threshold=1)
    counted.record(TIMEOUT, 0.0)
    assert counted.state is OPEN
    ignored = make_breaker(failure_threshold=1, count_timeouts=False)
    ignored.record(TIMEOUT, 0.0)
    assert ignored.state is CLOSED
