"""Routing strategies as clock-free policies (simrouter.policies.routing): shares,
tie-breaking, TTL and minute windows, P2C, determinism, and that a strategy only
ever returns a candidate."""

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simrouter import ConfigError
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies.routing import NO_ANSWER, ROUTING_STRATEGIES, TIMEOUT_PENALTY, RoutingStrategy, build_routing


class CountingUniform:
    """A seeded U[0, 1) stream that counts its draws."""

    def __init__(self, seed: int = 0):
        self._random = random.Random(seed).random
        self.draws = 0

    def __call__(self) -> float:
        self.draws += 1
        return self._random()


def no_draw() -> float:
    raise AssertionError("this pick must not draw")


def shares_bound(n: int, p: float, sigmas: float = 4.0) -> float:
    """Half-width of a binomial count around n p: ``sigmas`` standard deviations."""
    return sigmas * math.sqrt(n * p * (1 - p))


# --- round-robin --------------------------------------------------------------


def test_round_robin_with_equal_weights_is_the_cyclic_order():
    rr = build_routing("round-robin", [1.0] * 4, no_draw)
    assert [rr.pick((0, 1, 2, 3), 0.0) for _ in range(10)] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.one_of(st.integers(1, 9).map(float), st.floats(0.01, 100.0)), min_size=2, max_size=8))
def test_round_robin_shares_are_exact_within_one_at_every_pick(weights):
    rr = build_routing("round-robin", weights, no_draw)
    k = len(weights)
    total = sum(weights)
    counts = [0] * k
    candidates = tuple(range(k))
    bound = 1 - 1 / (2 * k - 2)  # Tijdeman's chairman bound, < 1
    for n in range(1, 1001):
        counts[rr.pick(candidates, 0.0)] += 1
        for i in range(k):
            assert abs(counts[i] - n * weights[i] / total) <= bound + 1e-7, (n, i, counts)


def test_round_robin_uneven_weights_8_8_4_2_over_one_cycle_and_many():
    rr = build_routing("round-robin", [8, 8, 4, 2], no_draw)
    picks = [rr.pick((0, 1, 2, 3), 0.0) for _ in range(22 * 50)]
    assert [picks[:22].count(i) for i in range(4)] == [8, 8, 4, 2]  # a full cycle: exact
    assert [picks.count(i) for i in range(4)] == [400, 400, 200, 100]


def test_round_robin_rotation_continues_over_the_others_when_one_is_skipped():
    rr = build_routing("round-robin", [1.0] * 4, no_draw)
    assert [rr.pick((0, 1, 2, 3), 0.0) for _ in range(5)] == [0, 1, 2, 3, 0]
    during = [rr.pick((0, 2, 3), 0.0) for _ in range(300)]  # deployment 1 cooled down
    assert 1 not in during
    assert all(abs(during.count(d) - 100) <= 1 for d in (0, 2, 3))  # the others share it evenly
    assert during[:3] == [2, 3, 0]  # and in rotation: no one gets two in a row
    back = [rr.pick((0, 1, 2, 3), 0.0) for _ in range(400)]
    assert all(abs(back.count(d) - 100) <= 2 for d in range(4))  # 1 gets its share back


def test_round_robin_renormalises_over_the_candidates():
    rr = build_routing("round-robin", [8, 8, 4, 2], no_draw)
    picks = [rr.pick((1, 2, 3), 0.0) for _ in range(1400)]
    assert [picks.count(d) for d in (1, 2, 3)] == [800, 400, 200]


# --- simple-shuffle ----------------------------------------------------------


@pytest.mark.parametrize("weights", [[1, 1, 1, 1], [8, 8, 4, 2], [0.3, 5.0, 1.7]])
def test_simple_shuffle_shares_match_the_weights_within_a_binomial_bound(weights):
    uniform = CountingUniform(11)
    shuffle = build_routing("simple-shuffle", weights, uniform)
    n = 20_000
    candidates = tuple(range(len(weights)))
    counts = np.bincount([shuffle.pick(candidates, 0.0) for _ in range(n)], minlength=len(weights))
    assert uniform.draws == n  # one draw per pick
    total = sum(weights)
    for i, w in enumerate(weights):
        assert abs(counts[i] - n * w / total) <= shares_bound(n, w / total), (i, counts)


