"""Issue 17, item 13: one admission chain (limiter -> validation -> breaker) for the
fast engine, the SimPy engine and the live service (``simrouter.policies.chain``).

The copies had drifted: the live service measured the breaker's call duration
from the request's arrival (before the limiter's delay), the SimPy engine from
the forward time, so resilience4j's slow-call rate differed between them. The
one definition measures it from the forward time. The live service is driven
here through its public ``handle`` on a virtual event-loop clock (aiotools'
``VirtualClock``: sleeps and timers complete at once, in time order), so it and
the simulation see the very same arrival times.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import numpy as np
import pytest
from aiotools import VirtualClock

import simrouter
from simrouter.config import BreakerConfig, LimiterConfig, Resilience4jBreakerConfig
from simrouter.live.service import RouterService
from simrouter.outcomes import BREAKER_REJECTED, FAILURE, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from simrouter.policies import BreakerState, build_breaker, build_limiter
from simrouter.policies.breakers import PRESETS
from simrouter.policies.chain import AdmissionChain

PACKAGE = Path(simrouter.__file__).parent


class SpyBreaker:
    """A breaker that admits everything and remembers what it was told."""

    def __init__(self, admit: bool = True):
        self.epoch = 0
        self.admit = admit
        self.records: list[tuple[int, float, int, float]] = []
        self.releases: list[tuple[int, float]] = []

    def allow(self, now):
        return self.admit

    def record(self, outcome, now, epoch=None, duration=0.0):
        self.records.append((outcome, now, epoch, duration))

    def release(self, epoch, now):
        self.releases.append((epoch, now))


def never(*_args):
    raise AssertionError("no validation draw expected")


# -- the chain on its own


def test_the_breaker_duration_runs_from_the_forward_time():
    # nginx's leaky bucket, 10/s: three requests at t = 0 are forwarded at 0, 0.1 and 0.2 s.
    limiter = build_limiter(LimiterConfig(algorithm="leaky_bucket", rate=10.0, burst=5, nodelay=False, delay=0))
    spy = SpyBreaker()
    chain = AdmissionChain(limiter, spy, 0.0, never)
    tickets = [chain.admit(0, 0.0) for _ in range(3)]
    assert [t.kind for t in tickets] == [None] * 3
    assert [t.delay for t in tickets] == pytest.approx([0.0, 0.1, 0.2])
    for ticket in tickets:
        assert chain.forward(ticket, ticket.arrived + ticket.delay) is None
        chain.settle(ticket, ticket.forwarded + 0.25, SUCCESS)
    # Each call took 0.25 s once forwarded; from arrival it would be 0.25, 0.35, 0.45.
    assert [r[3] for r in spy.records] == pytest.approx([0.25, 0.25, 0.25], abs=1e-12)
    assert [r[1] for r in spy.records] == pytest.approx([0.25, 0.35, 0.45])


def test_resilience4j_slow_calls_are_judged_on_the_forwarded_call():
    # 3 calls in the window, slow above 0.3 s, open at 50 % slow: each call takes 0.25 s
    # once forwarded, so nothing is slow; counted from arrival two of three would be (0.35, 0.45).
    config = Resilience4jBreakerConfig(sliding_window_size=3, minimum_number_of_calls=3, slow_call_rate_threshold=50.0, slow_call_duration_threshold=0.3)
    breaker = build_breaker(config)
    limiter = build_limiter(LimiterConfig(algorithm="leaky_bucket", rate=10.0, burst=5, nodelay=False, delay=0))
    chain = AdmissionChain(limiter, breaker, 0.0, never)
    for ticket in [chain.admit(0, 0.0) for _ in range(3)]:
        assert chain.forward(ticket, ticket.forwarded) is None
        chain.settle(ticket, ticket.forwarded + 0.25, SUCCESS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.transitions == []


def test_a_held_limiter_slot_is_given_back_exactly_once():
    limiter = build_limiter(LimiterConfig(algorithm="concurrency", max_in_flight=1))
    spy = SpyBreaker()
    chain = AdmissionChain(limiter, spy, 0.0, never)
    first = chain.admit(0, 0.0)
    assert first.kind is None and first.holds
    assert chain.admit(0, 0.0).kind == RATE_LIMITED  # the one slot is taken
    assert chain.forward(first, 0.0) is None
    chain.settle(first, 1.0, FAILURE)
    chain.release(first, 1.0)  # already settled: nothing left to give back
    assert spy.records == [(FAILURE, 1.0, 0, 1.0)] and spy.releases == []
    # The slot is free again, and only one slot: two requests cannot both hold it.
    second = chain.admit(0, 1.0)
    assert second.holds and chain.admit(0, 1.0).kind == RATE_LIMITED
    # A request the breaker rejects gives its slot back at once ...
    spy.admit = False
    assert chain.forward(second, 1.0) == BREAKER_REJECTED
    assert not second.holds and spy.records == [(FAILURE, 1.0, 0, 1.0)]
    # ... and one cancelled before any answer gives back its slot and its breaker permit.
    spy.admit = True
    third = chain.admit(0, 2.0)
    assert chain.forward(third, 2.0) is None
    chain.release(third, 2.5)
    chain.release(third, 2.6)
    assert spy.releases == [(0, 2.5)]
    assert chain.admit(0, 2.6).holds


def test_a_full_queue_is_a_failure_of_duration_zero():
    spy = SpyBreaker()
    chain = AdmissionChain(build_limiter(LimiterConfig(algorithm="leaky_bucket", rate=10.0, burst=5, nodelay=False, delay=0)), spy, 0.0, never)
    chain.admit(0, 0.0)
    ticket = chain.admit(0, 0.0)  # delayed 0.1 s
    assert chain.forward(ticket, 0.1) is None
    chain.queue_full(ticket)
    assert spy.records == [(FAILURE, 0.1, 0, 0.0)]


def test_validation_is_drawn_only_when_asked_and_never_reaches_the_breaker():
    draws = iter([0.05, 0.5])
    spy = SpyBreaker()
    chain = AdmissionChain(build_limiter(LimiterConfig(algorithm="none")), spy, 0.1, lambda: next(draws))
    assert chain.forward(chain.admit(0, 0.0), 0.0) == VALIDATION  # draw 0.05 < 0.1
    assert chain.forward(chain.admit(0, 0.0), 0.0, malformed=False) is None  # a retry: the request's decision, no draw
    assert chain.forward(chain.admit(0, 0.0), 0.0) is None  # draw 0.5
    assert spy.records == []
    assert AdmissionChain(build_limiter(LimiterConfig(algorithm="none")), spy, 0.0, never).malformed() is False  # p = 0: no draw


def test_the_fast_path_and_the_ticketed_path_are_the_same_chain():
    # The same arrivals and answers through decide/record and through admit/forward/settle:
    # the same answers, the same breaker transitions (token bucket, default breaker, 10 % invalid).
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(0.02, 3000))
    keys = rng.integers(0, 3, times.size)
    services = rng.exponential(0.05, times.size)
    failed = rng.random(times.size) < 0.3
    uniforms = rng.random(times.size)

    def run(ticketed: bool):
        breaker = build_breaker(BreakerConfig(minimum_calls=10, window_size=20, open_duration=0.5))
        limiter = build_limiter(LimiterConfig(algorithm="token_bucket", rate=20.0, burst=5))
        draws = iter(uniforms)
        chain = AdmissionChain(limiter, breaker, 0.1, lambda: next(draws))
        assert chain.at_once
        kinds, pending = [], []
        for t, key, service, fail in zip(times, keys, services, failed):
            while pending and pending[0][0] <= t:  # answers due first, in time order
                done, settle = pending.pop(0)
                settle(done)
            outcome = FAILURE if fail else SUCCESS
            if ticketed:
                ticket = chain.admit(int(key), t)
                kind = ticket.kind if ticket.kind is not None else chain.forward(ticket, t)
                if kind is None:
                    pending.append((t + service, lambda done, ticket=ticket, outcome=outcome: chain.settle(ticket, done, outcome)))
            else:
                kind = chain.decide(int(key), t)
                if kind is None:
                    epoch = breaker.epoch
                    pending.append((t + service, lambda done, epoch=epoch, t=t, outcome=outcome: chain.record(outcome, done, epoch, t)))
            pending.sort(key=lambda answer: answer[0])
            kinds.append(outcome if kind is None else kind)
        return kinds, breaker.transitions

    fast_kinds, fast_transitions = run(False)
    ticket_kinds, ticket_transitions = run(True)
    assert fast_kinds == ticket_kinds
    assert fast_transitions == ticket_transitions
    assert {RATE_LIMITED, VALIDATION, BREAKER_REJECTED, SUCCESS, FAILURE} <= set(fast_kinds)  # every branch taken
    assert len(fast_transitions) >= 3


def test_only_an_empty_chain_is_transparent():
    none, token = LimiterConfig(algorithm="none"), LimiterConfig(algorithm="token_bucket", rate=5.0, burst=1)
    empty, default = BreakerConfig(preset="none"), BreakerConfig()
    assert AdmissionChain(build_limiter(none), build_breaker(empty), 0.0, never).transparent
    assert not AdmissionChain(build_limiter(token), build_breaker(empty), 0.0, never).transparent
    assert not AdmissionChain(build_limiter(none), build_breaker(default), 0.0, never).transparent
    assert not AdmissionChain(build_limiter(none), build_breaker(empty), 0.01, never).transparent


def test_the_fast_engine_skips_an_empty_chain_and_still_matches_the_simpy_engine():
    overrides = ["limiter.algorithm=none", "breaker.preset=none", "backend.failures.validation=0", "backend.failures.processing=0.02",
                 "duration=20.0", "workload.model=open", "workload.rate=150", "backend.capacity=14", "backend.queue_limit=5", "router.timeout=0.2"]
    fast = simrouter.simulate("baseline", overrides=overrides)
    events = simrouter.simulate("baseline", overrides=overrides, engine="events")
    assert np.array_equal(fast.sent, events.sent) and np.array_equal(fast.kind, events.kind)
    assert np.allclose(fast.done, events.done, rtol=0, atol=1e-9)
    assert {SUCCESS, FAILURE, TIMEOUT} <= set(np.unique(fast.kind).tolist())


# -- the three drivers give the same breaker durations


def recording(monkeypatch, preset: str) -> list[tuple[float, float, int]]:
    """(time, duration, outcome) of every breaker.record of ``preset``'s class."""
    records = []
    cls = PRESETS[preset]
    record = cls.record

    def spy(self, outcome, now, epoch=None, duration=0.0):
        records.append((now, duration, outcome))
        return record(self, outcome, now, epoch, duration)

    monkeypatch.setattr(cls, "record", spy)
    return records


