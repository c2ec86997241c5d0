"""The limiters against the libraries they mirror, hand-computed sequences, and
their admission bounds.

* Differential tests: the ``limits`` package (PyPI) with its in-memory storage is
  the oracle for ``sliding_window_log`` (its moving window),
  ``fixed_window`` with ``align = "first_request"`` (its fixed window) and
  ``sliding_window_counter``. Its clock is replaced by the test's (``time.time``
  inside ``limits.storage.memory``) and its background expiry thread is not
  started, so both see identical event sequences; every decision must agree.
* GCRA (redis-cell) and nginx's leaky bucket: sequences computed by hand from
  their published rules.
* Hypothesis properties: no limiter admits more than its bound in any window.
"""

import math
import re
import threading
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simrouter
from simrouter import ConfigError, load_scenario
from simrouter.config import LimiterConfig
from simrouter.policies import (
    GCRA,
    ConcurrencyLimit,
    FixedWindow,
    LeakyBucket,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    build_limiter,
)

limits = pytest.importorskip("limits")
import limits.storage.memory as limits_memory  # noqa: E402
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter  # noqa: E402


# ---------------------------------------------------------------- differential tests against `limits`


class _NoTimer:
    """Stands in for the storage's background expiry thread (never started)."""

    def __init__(self, *args, **kwargs):
        pass

    def start(self):
        pass

    def is_alive(self):
        return True


@pytest.fixture
def oracle_clock(monkeypatch):
    """A settable clock for `limits`' memory storage, and no expiry thread."""
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(limits_memory, "time", types.SimpleNamespace(time=lambda: clock.now))
    monkeypatch.setattr(limits_memory, "threading", types.SimpleNamespace(Timer=_NoTimer, RLock=threading.RLock))
    return clock


def arrival_times(rng: np.random.Generator, n: int, size: int) -> list[float]:
    """Arrivals that hit the awkward cases: simultaneous requests, exact window
    boundaries and quarter-window grid points, and continuous gaps. Times start
    at 1000 s: `limits` derives the previous window's key as int((t - W) / W),
    which is only meaningful for t >= W (real clocks read ~1.7e9)."""
    t = 1000.0
    times = []
    for _ in range(n):
        choice = rng.integers(0, 4)
        if choice == 1:
            t = math.floor(t / size * 4 + 1) * size / 4  # next quarter-window grid point
        elif choice == 2:
            t += rng.exponential(size / 8)
        elif choice == 3:
            t += rng.exponential(size)
        times.append(t)  # choice 0: same instant as the previous request
    return times


ORACLE_CASES = [
    ("moving_window", MovingWindowRateLimiter, lambda size, limit: SlidingWindowLog(size, limit)),
    ("fixed_window", FixedWindowRateLimiter, lambda size, limit: FixedWindow(size, limit, align="first_request")),
    ("sliding_window_counter", SlidingWindowCounterRateLimiter, lambda size, limit: SlidingWindowCounter(size, limit)),
]


@pytest.mark.parametrize("name, strategy, ours", ORACLE_CASES, ids=[c[0] for c in ORACLE_CASES])
def test_same_decisions_as_the_limits_package(name, strategy, ours, oracle_clock):
    rng = np.random.default_rng(20240611)
    sequences = decisions = rejected = 0
    for sequence in range(150):
        size = int(rng.choice([1, 2, 4]))  # limits' windows are whole seconds
        limit = int(rng.integers(1, 8))
        item = limits.RateLimitItemPerSecond(limit, size)
        oracle = strategy(limits.storage.MemoryStorage())
        mine = ours(float(size), limit)
        for step, now in enumerate(arrival_times(rng, 200, size)):
            oracle_clock.now = now
            expected = oracle.hit(item, "user")
            assert mine.try_acquire(now) is expected, (name, sequence, step, now, size, limit)
            rejected += not expected
            decisions += 1
        sequences += 1
    assert sequences == 150 and decisions == 30_000
    assert 0.2 < rejected / decisions < 0.8  # the sequences exercise both decisions


