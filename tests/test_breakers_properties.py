"""Properties every breaker preset keeps, on random configurations and call streams.

* it never admits a call while OPEN: an admitted call leaves it CLOSED or
  HALF_OPEN, and every OPEN -> HALF_OPEN comes no earlier than the preset's wait
  after the OPEN (strictly later where the library compares strictly);
* half-open admissions never exceed the preset's probe cap;
* the transition log is a consistent, time-ordered history ending in ``state``;
* litellm and envoy (no half-open) come back CLOSED straight from OPEN, litellm
  exactly cooldown_time after the cooldown began, envoy at an interval sweep at
  least min(base_ejection_time, max_ejection_time) and at most
  max_ejection_time + interval after the ejection.

Calls overlap: each admitted call ends at a random later step, with a random
outcome, and is recorded with its epoch and its real duration.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simrouter.config import BreakerConfig, HystrixBreakerConfig, PollyBreakerConfig, PybreakerBreakerConfig, Resilience4jBreakerConfig
from simrouter.config.sections import EnvoyBreakerConfig, LiteLLMBreakerConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState, build_breaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
durations = st.floats(0.05, 4.0)

CONFIGS = {
    "default": st.builds(lambda sizes, **options: BreakerConfig(minimum_calls=sizes[0], window_size=sizes[1], **options),  # minimum_calls <= window_size
                         st.lists(st.integers(1, 6), min_size=2, max_size=2).map(sorted),
                         failure_threshold=st.integers(0, 4), failure_rate_threshold=st.sampled_from([0.25, 0.5, 1.0]), open_duration=durations,
                         half_open_max_calls=st.just(3), success_threshold=st.integers(1, 3)),
    "resilience4j": st.builds(
        Resilience4jBreakerConfig, sliding_window_type=st.sampled_from(["COUNT_BASED", "TIME_BASED"]),
        sliding_window_size=st.integers(1, 6), minimum_number_of_calls=st.integers(1, 6),
        failure_rate_threshold=st.sampled_from([25.0, 50.0, 100.0]), slow_call_rate_threshold=st.sampled_from([50.0, 100.0]),
        slow_call_duration_threshold=st.sampled_from([0.5, 2.0]), wait_duration_in_open_state=durations,
        enable_exponential_backoff=st.booleans(), exponential_backoff_multiplier=st.sampled_from([1.0, 2.0]),
        exponential_max_wait_duration_in_open_state=st.sampled_from([math.inf, 3.0]), enable_randomized_wait=st.booleans(),
        randomized_wait_factor=st.sampled_from([0.0, 0.5, 0.9]), automatic_transition_from_open_to_half_open_enabled=st.booleans(),
        permitted_number_of_calls_in_half_open_state=st.integers(1, 4), max_wait_duration_in_half_open_state=st.sampled_from([0.0, 1.5])),
    "pybreaker": st.builds(PybreakerBreakerConfig, fail_max=st.integers(1, 4), reset_timeout=durations, success_threshold=st.integers(1, 3)),
    "hystrix": st.builds(HystrixBreakerConfig, request_volume_threshold=st.integers(0, 5), error_threshold_percentage=st.sampled_from([0, 25, 50, 100]),
                         sleep_window=durations, rolling_window=st.sampled_from([1.0, 2.0, 10.0]), health_snapshot_interval=st.sampled_from([0.25, 0.5, 1.0])),
    "polly": st.builds(PollyBreakerConfig, failure_ratio=st.sampled_from([0.1, 0.5, 1.0]), minimum_throughput=st.integers(2, 5),
                       sampling_duration=st.sampled_from([0.5, 2.0, 30.0]), break_duration=st.floats(0.5, 4.0),
                       break_duration_multiplier=st.sampled_from([1.0, 2.0]), max_break_duration=st.sampled_from([math.inf, 3.0])),
    "litellm": st.builds(LiteLLMBreakerConfig, allowed_fails=st.one_of(st.none(), st.integers(0, 3)), cooldown_time=durations,
                         failure_threshold_minimum_requests=st.integers(1, 5), single_deployment_traffic_failure_threshold=st.integers(1, 8)),
    # alone in its pool: it can eject itself only with 100 % or always_eject_one_host
    "envoy": st.one_of(
        st.builds(EnvoyBreakerConfig, consecutive_5xx=st.integers(1, 4), interval=st.sampled_from([0.25, 1.0]), base_ejection_time=durations,
                  max_ejection_time=st.sampled_from([None, 4.0]), max_ejection_percent=st.just(100.0),
                  enforcing_consecutive_5xx=st.sampled_from([100.0, 50.0])),
        st.builds(EnvoyBreakerConfig, consecutive_5xx=st.integers(1, 4), interval=st.just(0.5), base_ejection_time=st.just(1.0),
                  max_ejection_time=st.just(2.0), always_eject_one_host=st.just(True))),
}

# (gap to the next step in s, a new call? else the end of in-flight call number `pick`, its outcome)
EVENTS = st.lists(st.tuples(st.floats(0.0, 2.0), st.booleans(), st.integers(0, 50), st.sampled_from([SUCCESS, FAILURE, FAILURE, TIMEOUT])),
                  min_size=30, max_size=150)


def probe_cap(config) -> float:
    return {
        "default": getattr(config, "half_open_max_calls", None),
        "resilience4j": getattr(config, "permitted_number_of_calls_in_half_open_state", None),
        "pybreaker": math.inf,  # pybreaker lets every call through in HALF_OPEN
        "hystrix": 1,
        "polly": 1,
        "litellm": 0,  # no HALF_OPEN at all
        "envoy": 0,
    }[config.preset]


def open_wait_bounds(config, history: list) -> tuple[float, float, bool]:
    """(shortest, longest, strictly after?) wait of the OPEN ending ``history``,
    the transitions up to and including it, computed from the config alone."""
    since_close = history[max((i for i, tr in enumerate(history) if tr.to_state is CLOSED), default=-1) + 1:]
    if config.preset == "default":
        return config.open_duration, math.inf, False
    if config.preset == "pybreaker":
        return config.reset_timeout, math.inf, False
    if config.preset == "hystrix":
        return config.sleep_window, math.inf, True
    if config.preset == "polly":
        probes = sum(1 for tr in since_close if tr.to_state is HALF_OPEN)
        return min(config.break_duration * config.break_duration_multiplier ** probes, config.max_break_duration), math.inf, False
    attempt = sum(1 for tr in since_close if tr.to_state is OPEN)
    wait = config.wait_duration_in_open_state
    if config.enable_exponential_backoff:
        wait = min(wait * config.exponential_backoff_multiplier ** (attempt - 1), config.exponential_max_wait_duration_in_open_state)
    factor = config.randomized_wait_factor if config.enable_randomized_wait else 0.0
    automatic = config.automatic_transition_from_open_to_half_open_enabled
    return wait * (1 - factor), (wait * (1 + factor) if automatic else math.inf), not automatic


def drive(config, events) -> None:
    breaker = build_breaker(config, np.random.default_rng(0))
    cap = probe_cap(config)
    t, in_flight, seen, probes = 0.0, [], 0, 0
    for gap, new_call, pick, outcome in events:
        t += gap
        if new_call or not in_flight:
            admitted = breaker.allow(t)
        else:
            sent, epoch = in_flight.pop(pick % len(in_flight))
            breaker.record(outcome, t, epoch, duration=t - sent)
            admitted = False
        if any(tr.to_state is HALF_OPEN for tr in breaker.transitions[seen:]):
            probes = 0
        seen = len(breaker.transitions)
        if admitted:
            in_flight.append((t, breaker.epoch))
            assert breaker.state is not OPEN, (t, breaker.transitions)
            if breaker.state is HALF_OPEN:
                probes += 1
                assert probes <= cap, (t, breaker.transitions)
    check_history(config, breaker, t)


def check_history(config, breaker, end: float) -> None:
    log = breaker.transitions
    assert all(a.t <= b.t for a, b in zip(log, log[1:]))
    assert all(a.to_state is b.from_state and a.to_state is not a.from_state for a, b in zip(log, log[1:]))
    assert (log[-1].to_state if log else CLOSED) is breaker.state
    assert all(tr.t <= end for tr in log)
    for i, tr in enumerate(log):
        if tr.to_state is HALF_OPEN:
            opened = log[i - 1]
            assert opened.to_state is OPEN
            shortest, longest, strict = open_wait_bounds(config, log[:i])
            waited = tr.t - opened.t
            assert waited >= shortest - 1e-9 and waited <= longest + 1e-9, (i, waited, shortest, longest, log)
            assert waited > shortest or not strict, (i, waited, log)
        if tr.to_state is OPEN and tr.from_state is HALF_OPEN and config.preset == "resilience4j" and config.max_wait_duration_in_half_open_state:
            assert tr.t - log[i - 1].t <= config.max_wait_duration_in_half_open_state + 1e-9
        if config.preset in ("litellm", "envoy"):
            assert tr.to_state is not HALF_OPEN and tr.from_state is not HALF_OPEN, log
            if tr.to_state is CLOSED:
                waited = tr.t - log[i - 1].t
                if config.preset == "litellm":
                    assert waited == pytest.approx(config.cooldown_time, abs=1e-9), (i, log)
                else:
                    sweeps = tr.t / config.interval
                    assert abs(sweeps - round(sweeps)) < 1e-9, (i, log)
                    assert min(config.base_ejection_time, config.ejection_time_cap) - 1e-9 <= waited <= config.ejection_time_cap + config.interval + 1e-9, (i, log)


@pytest.mark.parametrize("preset", CONFIGS)
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_preset_properties(preset, data):
    drive(data.draw(CONFIGS[preset], label="config"), data.draw(EVENTS, label="events"))


def test_the_properties_catch_a_breaker_that_ignores_its_wait():
    """The checks above can fail: a breaker that half-opens too early is caught."""

    class Eager:
        preset = "default"
        open_duration = 5.0

    class Log:
        def __init__(self, t, a, b):
            self.t, self.from_state, self.to_state = t, a, b

    class Breaker:
        state = HALF_OPEN
        transitions = [Log(1.0, CLOSED, OPEN), Log(2.0, OPEN, HALF_OPEN)]

    try:
        check_history(Eager(), Breaker(), 3.0)
    except AssertionError:
        return
    raise AssertionError("a half-open 1 s after opening with a 5 s wait went unnoticed")