# aiotools' VirtualClock runs every timer due within 1 ms of the next one together (its clock
# resolution), which would merge events of a millisecond-scale run and reorder them; with every
# time scaled up 1000x (arrivals 50 s apart, calls of minutes) no two events come that close, and
# live and simulated times agree to float rounding.
SCALE = 1000.0
DELAYED = [  # 20 arrivals per 1000 s into nginx's leaky bucket at 10 per 1000 s: most are held 50-800 s
    f"duration={10 * SCALE}",
    "workload.model=open",
    "workload.users=1",
    f"workload.rate={20 / SCALE}",
    "workload.arrival=constant",
    f'limiter={{ algorithm = "leaky_bucket", rate = {10 / SCALE}, burst = 8 }}',
    f'breaker={{ preset = "resilience4j", sliding_window_size = 10, minimum_number_of_calls = 5, slow_call_rate_threshold = 60.0, '
    f"slow_call_duration_threshold = {0.3 * SCALE}, wait_duration_in_open_state = {1.0 * SCALE}, permitted_number_of_calls_in_half_open_state = 2 }}",
    f'backend.latency={{ dist = "lognormal", median = {0.15 * SCALE}, sigma = 0.6 }}',
    "backend.capacity=2",
    "backend.queue_limit=2",
    "backend.failures.processing=0.05",
    "backend.failures.validation=0.1",
    f"router.timeout={0.4 * SCALE}",
]
TOLERANCE = 1e-6  # float rounding of times near 1e4 s