# ---------------------------------------------------------------- hand-computed sequences


def test_gcra_hand_computed_redis_cell_sequence():
    # rate 2/s: emission interval T = 0.5 s; burst 2: tolerance tau = T * (2 + 1) = 1.5 s.
    gcra = GCRA(rate=2.0, burst=2)
    steps = [
        # (now, retry_after (0: admitted), theoretical arrival time after)
        (0.0, 0.0, 0.5),  # tat = max(0, 0) + 0.5; 0.5 - 1.5 <= 0: admit
        (0.0, 0.0, 1.0),
        (0.0, 0.0, 1.5),  # burst + 1 = 3 admitted at once, as redis-cell's max_burst
        (0.0, 0.5, 1.5),  # new 2.0 - 1.5 = 0.5 > 0: reject, retry after 0.5 s
        (0.5, 0.0, 2.0),  # new 2.0 - 1.5 = 0.5 <= 0.5: admit
        (0.6, 0.4, 2.0),  # new 2.5 - 1.5 = 1.0 > 0.6: retry after 0.4 s
        (3.0, 0.0, 3.5),  # idle: tat = max(2.0, 3.0) + 0.5
    ]
    for now, retry_after, tat in steps:
        assert gcra.throttle(now) == pytest.approx(retry_after), now
        assert gcra._tat == pytest.approx(tat), now
    assert gcra.remaining(3.0) == 2  # (tau - (tat - now)) / T = (1.5 - 0.5) / 0.5
    assert GCRA(rate=2.0, burst=2).remaining(0.0) == 3


# nginx limit_req, rate=2r/s (2000 thousandths per second), burst=2.
# (now s, admitted, excess after in requests, delay s with delay=0, delay s with delay=1)
NGINX_STEPS = [
    (0.000, True, 0.0, 0.0, 0.0),  # a new key starts with excess 0: never delayed
    (0.000, True, 1.0, 0.5, 0.0),  # excess 1000 -> delay 1000 * 1000 // 2000 = 500 ms
    (0.000, True, 2.0, 1.0, 0.5),  # excess 2000 = burst: admitted, delayed 1 s (delay=1: 0.5 s)
    (0.000, False, 2.0, None, None),  # 3000 > burst: rejected, state unchanged
    (0.250, False, 2.0, None, None),  # 2000 - 2000 * 250 // 1000 + 1000 = 2500 > 2000
    (0.500, True, 2.0, 1.0, 0.5),  # 2000 - 1000 + 1000 = 2000 (last was still 0.000)
    (2.0004, True, 0.0, 0.0, 0.0),  # ms 2000: 2000 - 3000 + 1000 = 0
    (2.0009, True, 1.0, 0.5, 0.0),  # still ms 2000 (integer ms clock): 0 - 0 + 1000
]


@pytest.mark.parametrize("mode", ["delay=0", "delay=1", "nodelay"])
def test_leaky_bucket_hand_computed_nginx_sequence(mode):
    bucket = LeakyBucket(rate=2.0, burst=2, nodelay=mode == "nodelay", delay=1 if mode == "delay=1" else 0)
    assert bucket.delays is (mode != "nodelay")
    for now, admitted, excess, delay0, delay1 in NGINX_STEPS:
        got = bucket.acquire(now)
        assert (got is not None) is admitted, now
        assert bucket.excess() == pytest.approx(excess), now
        if admitted:
            expected = {"delay=0": delay0, "delay=1": delay1, "nodelay": 0.0}[mode]
            assert got == pytest.approx(expected), now


def test_fixed_window_clock_alignment_allows_2n_across_a_boundary():
    window = FixedWindow(size=1.0, limit=3)  # align = "clock": windows [k, k + 1)
    assert [window.try_acquire(0.9) for _ in range(4)] == [True, True, True, False]
    assert [window.try_acquire(1.0) for _ in range(4)] == [True, True, True, False]  # 6 within 0.1 s
    first = FixedWindow(size=1.0, limit=3, align="first_request")
    assert [first.try_acquire(0.9) for _ in range(4)] == [True, True, True, False]
    assert not first.try_acquire(1.0) and first.try_acquire(1.9)  # its window is [0.9, 1.9)