def test_simple_shuffle_renormalises_over_the_candidates_and_skips_a_sole_one():
    uniform = CountingUniform(5)
    shuffle = build_routing("simple-shuffle", [8, 8, 4, 2], uniform)
    n = 20_000
    counts = np.bincount([shuffle.pick((1, 3), 0.0) for _ in range(n)], minlength=4)
    assert counts[0] == counts[2] == 0
    assert abs(counts[1] - n * 0.8) <= shares_bound(n, 0.8)  # 8 / (8 + 2)
    draws = uniform.draws
    assert shuffle.pick((2,), 0.0) == 2 and uniform.draws == draws  # no choice, no draw


# --- least-busy ---------------------------------------------------------------


def test_least_busy_picks_the_fewest_in_flight_without_a_draw():
    busy = build_routing("least-busy", [1.0] * 4, no_draw)
    for d, n in ((0, 3), (1, 1), (2, 2), (3, 5)):
        for _ in range(n):
            busy.sent(d, 0.0)
    assert busy.pick((0, 1, 2, 3), 1.0) == 1
    assert busy.pick((0, 2, 3), 1.0) == 2  # the least busy among the candidates
    for _ in range(3):
        busy.answered(0, 2.0, 1.0, SUCCESS)  # 0 drains: now the least busy
    assert busy.pick((0, 1, 2, 3), 2.0) == 0
    busy.sent(0, 2.0)
    busy.sent(0, 2.0)
    busy.answered(0, 3.0, 0.0, NO_ANSWER)  # a cancelled copy leaves the count too
    assert busy.in_flight(0) == 1


def test_least_busy_breaks_ties_evenly_with_one_draw():
    uniform = CountingUniform(3)
    busy = build_routing("least-busy", [1.0] * 4, uniform)
    busy.sent(2, 0.0)  # 0, 1 and 3 tie at 0
    n = 12_000
    counts = np.bincount([busy.pick((0, 1, 2, 3), 1.0) for _ in range(n)], minlength=4)
    assert uniform.draws == n
    assert counts[2] == 0
    for d in (0, 1, 3):
        assert abs(counts[d] - n / 3) <= shares_bound(n, 1 / 3)


# --- latency-based -----------------------------------------------------------


def test_latency_based_forgets_samples_older_than_the_ttl():
    lat = build_routing("latency-based", [1.0, 1.0], no_draw, latency_ttl=60.0)
    lat.answered(0, 0.0, 5.0, SUCCESS)
    lat.answered(1, 10.0, 1.0, SUCCESS)
    lat.answered(0, 30.0, 0.1, SUCCESS)
    assert lat.mean_latency(0, 50.0) == pytest.approx(2.55)
    assert lat.pick((0, 1), 50.0) == 1  # 1.0 < (5.0 + 0.1) / 2
    assert lat.pick((0, 1), 59.999) == 1
    assert lat.pick((0, 1), 60.0) == 0  # the 5.0 of t = 0 no longer counts: 0.1 < 1.0
    assert lat.mean_latency(0, 60.0) == pytest.approx(0.1)
    assert lat.mean_latency(1, 70.0) == 0.0  # no sample left: counts as 0 ...
    assert lat.pick((0, 1), 70.0) == 1  # ... so it is tried again


def test_latency_based_counts_a_timeout_as_litellms_penalty_and_ignores_other_failures():
    lat = build_routing("latency-based", [1.0, 1.0, 1.0], no_draw)
    lat.answered(0, 1.0, 2.0, SUCCESS)
    lat.answered(0, 1.0, 5.0, TIMEOUT)
    lat.answered(1, 1.0, 3.0, SUCCESS)
    lat.answered(1, 1.0, 0.01, FAILURE)  # a fast failure is no sample
    lat.answered(2, 1.0, 0.5, SUCCESS)
    lat.answered(2, 1.0, 0.0, NO_ANSWER)
    assert lat.mean_latency(0, 2.0) == pytest.approx((2.0 + TIMEOUT_PENALTY) / 2)
    assert lat.mean_latency(1, 2.0) == pytest.approx(3.0)
    assert lat.mean_latency(2, 2.0) == pytest.approx(0.5)
    assert lat.pick((0, 1), 2.0) == 1
    assert lat.pick((0, 1, 2), 2.0) == 2