async def _live_run(scenario, arrivals: np.ndarray, seed: int):
    loop = asyncio.get_running_loop()
    with VirtualClock().patch_loop():
        service = RouterService(scenario, seed=seed, clock=loop.time)
        tasks = []
        for t in arrivals:
            if t > loop.time():
                await asyncio.sleep(t - loop.time())
            tasks.append(asyncio.create_task(service.handle(0, float(t))))
        return await asyncio.gather(*tasks)


@pytest.mark.filterwarnings("ignore:backend.latency")  # minutes-long calls, on purpose (SCALE)
def test_live_service_and_simpy_engine_record_the_same_breaker_durations(monkeypatch):
    # The issue: the service measured the call from arrival, before the limiter's delay,
    # so a call held 0.2 s and served in 0.15 s was "slow" (> 0.3 s) live and not simulated.
    scenario = simrouter.load_scenario("baseline", DELAYED)
    simulated_records = recording(monkeypatch, "resilience4j")
    simulated = simrouter.simulate(scenario, seed=1)
    simulated_records = list(simulated_records)
    order = np.argsort(simulated.sent, kind="stable")
    arrivals = np.asarray(simulated.sent)[order]
    live_records = recording(monkeypatch, "resilience4j")
    answers = asyncio.run(_live_run(scenario, arrivals, seed=1))

    live_kinds = np.array([a.kind for a in answers])
    sim_kinds = np.asarray(simulated.kind)[order]
    assert len(answers) == 200
    # The pattern exercises every step: held requests, rejections, invalid ones, slow calls, timeouts.
    kinds = set(sim_kinds.tolist())
    assert {SUCCESS, RATE_LIMITED, VALIDATION, BREAKER_REJECTED, FAILURE, TIMEOUT} <= kinds, kinds
    np.testing.assert_array_equal(live_kinds, sim_kinds)
    np.testing.assert_allclose([a.done for a in answers], np.asarray(simulated.done)[order], rtol=0, atol=TOLERANCE)

    assert len(live_records) == len(simulated_records) > 50
    sim_time, sim_duration, sim_outcome = map(np.array, zip(*sorted(simulated_records)))
    live_time, live_duration, live_outcome = map(np.array, zip(*sorted(live_records)))
    np.testing.assert_array_equal(live_outcome, sim_outcome)
    np.testing.assert_allclose(live_time, sim_time, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(live_duration, sim_duration, rtol=0, atol=TOLERANCE)
    # Durations are the calls' own (backend queue and service, at most the router timeout),
    # never the limiter's hold: the held requests here waited up to 0.4 s.
    assert sim_duration.max() <= 0.4 * SCALE + TOLERANCE
    latency = np.asarray(simulated.done)[order] - arrivals
    assert latency.max() > 0.8 * SCALE  # latency includes the hold; the breaker's duration does not
    assert simulated.summary["breaker"]["trips"] >= 1


def test_fast_and_simpy_engines_record_the_same_breaker_durations(monkeypatch):
    overrides = [
        "workload.users=20",
        "workload.requests_per_user=200",
        'workload.think_time={ dist = "exponential", mean = 0.1 }',
        "duration=1e6",
        "backend.capacity=10",
        "backend.queue_limit=8",
        "router.timeout=0.25",
        'breaker={ preset = "resilience4j", sliding_window_size = 20, minimum_number_of_calls = 10, slow_call_rate_threshold = 50.0, '
        "slow_call_duration_threshold = 0.15, wait_duration_in_open_state = 1.0 }",
        "faults=[{ start = 3.0, end = 6.0, latency_factor = 6.0 }]",
    ]
    records = recording(monkeypatch, "resilience4j")
    fast = simrouter.simulate("concurrent", overrides=overrides)
    fast_records, records[:] = list(records), []
    events = simrouter.simulate("concurrent", overrides=overrides, engine="events")
    assert len(fast_records) == len(records) > 1000
    np.testing.assert_allclose(np.array(fast_records), np.array(records), rtol=0, atol=1e-9)
    assert fast.transitions == events.transitions and len(fast.transitions) >= 1


def test_a_cancelled_live_request_gives_back_its_limiter_slot_and_breaker_permit():
    scenario = simrouter.load_scenario(
        "baseline", ['limiter={ algorithm = "concurrency", max_in_flight = 1 }', "backend.latency=2.0", "router.timeout=10.0"]
    )

    async def main():
        loop = asyncio.get_running_loop()
        with VirtualClock().patch_loop():
            service = RouterService(scenario, clock=loop.time)
            slow = asyncio.create_task(service.handle(0))
            await asyncio.sleep(0.5)
            assert (await service.handle(0)).kind == RATE_LIMITED  # the one slot is held
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            return (await service.handle(0)).kind

    assert asyncio.run(main()) == SUCCESS


# -- structure: no driver re-implements the chain


@pytest.mark.parametrize("path", ["sim/fast.py", "sim/client.py", "sim/model.py", "live/service.py"])
def test_no_driver_calls_the_limiter_or_breaker_decisions_itself(path):
    tree = ast.parse((PACKAGE / path).read_text())
    calls = [
        f"{path}:{node.lineno} .{node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("try_acquire", "acquire", "allow", "record")
    ]
    assert not calls, "the admission chain (simrouter.policies.chain) makes these calls"