def test_concurrency_limit_counts_in_flight_and_releases():
    cap = ConcurrencyLimit(2)
    assert cap.try_acquire(0.0) and cap.try_acquire(0.0) and not cap.try_acquire(0.1)
    cap.release(0.2)
    assert cap.try_acquire(0.3) and cap.in_flight == 2
    with pytest.raises(RuntimeError):
        ConcurrencyLimit(1).release(0.0)


def test_scopes_for_every_algorithm():
    for algorithm, keys in [("gcra", {"burst": 0}), ("leaky_bucket", {"nodelay": True}), ("sliding_window_log", {"limit": 1}),
                            ("sliding_window_counter", {"limit": 1}), ("fixed_window", {"limit": 1}), ("concurrency", {"max_in_flight": 1})]:
        per_user = build_limiter(LimiterConfig(algorithm=algorithm, scope="per_user", **keys))
        assert per_user.try_acquire("a", 0.0) and per_user.try_acquire("b", 0.0), algorithm
        assert not per_user.try_acquire("a", 0.0), algorithm
        shared = build_limiter(LimiterConfig(algorithm=algorithm, scope="global", **keys))
        assert shared.try_acquire("a", 0.0) and not shared.try_acquire("b", 0.0), algorithm
    assert build_limiter(LimiterConfig(algorithm="concurrency")).holds
    assert build_limiter(LimiterConfig(algorithm="leaky_bucket")).delays
    assert not build_limiter(LimiterConfig(algorithm="leaky_bucket", nodelay=True)).delays


# ---------------------------------------------------------------- admission bounds (hypothesis)


def most_in_any_window(times: list[float], length: float) -> int:
    """The most admissions inside any closed window [a, a + length] (a window
    starting at an admission is the worst case)."""
    t = np.asarray(times)
    if t.size == 0:
        return 0
    return int((np.searchsorted(t, t + length, side="right") - np.arange(t.size)).max())


gaps = st.lists(st.one_of(st.just(0.0), st.floats(0.0, 0.05), st.floats(0.0, 2.0)), min_size=1, max_size=300)
rates = st.floats(0.5, 50.0)
bursts = st.integers(0, 12)
sizes = st.sampled_from([0.1, 0.25, 1.0, 3.0])
limits_n = st.integers(1, 12)
windows = st.lists(st.floats(0.01, 10.0), min_size=1, max_size=4)
EPS = 1e-9


def admitted_times(limit, gaps_s):
    now, admitted = 0.0, []
    for gap in gaps_s:
        now += gap
        if limit.try_acquire(now):
            admitted.append(now)
    return admitted


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, rate=rates, burst=st.integers(1, 12), lengths=windows)
def test_token_bucket_bound(gaps, rate, burst, lengths):
    times = admitted_times(TokenBucket(rate, burst), gaps)
    for length in lengths:  # the bucket holds at most `burst`, and refills rate * T in T
        assert most_in_any_window(times, length) <= rate * length + burst + EPS


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, rate=rates, burst=bursts, lengths=windows)
def test_gcra_bound(gaps, rate, burst, lengths):
    times = admitted_times(GCRA(rate, burst), gaps)
    for length in lengths:  # redis-cell's burst is max_burst: one more passes at once
        assert most_in_any_window(times, length) <= rate * length + burst + 1 + EPS


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, rate=rates, burst=bursts, nodelay=st.booleans(), lengths=windows)
def test_leaky_bucket_bound(gaps, rate, burst, nodelay, lengths):
    bucket = LeakyBucket(rate, burst, nodelay=nodelay)
    drain = max(rate, round(rate * 1000) / 1000)  # nginx drains at its integer rate in thousandths
    times = admitted_times(bucket, gaps)
    for length in lengths:  # the first request finds excess 0; nginx's clock truncates to 1 ms
        assert most_in_any_window(times, length) <= drain * (length + 0.001) + burst + 1 + EPS


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, size=sizes, limit=limits_n, lengths=windows)
def test_sliding_window_log_bound(gaps, size, limit, lengths):
    times = admitted_times(SlidingWindowLog(size, limit), gaps)
    for length in lengths:  # exact: `limit` per closed window of `size`, so limit * ceil(T / size)
        assert most_in_any_window(times, length * (1 - 1e-9)) <= limit * max(1, math.ceil(length / size))


