"""``available(now)`` on every preset, and the gateway properties of litellm and envoy.

* ``available(now)`` is what ``allow(now)`` would answer (asked of a deep copy),
  and asking it changes nothing (state, epoch, transitions);
* an envoy pool never has more than max_ejection_percent of its hosts ejected
  (or one, with always_eject_one_host), and the pool's count is the number of
  its breakers that are not available;
* a cooled-down (ejected) deployment is not available until its cooldown
  (ejection) ends, and is available from that instant;
* (on the SimPy engine with hedging, every call litellm and envoy admit ends in
  one record or one release: tests/test_fix_policies.py, with every preset).

Streams are random overlapping calls over a gateway of a few deployments
sharing one ``EjectionPool``; each admitted call ends at a random later step,
recorded with a random outcome or released; litellm also sees 429s (``throttled``).
"""

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simrouter
from simrouter.config import BreakerConfig, HystrixBreakerConfig, PollyBreakerConfig, PybreakerBreakerConfig, Resilience4jBreakerConfig
from simrouter.config.sections import EnvoyBreakerConfig, LiteLLMBreakerConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState
from simrouter.policies.breakers import PRESETS, EjectionPool, build_breaker

CLOSED, OPEN = BreakerState.CLOSED, BreakerState.OPEN
durations = st.floats(0.05, 4.0)
count_timeouts = st.booleans()
CONFIGS = {
    "none": st.builds(BreakerConfig, preset=st.just("none")),
    "default": st.builds(lambda sizes, **options: BreakerConfig(minimum_calls=sizes[0], window_size=sizes[1], **options),
                         st.lists(st.integers(1, 6), min_size=2, max_size=2).map(sorted),
                         failure_threshold=st.integers(0, 4), open_duration=durations, half_open_max_calls=st.integers(3, 4),
                         success_threshold=st.integers(1, 3), count_timeouts=count_timeouts),
    "resilience4j": st.builds(
        Resilience4jBreakerConfig, sliding_window_type=st.sampled_from(["COUNT_BASED", "TIME_BASED"]),
        sliding_window_size=st.integers(1, 6), minimum_number_of_calls=st.integers(1, 6),
        failure_rate_threshold=st.sampled_from([25.0, 50.0, 100.0]), wait_duration_in_open_state=durations,
        enable_exponential_backoff=st.booleans(), exponential_backoff_multiplier=st.sampled_from([1.0, 2.0]),
        enable_randomized_wait=st.booleans(), randomized_wait_factor=st.sampled_from([0.0, 0.5]),
        automatic_transition_from_open_to_half_open_enabled=st.booleans(),
        permitted_number_of_calls_in_half_open_state=st.integers(1, 4), max_wait_duration_in_half_open_state=st.sampled_from([0.0, 1.5]),
        count_timeouts=count_timeouts),
    "pybreaker": st.builds(PybreakerBreakerConfig, fail_max=st.integers(1, 4), reset_timeout=durations, count_timeouts=count_timeouts),
    "hystrix": st.builds(HystrixBreakerConfig, request_volume_threshold=st.integers(0, 5), error_threshold_percentage=st.sampled_from([0, 25, 50]),
                         sleep_window=durations, rolling_window=st.sampled_from([1.0, 2.0]), health_snapshot_interval=st.sampled_from([0.25, 0.5]),
                         count_timeouts=count_timeouts),
    "polly": st.builds(PollyBreakerConfig, failure_ratio=st.sampled_from([0.1, 0.5, 1.0]), minimum_throughput=st.integers(2, 5),
                       sampling_duration=st.sampled_from([0.5, 2.0]), break_duration=st.floats(0.5, 4.0), count_timeouts=count_timeouts),
    "litellm": st.builds(LiteLLMBreakerConfig, allowed_fails=st.one_of(st.none(), st.integers(0, 3)), cooldown_time=durations,
                         failure_threshold_minimum_requests=st.integers(1, 5), single_deployment_traffic_failure_threshold=st.integers(1, 8),
                         count_timeouts=count_timeouts),
    "envoy": st.builds(EnvoyBreakerConfig, consecutive_5xx=st.integers(1, 4), interval=st.sampled_from([0.25, 1.0]), base_ejection_time=durations,
                       max_ejection_time=st.sampled_from([None, 4.0]), max_ejection_percent=st.sampled_from([0.0, 10.0, 34.0, 50.0, 100.0]),
                       always_eject_one_host=st.booleans(), enforcing_consecutive_5xx=st.sampled_from([100.0, 50.0]),
                       count_timeouts=count_timeouts),
}
assert set(CONFIGS) == set(PRESETS)  # every preset is covered

# (gap to the next step in s, action, deployment, in-flight call number, outcome)
STEPS = st.lists(st.tuples(st.floats(0.0, 1.5), st.sampled_from(["call", "call", "record", "record", "record", "release", "throttled"]),
                           st.integers(0, 9), st.integers(0, 50), st.sampled_from([SUCCESS, FAILURE, FAILURE, TIMEOUT])),
                 min_size=30, max_size=150)


def gateway(config, hosts: int):
    pool = EjectionPool(hosts)
    return pool, [build_breaker(config, np.random.default_rng(seed), pool) for seed in range(hosts)]


