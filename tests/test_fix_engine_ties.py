"""Issue 11, item 12: the fast and SimPy engines agree on ties (``simrouter/sim/instants.py``).

On continuous distributions ties have probability zero and ``test_fast_engine``
compares the engines request for request. Here every time sits on a grid:
constant latencies that are powers of two (sums are exact in binary), router
timeouts equal to 1, 2 or 3 latencies, think times and constant arrival gaps
on the same grid, and a millisecond-grid empirical latency as ``calibrate``
writes it. Services end exactly at their deadlines, answers fall on the
instants of sends, several users wake at one instant. Both engines must give
the same run: every request's times and outcome, the breaker's log and every
summary field. Before the tie rule, 58 of these 108 configurations disagreed.
"""

import itertools
import json

import numpy as np
import pytest

import simrouter
from simrouter.outcomes import SUCCESS, TIMEOUT

BREAKER = ["breaker.failure_threshold=2", "breaker.open_duration=0.5", "breaker.half_open_max_calls=2", "breaker.success_threshold=2"]


def closed_cases():
    for users, capacity, latency, k, think in itertools.product((3, 6), (1, 2, 4), (0.25, 0.5), (1, 2, 3), (0.0, 0.5)):
        yield f"closed-u{users}-c{capacity}-L{latency}-T{k}-z{think}", "concurrent", [
            f"workload.users={users}", "workload.requests_per_user=12", f"workload.think_time={think}", "duration=1000",
            f"backend.capacity={capacity}", "backend.queue_limit=3", f"backend.latency={latency}", f"router.timeout={k * latency}",
            "backend.failures.processing=0.05", "backend.failures.validation=0.0", "limiter.rate=3.0", "limiter.burst=3", *BREAKER,
        ]


def open_cases():
    for rate, capacity, latency, k in itertools.product((4.0, 8.0), (1, 2), (0.25, 0.5), (1, 2, 3)):
        yield f"open-r{rate}-c{capacity}-L{latency}-T{k}", "breaker-failure", [
            "duration=6.0", f"workload.rate={rate}", 'workload.arrival="constant"', f"backend.capacity={capacity}",
            "backend.queue_limit=4", f"backend.latency={latency}", f"router.timeout={k * latency}", "backend.failures.processing=0.05",
            *BREAKER, "faults=[{ start = 2.0, end = 3.0, error_rate = 1.0 }]",
        ]


def empirical_cases():
    values = "[0.012, 0.025, 0.05, 0.05, 0.1]"  # milliseconds, as calibrate writes them
    for users, capacity, timeout in itertools.product((4, 8), (2, 3, 4), (0.05, 0.1)):
        yield f"empirical-u{users}-c{capacity}-T{timeout}", "concurrent", [
            f"workload.users={users}", "workload.requests_per_user=25", "workload.think_time=0.025", "duration=1000",
            f"backend.capacity={capacity}", "backend.queue_limit=4", f'backend.latency={{ dist = "empirical", values = {values} }}',
            f"router.timeout={timeout}", "backend.failures.processing=0.05", "limiter.rate=20.0", "limiter.burst=4",
            "breaker.failure_threshold=2", "breaker.open_duration=0.2",
        ]


CASES = {name: (base, overrides) for name, base, overrides in itertools.chain(closed_cases(), open_cases(), empirical_cases())}
assert len(CASES) >= 100


def both(name):
    base, overrides = CASES[name]
    return simrouter.simulate(base, seed=1, overrides=overrides), simrouter.simulate(base, seed=1, overrides=overrides, engine="events")


@pytest.mark.parametrize("name", CASES)
def test_engines_agree_on_ties(name):
    fast, events = both(name)
    assert np.array_equal(fast.sent, events.sent)
    assert np.array_equal(fast.done, events.done)
    assert np.array_equal(fast.kind, events.kind)
    assert fast.transitions == events.transitions
    assert fast.summary == events.summary
    assert json.dumps(fast.to_dict()) == json.dumps(events.to_dict())


def test_the_grid_is_full_of_ties():
    # The grid must really test the rule: services ending exactly at their deadline
    # (rule 1: a success) and answers falling on the instant of a send (rule 2).
    at_deadline = answers_on_sends = 0
    for name, (base, overrides) in CASES.items():
        result = simrouter.simulate(base, seed=1, overrides=overrides)
        timeout = result.scenario.router.timeout
        success = result.kind == SUCCESS
        at_deadline += int(np.sum(success & (result.done - result.sent == timeout)))
        assert not np.any((result.kind == TIMEOUT) & (result.done - result.sent < timeout - 1e-9))
        answers_on_sends += bool(np.intersect1d(result.done[result.done > result.sent], result.sent).size)
    assert at_deadline > 500  # 805 successes end exactly at their deadline
    assert answers_on_sends > 80


def test_a_service_ending_at_the_deadline_is_a_success_on_both_engines():
    # One user, one slot, latency = timeout: every call ends exactly at its deadline.
    overrides = ["workload.users=1", "workload.requests_per_user=20", "backend.latency=0.25", "router.timeout=0.25",
                 "backend.failures.processing=0", "backend.failures.validation=0"]
    for engine in ("auto", "events"):
        result = simrouter.simulate("concurrent", seed=1, overrides=overrides, engine=engine)
        assert result.summary["requests"]["succeeded"] == 20 and result.summary["requests"]["timeouts"] == 0