@settings(max_examples=150, deadline=None)
@given(gaps=gaps, size=sizes, limit=limits_n, align=st.sampled_from(["clock", "first_request"]),
       counter=st.booleans(), lengths=windows)
def test_window_counter_bounds(gaps, size, limit, align, counter, lengths):
    # A window of length T meets at most ceil(T / size) + 1 fixed windows, each admitting
    # at most `limit` (the sliding counter's estimate is never below the current count):
    # 2 * limit within one window length across a boundary.
    limiter = SlidingWindowCounter(size, limit) if counter else FixedWindow(size, limit, align)
    times = admitted_times(limiter, gaps)
    for length in lengths:
        assert most_in_any_window(times, length * (1 - 1e-9)) <= limit * (math.ceil(length / size) + 1)


@settings(max_examples=100, deadline=None)
@given(cap=st.integers(1, 5), ops=st.lists(st.booleans(), max_size=200))
def test_concurrency_never_exceeds_its_cap(cap, ops):
    limit, held = ConcurrencyLimit(cap), 0
    for now, acquire in enumerate(ops):
        if acquire:
            admitted = limit.try_acquire(float(now))
            assert admitted is (held < cap)
            held += admitted
        elif held:
            limit.release(float(now))
            held -= 1
        assert limit.in_flight == held <= cap


# ---------------------------------------------------------------- configuration


LIMITER_MISTAKES = [
    (["limiter.algorithm=gcra", "limiter.rat=3"], "limiter.rat", "did you mean 'rate'"),
    (["limiter.algorithm=sliding_window_log"], "limiter.rate", "accepted keys: algorithm, scope, size, limit"),
    (["limiter.algorithm=fixed_window", "limiter.rate=0", "limiter.burst=0", "limiter.sise=2"], "limiter.rate", "algorithm = 'fixed_window'"),
    (["limiter.algorithm=concurrency", "limiter.rate=0", "limiter.burst=0", "limiter.max_inflight=3"], "limiter.rate", "max_in_flight"),
    (["limiter.algorithm=leaky_bucket", "limiter.nodelay=true", "limiter.delay=2"], "limiter.delay", "not both"),
    (["limiter.algorithm=token_bucket", "limiter.burst=0"], "limiter.burst", "burst >= 1"),
    (["limiter.algorithm=fixed_wndow"], "limiter.algorithm", "'fixed_window'"),
]


def test_limiter_keys_are_checked_per_algorithm():
    for overrides, field, phrase in LIMITER_MISTAKES:  # rate-limit-stress sets rate and burst
        with pytest.raises(ConfigError, match=re.escape(phrase)) as caught:
            load_scenario("rate-limit-stress", overrides)
        assert caught.value.field == field, overrides


def test_limiter_defaults_per_algorithm_and_round_trip():
    nginx = load_scenario("concurrent", ['limiter={ algorithm = "leaky_bucket", rate = 5 }']).limiter
    assert (nginx.burst, nginx.nodelay, nginx.delay, nginx.size) == (0, False, 0, None)
    window = load_scenario("concurrent", ['limiter={ algorithm = "fixed_window" }'])
    assert window.to_dict()["limiter"] == {"algorithm": "fixed_window", "scope": "per_user", "size": 1.0, "limit": 20, "align": "clock"}
    assert simrouter.scenario_from_dict(window.to_dict()) == window
    off = load_scenario("rate-limit-stress", ["limiter.algorithm=none"])  # keeps rate/burst in the file, ignored
    assert off.to_dict()["limiter"] == {"algorithm": "none", "scope": "per_user"}