def snapshot(breaker):
    return breaker.state, breaker.epoch, list(breaker.transitions)


def check_available(breaker, t: float) -> bool:
    """available(t) == a copy's allow(t), and asking it changed nothing."""
    before = snapshot(breaker)
    answer = breaker.available(t)
    assert snapshot(breaker) == before, (t, before)
    expected = copy.deepcopy(breaker).allow(t)
    assert answer is expected, (t, answer, breaker.transitions)
    return answer


def drive(config, hosts: int, steps, on_step=None) -> None:
    pool, breakers = gateway(config, hosts)
    t, in_flight = 0.0, [[] for _ in breakers]
    for gap, action, host, pick, outcome in steps:
        t += gap
        host %= hosts
        breaker = breakers[host]
        for each in breakers:
            check_available(each, t)
        if action == "throttled":
            breaker.throttled(t)
        elif action == "call" or not in_flight[host]:
            if breaker.allow(t):
                in_flight[host].append((t, breaker.epoch))
        else:
            sent, epoch = in_flight[host].pop(pick % len(in_flight[host]))
            if action == "record":
                breaker.record(outcome, t, epoch, duration=t - sent)
            else:
                breaker.release(epoch, t)
        if on_step is not None:
            on_step(t, pool, breakers)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_available_is_what_allow_would_answer_and_changes_nothing(preset, data):
    config = data.draw(CONFIGS[preset], label="config")
    drive(config, data.draw(st.integers(1, 3), label="hosts"), data.draw(STEPS, label="steps"))


def ejection_bound(hosts: int, percent: float, always_one: bool) -> int:
    """The most hosts Envoy lets be ejected: n with 100 * n / hosts <= percent (one more if none otherwise)."""
    allowed = max((n for n in range(hosts + 1) if 100.0 * n / hosts <= percent), default=0)
    return max(allowed, 1) if always_one else allowed


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_an_envoy_pool_never_ejects_more_than_max_ejection_percent(data):
    config = data.draw(CONFIGS["envoy"], label="config")
    hosts = data.draw(st.integers(1, 10), label="hosts")
    bound = ejection_bound(hosts, config.max_ejection_percent, config.always_eject_one_host)

    def check(t, pool, breakers):
        ejected = pool.ejected(t)
        assert ejected <= bound, (t, ejected, bound)
        assert ejected == sum(not breaker.available(t) for breaker in breakers)

    drive(config, hosts, data.draw(STEPS, label="steps"), check)


@pytest.mark.parametrize("hosts, percent, always_one, ejected", [
    (10, 10.0, False, 1),  # 100 * 1 / 10 <= 10
    (3, 10.0, False, 0),  # Envoy's default 10 % in a pool of 3: 33 % > 10 %, nobody
    (3, 10.0, True, 1),  # always_eject_one_host: the first one regardless
    (3, 50.0, False, 1),  # 33 % <= 50 % < 67 %
    (4, 50.0, False, 2),
    (5, 100.0, False, 5),
])
def test_the_pool_bound_is_reached_when_every_host_fails(hosts, percent, always_one, ejected):
    """The property above can fail: with every host failing, exactly the bound is ejected."""
    pool, breakers = gateway(EnvoyBreakerConfig(max_ejection_percent=percent, always_eject_one_host=always_one), hosts)
    for i in range(5):
        for breaker in breakers:
            breaker.record(FAILURE, 1.0 + i)
    assert pool.ejected(6.0) == ejected == ejection_bound(hosts, percent, always_one)
    assert sum(breaker.state is OPEN for breaker in breakers) == ejected


@pytest.mark.parametrize("preset", ["litellm", "envoy"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_cooled_down_deployment_is_unavailable_until_its_cooldown_ends(preset, data):
    config = data.draw(CONFIGS[preset], label="config")
    seen = {"open": 0}

    def check(t, pool, breakers):
        for breaker in breakers:
            until = breaker.cooldown_until if preset == "litellm" else breaker.ejected_until
            if until is None or until <= t:
                continue
            seen["open"] += 1
            for probe in (t, (t + until) / 2, math.nextafter(until, -math.inf)):
                assert not breaker.available(probe), (probe, until)
            assert breaker.available(until)
            assert copy.deepcopy(breaker).allow(until)

    drive(config, data.draw(st.integers(1, 3), label="hosts"), data.draw(STEPS, label="steps"), check)


def test_the_cooldown_property_is_exercised():
    """Random streams do cool deployments down (else the property above is empty)."""
    rng = np.random.default_rng(3)
    actions = ["call", "call", "record", "record", "record", "release", "throttled"]
    configs = {"litellm": LiteLLMBreakerConfig(allowed_fails=1, cooldown_time=1.0),
               "envoy": EnvoyBreakerConfig(consecutive_5xx=2, interval=0.5, base_ejection_time=1.0, max_ejection_percent=50.0)}
    for preset, config in configs.items():
        steps = [(float(rng.uniform(0, 0.3)), actions[rng.integers(7)], int(rng.integers(10)), int(rng.integers(50)),
                  [SUCCESS, FAILURE, FAILURE, TIMEOUT][rng.integers(4)]) for _ in range(400)]
        trips = []
        drive(config, 2, steps, lambda t, pool, breakers: trips.append(sum(b.trips for b in breakers)))
        assert trips[-1] >= 5, preset
