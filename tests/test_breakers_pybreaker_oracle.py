"""The ``pybreaker`` preset against PyPI pybreaker itself, on identical event sequences.

pybreaker reads the time with ``datetime.now(UTC)``; the test patches that clock.
Calls are pybreaker *generator* calls, so several can be in flight at once and
each one's outcome is handled when the test decides (as an async router would):
admission happens at ``cb.call``, the outcome when the generator is resumed.
Times are multiples of 1/64 s, exact both as floats and in datetime microseconds,
so both sides compare the same instants.
"""

import datetime as dt

import numpy as np
import pybreaker
import pytest

from simrouter.config import PybreakerBreakerConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState, PybreakerBreaker

TICK = 1 / 64
START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
STATES = {"closed": BreakerState.CLOSED, "open": BreakerState.OPEN, "half-open": BreakerState.HALF_OPEN}


class FakeClock(dt.datetime):
    """Stands in for ``datetime`` inside pybreaker: ``now()`` is the test's time."""

    seconds = 0.0

    @classmethod
    def now(cls, tz=None):
        return START + dt.timedelta(seconds=cls.seconds)


class BackendFailure(Exception):
    pass


class BackendTimeout(Exception):
    pass


def backend_call():
    """The guarded operation: waits to be told its outcome."""
    outcome = yield
    if outcome == FAILURE:
        raise BackendFailure
    if outcome == TIMEOUT:
        raise BackendTimeout


def oracle_admit(cb):
    try:
        call = cb.call(backend_call)
    except pybreaker.CircuitBreakerError:
        return None
    next(call)  # the call is now in flight
    return call


def oracle_finish(call, outcome):
    try:
        call.send(outcome)
    except (StopIteration, BackendFailure, BackendTimeout, pybreaker.CircuitBreakerError):
        pass


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(pybreaker, "datetime", FakeClock)
    FakeClock.seconds = 0.0
    return FakeClock


def play_random_sequence(seed: int, clock, steps: int = 250) -> tuple[int, int]:
    """One random configuration and event sequence (then every call still in
    flight answers); asserts every decision and state; returns (admissions,
    transitions) so the caller can check coverage."""
    rng = np.random.default_rng(seed)
    fail_max = int(rng.integers(1, 5))
    reset_timeout = int(rng.integers(1, 160)) * TICK
    success_threshold = int(rng.integers(1, 4))
    count_timeouts = bool(rng.random() < 0.5)
    max_in_flight = int(rng.integers(1, 6))  # 1: plain sequential pybreaker
    p_failure = rng.uniform(0.1, 0.8)

    cb = pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        success_threshold=success_threshold,
        exclude=[] if count_timeouts else [BackendTimeout],
    )
    ours = PybreakerBreaker(PybreakerBreakerConfig(fail_max=fail_max, reset_timeout=reset_timeout,
                                                   success_threshold=success_threshold, count_timeouts=count_timeouts))
    in_flight: list[tuple[object, int]] = []
    admissions = 0
    t = 0.0
    for step in range(steps + max_in_flight):
        t += int(rng.integers(0, 48)) * TICK
        clock.seconds = t
        where = f"seed {seed}, step {step}, t={t}"
        if step >= steps and not in_flight:
            break
        if in_flight and (step >= steps or len(in_flight) >= max_in_flight or rng.random() < 0.5):
            call, epoch = in_flight.pop(int(rng.integers(len(in_flight))))
            outcome = rng.choice([SUCCESS, FAILURE, TIMEOUT], p=[1 - p_failure, p_failure * 0.7, p_failure * 0.3])
            oracle_finish(call, outcome)
            ours.record(int(outcome), t, epoch, duration=0.0)
        else:
            call = oracle_admit(cb)
            admitted = ours.allow(t)
            assert admitted == (call is not None), where
            if admitted:
                admissions += 1
                in_flight.append((call, ours.epoch))
        assert ours.state is STATES[cb.current_state], where
    return admissions, len(ours.transitions)


def test_same_decisions_and_states_as_pybreaker_on_random_sequences(clock):
    admissions = transitions = 0
    for seed in range(300):
        a, n = play_random_sequence(seed, clock)
        admissions += a
        transitions += n
    # The sequences exercised the breaker, not just a closed pass-through.
    assert admissions > 10_000 and transitions > 2_000


def test_overlapping_calls_follow_the_state_they_were_admitted_in(clock):
    """pybreaker binds a call to the state object that admitted it: a success of
    a half-open probe closes the breaker even after another probe re-opened it."""
    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=1.0)
    ours = PybreakerBreaker(PybreakerBreakerConfig(fail_max=1, reset_timeout=1.0))
    events = [(0.0, "admit"), (0.0, ("finish", 0, FAILURE)), (1.0, "admit"), (1.0, "admit"),
              (1.5, ("finish", 1, FAILURE)), (1.5, ("finish", 2, SUCCESS))]
    calls, epochs = [], []
    for t, event in events:
        clock.seconds = t
        if event == "admit":
            calls.append(oracle_admit(cb))
            assert ours.allow(t) == (calls[-1] is not None)
            epochs.append(ours.epoch)
        else:
            _, index, outcome = event
            oracle_finish(calls[index], outcome)
            ours.record(outcome, t, epochs[index])
        assert ours.state is STATES[cb.current_state], (t, event)
    # Both probes passed (no half-open cap); the failed one re-opened it, the late success closed it.
    assert [tr.to_state for tr in ours.transitions] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.CLOSED]
