"""What the fast engine's gateway path takes for granted (issue 14, "Speed").

``fast.gateway_calls`` skips work that cannot change a run, and each shortcut
rests on a claim checked here:

* ``closed_is_available``: a breaker of such a preset seen CLOSED is
  available at every later instant and its ``allow`` admits with no side
  effect, until its next ``record`` / ``release`` / ``throttled``; Hystrix
  says False because a due health snapshot makes a closed breaker unavailable;
* ``RoundRobin``'s inlined path for a full candidate set is the chairman rule
  of ``_chairman_pick``, pick for pick, whatever the candidate sets before;
* ``LatencyBased`` keeps its means current: a pick is the lowest
  ``mean_latency`` (ties: the same draw);
* the compact attempt log (``fast.GatewayLog``) expands to the SimPy engine's
  attempt log, also with more than 253 deployments (its wide codes).

The runs themselves are compared with the SimPy engine in
``test_gateway_engines.py``; these tests pin the reasons.
"""

import copy
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simrouter
from simrouter.config.sections import HystrixBreakerConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState
from simrouter.policies.breakers import PRESETS, build_breaker
from simrouter.policies.routing import LatencyBased, RoundRobin, _chairman_pick

from test_breakers_available import CONFIGS, STEPS, drive

CLOSED = BreakerState.CLOSED
LATER = (0.0, 0.001, 0.7, 3.0, 50.0, 1e4)  # how long after a step a closed breaker is asked again


def snapshot(breaker):
    return breaker.state, breaker.epoch, list(breaker.transitions)


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if PRESETS[p].closed_is_available))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_closed_breaker_stays_available_until_it_records(preset, data):
    config = data.draw(CONFIGS[preset], label="config")
    seen = {"closed": 0}

    def check(t, pool, breakers):
        for breaker in breakers:
            if breaker.state is not CLOSED:
                continue
            seen["closed"] += 1
            for gap in LATER:
                assert breaker.available(t + gap), (t, gap)
                probe = copy.deepcopy(breaker)
                before = snapshot(probe)
                assert probe.allow(t + gap)
                probe.advance(t + gap)
                assert snapshot(probe) == before, (t, gap)  # no side effect, no timer-driven move

    drive(config, data.draw(st.integers(1, 3), label="hosts"), data.draw(STEPS, label="steps"), check)
    assert seen["closed"] > 0  # every breaker starts closed


def test_hystrix_closed_is_not_available_once_a_snapshot_trips_it():
    """Why Hystrix says False: CLOSED, yet a due snapshot would trip it."""
    assert PRESETS["hystrix"].closed_is_available is False
    breaker = build_breaker(HystrixBreakerConfig(request_volume_threshold=2, error_threshold_percentage=50, sleep_window=5.0,
                                                 rolling_window=1.0, health_snapshot_interval=0.5))
    assert breaker.allow(0.0)
    for t in (0.1, 0.2, 0.3):
        breaker.record(FAILURE, t)
    assert breaker.state is CLOSED
    assert not breaker.available(0.6)  # the snapshot at 0.5 saw 3 failures out of 3
    assert not breaker.allow(0.6) and breaker.state is BreakerState.OPEN


def reference_round_robin(weights):
    """``RoundRobin.pick`` as the rule states it: ``_chairman_pick`` for two or more candidates."""
    deficit = [0.0] * len(weights)

    def pick(candidates):
        return candidates[0] if len(candidates) == 1 else _chairman_pick(candidates, weights, deficit)

    return pick


@settings(max_examples=150, deadline=None)
@given(weights=st.lists(st.sampled_from([1.0, 1.0, 0.5, 2.0, 3.0, 0.1]), min_size=2, max_size=6),
       sets=st.lists(st.integers(0, 63), min_size=20, max_size=200))
def test_the_full_set_round_robin_path_is_the_chairman_rule(weights, sets):
    weights = tuple(weights)
    k = len(weights)
    strategy, reference = RoundRobin(weights), reference_round_robin(weights)
    full = tuple(range(k))
    for mask in sets:  # mask 0 (and any out of range): every deployment, the common case
        candidates = tuple(d for d in range(k) if mask >> d & 1) or full
        assert strategy.pick(candidates, 0.0) == reference(candidates), candidates


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ttl=st.sampled_from([0.5, 2.0, 60.0]), max_samples=st.sampled_from([None, 1, 3]))
def test_latency_based_picks_the_lowest_current_mean(seed, ttl, max_samples):
    rng = random.Random(seed)
    draws_a, draws_b = random.Random(seed + 1), random.Random(seed + 1)
    strategy = LatencyBased(4, draws_a.random, ttl=ttl, max_samples=max_samples)
    t = 0.0
    for _ in range(300):
        t += rng.choice([0.0, 0.01, 0.3, 1.0])
        if rng.random() < 0.6:
            strategy.answered(rng.randrange(4), t, rng.choice([0.05, 0.05, 0.2, 1.3]), rng.choice([SUCCESS, SUCCESS, FAILURE, TIMEOUT]))
            continue
        candidates = tuple(d for d in range(4) if rng.random() < 0.8) or (0, 1, 2, 3)
        picked = strategy.pick(candidates, t)
        if len(candidates) == 1:
            assert picked == candidates[0]
            continue
        means = {d: strategy.mean_latency(d, t) for d in candidates}
        lowest = min(means.values())
        tied = [d for d in candidates if means[d] == lowest]
        expected = tied[0] if len(tied) == 1 else tied[int(draws_b.random() * len(tied))]
        assert picked == expected, (t, means)


def test_a_wide_gateway_logs_every_attempt_as_the_event_engine_does():
    """300 deployments: the compact log's codes no longer fit a byte."""
    deployments = "deployments=[" + ",".join(f'{{ name = "d{i}", backend = {{ capacity = 1 }} }}' for i in range(300)) + "]"
    overrides = ["workload.rate=400", "duration=10.0", deployments, 'router.routing="round-robin"', "backend.failures.processing=0.2"]
    fast = simrouter.simulate("breaker-failure", seed=1, overrides=overrides)
    events = simrouter.simulate("breaker-failure", seed=1, overrides=overrides, engine="events")
    assert fast.deployment.max() == 299 and fast.fallbacks.sum() > 100  # wide codes and explicit rows both used
    for column in ("deployment", "sent", "done", "kind"):
        assert np.array_equal(getattr(fast.attempt_log, column), getattr(events.attempt_log, column)), column
    assert np.array_equal(fast.fallbacks, events.fallbacks) and np.array_equal(fast.deployment, events.deployment)
    assert math.isclose(fast.summary["fallbacks"]["total"], events.summary["fallbacks"]["total"])