def test_latency_based_tries_unused_deployments_first_at_random():
    uniform = CountingUniform(9)
    lat = build_routing("latency-based", [1.0] * 3, uniform)
    lat.answered(0, 0.0, 0.2, SUCCESS)
    n = 6000
    counts = np.bincount([lat.pick((0, 1, 2), 1.0) for _ in range(n)], minlength=3)
    assert counts[0] == 0 and uniform.draws == n
    assert abs(counts[1] - n / 2) <= shares_bound(n, 0.5)


# --- usage-based -------------------------------------------------------------


def test_usage_based_counts_requests_in_the_current_minute_and_resets_at_its_end():
    uniform = CountingUniform(1)
    usage = build_routing("usage-based", [1.0] * 3, uniform)
    for d, n in ((0, 3), (1, 1), (2, 2)):
        for _ in range(n):
            usage.sent(d, 59.0)
    assert usage.pick((0, 1, 2), 59.99) == 1 and uniform.draws == 0
    assert usage.usage(0, 59.99) == 3
    assert usage.pick((0, 1, 2), 60.0) in (0, 1, 2) and uniform.draws == 1  # new minute: all 0, a tie
    assert [usage.usage(d, 60.0) for d in range(3)] == [0, 0, 0]
    usage.sent(1, 61.0)
    usage.sent(2, 61.0)
    assert usage.pick((0, 1, 2), 119.0) == 0
    assert usage.usage(1, 185.0) == 0  # several minutes later: still reset


def test_usage_based_counts_tokens_when_the_sends_carry_them():
    usage = build_routing("usage-based", [1.0, 1.0], no_draw)
    usage.sent(0, 1.0, tokens=1000)
    for _ in range(3):
        usage.sent(1, 1.0, tokens=10)
    assert usage.usage(0, 1.0) == 1000 and usage.usage(1, 1.0) == 30
    assert usage.pick((0, 1), 2.0) == 1  # fewer tokens, though more requests


# --- power-of-two ------------------------------------------------------------


def test_power_of_two_with_two_candidates_always_takes_the_less_busy():
    p2c = build_routing("power-of-two", [1.0] * 3, CountingUniform(4))
    p2c.sent(0, 0.0)
    p2c.sent(0, 0.0)
    p2c.sent(2, 0.0)
    assert all(p2c.pick((0, 2), 1.0) == 2 for _ in range(200))  # both are always the sample
    assert p2c.pick((0,), 1.0) == 0


def test_power_of_two_never_picks_the_busier_of_the_two_sampled():
    # Three candidates with 0, 5 and 9 in flight: the pair is one of the 3 equally
    # likely pairs; the least busy is in 2 of them, the middle one wins only the
    # pair {5, 9}, the busiest none.
    uniform = CountingUniform(8)
    p2c = build_routing("power-of-two", [1.0] * 3, uniform)
    for d, n in ((0, 0), (1, 5), (2, 9)):
        for _ in range(n):
            p2c.sent(d, 0.0)
    n = 15_000
    counts = np.bincount([p2c.pick((0, 1, 2), 1.0) for _ in range(n)], minlength=3)
    assert uniform.draws == 2 * n
    assert counts[2] == 0
    assert abs(counts[0] - n * 2 / 3) <= shares_bound(n, 2 / 3)
    draws = uniform.draws
    assert p2c.pick((1,), 1.0) == 1 and uniform.draws == draws  # one candidate: no draw


def test_power_of_two_breaks_a_tie_evenly():
    p2c = build_routing("power-of-two", [1.0] * 4, CountingUniform(2))
    n = 20_000
    counts = np.bincount([p2c.pick((0, 1, 2, 3), 0.0) for _ in range(n)], minlength=4)
    for d in range(4):
        assert abs(counts[d] - n / 4) <= shares_bound(n, 1 / 4)


def test_power_of_two_with_unequal_weights_uses_envoys_load_adjusted_weights():
    # weight / (active + 1): 2 / (3 + 1) = 0.5 against 1 / (0 + 1) = 1
    p2c = build_routing("power-of-two", [2.0, 1.0], no_draw)
    for _ in range(3):
        p2c.sent(0, 0.0)
    picks = [p2c.pick((0, 1), 1.0) for _ in range(300)]
    assert picks.count(0) == 100 and picks.count(1) == 200
    for _ in range(3):
        p2c.answered(0, 2.0, 1.0, SUCCESS)  # idle again: the configured 2 : 1
    picks = [p2c.pick((0, 1), 2.0) for _ in range(300)]
    assert abs(picks.count(0) - 200) <= 1


