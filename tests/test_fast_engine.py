"""The fast engine against the straightforward model, and the run's memory.

``simulate`` runs a scenario without client policies on the fast engine
(``simrouter.sim.fast``: a calendar of answers, no SimPy event);
``engine="events"`` runs the same scenario on the SimPy engine with the
event-driven backend, where every service end, timeout and think time is its
own event and each closed user a SimPy process. Both draw from the same streams
in the same order, so on continuous distributions (ties have probability zero;
times on a grid, where they tie, are ``test_fix_engine_ties.py``'s) they must
give the same run request for request: sent and answer times,
outcomes, the breaker's transitions, and the whole summary. That is stronger
than comparing distributions (a KS test on identical samples is trivial), so
the cases below are built to exercise every outcome: rate limiting, validation,
breaker trips, probes and recovery, full queues, router timeouts, hung calls
and both fault kinds, on closed, duration-capped and open workloads.
"""

import json
import math
import tracemalloc

import numpy as np
import pytest

import simrouter
from simrouter.errors import ConfigError
from simrouter.metrics import Recorder
from simrouter.outcomes import BACKEND_KINDS

CLOSED = [  # 20 users into 10 slots at ~80 % load: queueing, full queues, timeouts, an outage and a spike
    "workload.users=20",
    "workload.requests_per_user=250",
    'workload.think_time={ dist = "exponential", mean = 0.1 }',
    "duration=1e6",
    "limiter.rate=8.0",
    "limiter.burst=2",
    "backend.capacity=10",
    "backend.queue_limit=8",
    "backend.failures.timeout=0.003",
    "backend.hang_time=1.0",
    "backend.failures.validation=0.01",
    "router.timeout=0.25",
    "faults=[{ start = 3.0, end = 5.0, error_rate = 1.0 }, { start = 12.0, end = 14.0, latency_factor = 6.0 }]",
]
CAPPED = [*CLOSED[:1], "workload.requests_per_user=0", *CLOSED[2:], "duration=20.0"]  # users stop at 20 s
RESILIENCE4J = (  # timer-driven half-open and randomized waits (its own random stream)
    'breaker={ preset = "resilience4j", sliding_window_size = 20, minimum_number_of_calls = 10, wait_duration_in_open_state = 1.0, '
    "automatic_transition_from_open_to_half_open_enabled = true, enable_randomized_wait = true, permitted_number_of_calls_in_half_open_state = 3 }"
)
OPEN = [  # Poisson 150/s over 14 slots at 83 % load, a 3 s outage
    "duration=20.0",
    "workload.rate=150",
    "backend.capacity=14",
    "backend.queue_limit=10",
    "router.timeout=0.3",
    "backend.failures.processing=0.01",
    "breaker.open_duration=3.0",
    "faults=[{ start = 5.0, end = 8.0, error_rate = 1.0 }]",
]
CASES = {
    "closed": ("concurrent", [*CLOSED, "breaker.open_duration=1.0"]),
    "closed-resilience4j": ("concurrent", [*CLOSED, RESILIENCE4J]),
    "duration-capped": ("concurrent", [*CAPPED, "breaker.open_duration=1.0"]),
    "open": ("breaker-failure", OPEN),
}


def both_engines(name: str, overrides: list[str], seed: int):
    return (simrouter.simulate(name, seed=seed, overrides=overrides), simrouter.simulate(name, seed=seed, overrides=overrides, engine="events"))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", (1, 2))
def test_fast_engine_reproduces_the_event_driven_model(case, seed):
    name, overrides = CASES[case]
    fast, events = both_engines(name, overrides, seed)
    assert np.array_equal(fast.sent, events.sent)
    assert np.array_equal(fast.kind, events.kind)
    assert np.allclose(fast.done, events.done, rtol=0, atol=1e-9)
    assert fast.transitions == events.transitions
    assert fast.sim_time_s == pytest.approx(events.sim_time_s, abs=1e-9)
    assert fast.full_load_end_s == pytest.approx(events.full_load_end_s, abs=1e-9)
    assert fast.backend_busy_s == pytest.approx(events.backend_busy_s)
    assert json.dumps(fast.to_dict()) == json.dumps(events.to_dict())