# --- every strategy ----------------------------------------------------------


def drive(strategy: RoutingStrategy, ops) -> list[int]:
    """Run a sequence of (candidates, dt, answer_first, tokens, latency, outcome) steps;
    each step may answer the oldest attempt in flight, then picks and sends."""
    now = 0.0
    in_flight = []
    picks = []
    for candidates, dt, answer_first, tokens, latency, outcome in ops:
        now += dt
        if answer_first and in_flight:
            d, _ = in_flight.pop(0)
            strategy.answered(d, now, latency, outcome)
        d = strategy.pick(candidates, now)
        assert d in candidates, (strategy.name, candidates, d)
        picks.append(d)
        strategy.sent(d, now, tokens)
        in_flight.append((d, now))
    return picks


WEIGHTS = st.lists(st.sampled_from([1.0, 2.0, 0.5, 3.7]), min_size=1, max_size=6)


@st.composite
def scenarios(draw):
    weights = draw(WEIGHTS)
    k = len(weights)
    subsets = st.sets(st.integers(0, k - 1), min_size=1).map(lambda s: tuple(sorted(s)))
    step = st.tuples(
        subsets,
        st.sampled_from([0.0, 0.01, 1.0, 30.0, 61.0]),
        st.booleans(),
        st.sampled_from([0, 0, 7, 300]),
        st.floats(0.0, 10.0),
        st.sampled_from([SUCCESS, TIMEOUT, FAILURE, NO_ANSWER]),
    )
    return weights, draw(st.lists(step, min_size=1, max_size=60))


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(), name=st.sampled_from(ROUTING_STRATEGIES), seed=st.integers(0, 2**32 - 1))
def test_every_strategy_returns_a_candidate_and_is_determined_by_its_stream(scenario, name, seed):
    weights, ops = scenario
    first = drive(build_routing(name, weights, random.Random(seed).random, latency_ttl=45.0), ops)
    again = drive(build_routing(name, weights, random.Random(seed).random, latency_ttl=45.0), ops)
    assert first == again


@pytest.mark.parametrize("name", ROUTING_STRATEGIES)
def test_every_strategy_is_built_by_name_and_takes_a_sole_candidate_without_a_draw(name):
    strategy = build_routing(name, [1.0, 2.0, 3.0], no_draw)
    assert strategy.name == name
    assert isinstance(strategy, RoutingStrategy)
    assert strategy.pick((1,), 0.0) == 1


def test_bad_input_is_one_config_error_naming_the_field():
    with pytest.raises(ConfigError) as error:
        build_routing("least-latency", [1.0], no_draw)
    assert error.value.field == "router.routing" and "latency-based" in error.value.message
    with pytest.raises(ConfigError) as error:
        build_routing("round-robin", [1.0, 0.0], no_draw)
    assert error.value.field == "deployments.1.weight"
    with pytest.raises(ConfigError) as error:
        build_routing("round-robin", [1.0, float("nan")], no_draw)
    assert error.value.field == "deployments.1.weight"
    with pytest.raises(ConfigError) as error:
        build_routing("round-robin", [], no_draw)
    assert error.value.field == "deployments"
    with pytest.raises(ConfigError) as error:
        build_routing("latency-based", [1.0], no_draw, latency_ttl=0.0)
    assert error.value.field == "router.latency_ttl"


def test_the_config_accepts_exactly_these_strategies():
    from simrouter.config.sections import ROUTING_CHOICES

    assert tuple(ROUTING_CHOICES) == ROUTING_STRATEGIES


def test_latency_based_can_keep_only_the_latest_samples_as_litellm():
    from simrouter.policies.routing import LatencyBased

    lat = LatencyBased(2, no_draw, ttl=60.0, max_samples=2)
    for t, latency in ((0.0, 9.0), (1.0, 1.0), (2.0, 3.0)):
        lat.answered(0, t, latency, SUCCESS)
    assert lat.mean_latency(0, 2.0) == pytest.approx(2.0)  # the 9.0 made room for 3.0
    lat.answered(1, 2.0, 2.5, SUCCESS)
    assert lat.pick((0, 1), 2.0) == 0