@pytest.mark.parametrize("case", CASES)
def test_the_cases_exercise_every_outcome(case):
    name, overrides = CASES[case]
    result = simrouter.simulate(name, seed=1, overrides=overrides)
    requests = result.summary["requests"]
    kinds = ["succeeded", "breaker_rejected", "timeouts", "failures", "queue_full"]
    kinds += ["rate_limited", "validation_errors"] if case != "open" else []
    assert all(requests[kind] > 0 for kind in kinds), requests
    states = {tr.to_state.value for tr in result.transitions}
    assert {"open", "half_open", "closed"} <= states
    if case == "duration-capped":
        assert result.full_load_end_s >= result.scenario.duration


def test_unknown_engine_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        simrouter.simulate("baseline", engine="simpy")
    assert caught.value.field == "engine" and "auto, events" in str(caught.value)


def test_final_columns_share_the_buffers_and_columns_copy():
    recorder = Recorder()
    for i in range(5):
        recorder.add(float(i), i + 0.5, i % 3)
    copies = recorder.columns()
    views = recorder.final_columns()
    assert [c.tolist() for c in copies] == [v.tolist() for v in views] == [[0.0, 1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.5, 3.5, 4.5], [0, 1, 2, 0, 1]]
    views[0][0] = 9.0
    assert recorder.sent[0] == 9.0 and copies[0][0] == 0.0
    with pytest.raises(BufferError):  # a finished run's columns cannot grow under its views
        recorder.add(5.0, 5.5, 0)


@pytest.mark.parametrize("answer_order", (True, False))
def test_window_latencies_are_the_last_answers(answer_order):
    # Against the straightforward computation: a stable sort of every measured
    # answer in the latency population (a backend kind, or time spent) by answer
    # time, then the last `size`.
    rng = np.random.default_rng(5)
    n = 20_000
    sent = np.sort(rng.uniform(0, 100, n))
    done = sent + rng.exponential(0.1, n)
    kind = rng.choice(np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.int8), n, p=[0.5, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05])
    done[kind == 1] = sent[kind == 1]  # answered at once
    if answer_order:
        order = np.argsort(done, kind="stable")
        sent, done, kind = sent[order], done[order], kind[order]
    result = simrouter.simulate("baseline")
    for warmup, size in ((0.0, 1000), (30.0, 7), (30.0, n)):
        result_view = type(result)(result.scenario.replace([f"warmup={warmup}"]), 1, sent, done, kind, [], result.final_state, 100.0, 0.0)
        mask = (sent >= warmup) & (np.isin(kind, BACKEND_KINDS) | (done > sent))
        expected = (done[mask] - sent[mask])[np.argsort(done[mask], kind="stable")][-size:]
        assert np.array_equal(result_view.window_latencies(size), expected)


def test_a_run_keeps_about_33_bytes_per_request():
    # Three columns (float64 sent, float64 answer time, int8 outcome), the backend's
    # service log (float64 start and end per service: exact utilisation in any
    # window) and no Python object per request; the summary adds one float64 latency column, a few byte
    # masks and fixed-size chunk buffers. Measured with tracemalloc (numpy reports
    # its buffers to it), so the bound is exact, not a timing.
    requests = 200_000
    scenario = simrouter.load_scenario("concurrent", overrides=[f"workload.requests_per_user={requests // 10}", "duration=1e9"])
    tracemalloc.start()
    try:
        result = simrouter.simulate(scenario, seed=1)
        after_run, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _ = result.summary
        _, summary_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.summary["requests"]["sent"] == requests
    assert after_run < (17 + 16) * 1.13 * requests + 2**20  # array.array over-allocates by up to 1/8
    assert summary_peak - after_run < (8 + 4) * requests + 2 * 2**20
    assert math.isfinite(result.summary["latency_ms"]["p99"])


def test_progress_ticks_are_monotonic_and_change_nothing(monkeypatch):
    from simrouter.sim import fast

    monkeypatch.setattr(fast, "TICK_MASK", 0xFF)  # tick every 256 requests on this small run
    ticks = []
    original = fast.run_open

    def spy(router, schedule, poisson, gaps, keys, max_requests, tick=None):
        def recording(now):
            ticks.append(now)
            if tick is not None:
                tick(now)

        return original(router, schedule, poisson, gaps, keys, max_requests, recording)

    monkeypatch.setattr(fast, "run_open", spy)
    with_bar = simrouter.simulate("breaker-failure", seed=3, progress=True)
    monkeypatch.setattr(fast, "run_open", original)
    without = simrouter.simulate("breaker-failure", seed=3)
    assert json.dumps(with_bar.to_dict()) == json.dumps(without.to_dict())
    assert len(ticks) == with_bar.summary["requests"]["sent"] // 256
    assert ticks == sorted(ticks) and 0 < ticks[-1] <= with_bar.scenario.duration
