"""Regression tests for the live-engine review (service, generator client, compare, calibrate).

Servers bind 127.0.0.1 on free ports; backends are short constants; the service's
clock is replaced by a hand-moved one where a test is about times, so no check
depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

import simrouter
from simrouter.config import FaultWindow
from simrouter.errors import ConfigError
from simrouter.live.calibrate import calibrate, read_sample
from simrouter.live.compare import compare, serve_subprocess
from simrouter.live.http1 import Http1Pool, request_bytes
from simrouter.live.loadgen import LiveOptions, run_live
from simrouter.live.result import LiveResult
from simrouter.live.service import RouterService, start_service
from simrouter.live.service_thread import ServiceThread, serving
from simrouter.outcomes import FAILURE, SUCCESS, VALIDATION
from simrouter.policies.breakers import BreakerState


def quiet(name: str, *overrides: str):
    """``name`` with a constant 1 ms backend that never fails, plus ``overrides``."""
    return simrouter.load_scenario(
        name, ["backend.latency=0.001", "backend.failures.processing=0.0", "backend.failures.validation=0.0", "limiter.algorithm=none", *overrides]
    )


class HandClock:
    """A service clock moved by the test (replaces ``RouterService.now``)."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def service_on(clock: HandClock, scenario) -> RouterService:
    service = RouterService(scenario)
    service.now = clock
    service._reset_policies()  # start the metrics on the hand clock
    return service


def test_injected_validation_draws_the_same_numbers_as_simulated_replication_0():
    # 60 sequential requests, 30 % injected validation errors, nothing else random:
    # with common random numbers the live run rejects exactly the requests replication 0 rejects.
    scenario = quiet("baseline", "workload.requests_per_user=60", "backend.failures.validation=0.3", "breaker.preset=none")
    simulated = simrouter.simulate(scenario, seed=1)
    with serving(scenario, seed=1) as svc:
        live = run_live(scenario, svc.url, LiveOptions(handle_signals=False, seed=1))
    assert live.kind.size == simulated.kind.size == 60
    assert 5 <= np.count_nonzero(simulated.kind == VALIDATION) <= 35  # the pattern is not trivial
    np.testing.assert_array_equal(live.kind == VALIDATION, simulated.kind == VALIDATION)


def test_compare_runs_the_live_generator_with_the_compare_seed():
    scenario = quiet("baseline", "workload.requests_per_user=5")
    options = LiveOptions(handle_signals=False)  # seed 1 by default
    with serving(scenario, seed=3) as svc:
        comparison = compare(scenario, seed=3, replications=2, target=svc.url, options=options)
    assert comparison.live.seed == 3  # arrivals and think times from replication 0's streams
    assert options.seed == 1 and options.admin_token is None  # the caller's options are left alone


def test_metrics_recovery_after_a_reset_is_on_the_service_clock():
    scenario = quiet(
        "concurrent", "breaker.failure_threshold=1", "breaker.open_duration=5", "breaker.half_open_max_calls=1", "breaker.success_threshold=1"
    )
    clock = HandClock(100.0)
    service = service_on(clock, scenario)  # as after POST /admin/reset at t = 100
    service.fault_history = [FaultWindow(start=110.0, end=115.0, error_rate=1.0)]
    breaker = service.breaker
    assert breaker.allow(111.0)
    breaker.record(FAILURE, 111.0, breaker.epoch)  # trips
    assert breaker.allow(120.0)  # the probe
    breaker.record(SUCCESS, 120.0, breaker.epoch)  # closes
    clock.t = 150.0
    summary = service.summary()
    assert summary["breaker"]["trips"] == 1
    assert summary["breaker"]["recovery_s"] == pytest.approx(5.0)  # closed at 120, fault ended at 115


def test_utilization_counts_only_the_service_time_elapsed():
    # One hung call (30 s) started at t = 10: at t = 12 the slot has been busy 2 s, not 30.
    scenario = quiet("concurrent", "backend.capacity=1", "backend.failures.timeout=1.0", "backend.hang_time=30")
    clock = HandClock(0.0)

    async def main():
        service = service_on(clock, scenario)
        clock.t = 10.0
        backend = service._backend_for(asyncio.get_running_loop())
        assert backend.submit() is not None
        clock.t = 12.0
        before_reset = service.summary()["backend"]["utilization"]
        service._reset_policies()  # POST /admin/reset at t = 12, the call still in service
        clock.t = 16.0
        after_reset = service.summary()["backend"]["utilization"]
        return before_reset, after_reset

    before_reset, after_reset = asyncio.run(main())
    assert before_reset == pytest.approx(2.0 / 12.0)
    assert after_reset == pytest.approx(1.0)  # busy all 4 s since the reset


def test_a_request_answered_after_a_reset_does_not_reach_the_new_breaker():
    scenario = quiet("concurrent", "backend.latency=0.3", "backend.failures.processing=1.0", "breaker.failure_threshold=1")

    async def main():
        import aiohttp

        service = RouterService(scenario)
        runner, url = await start_service(service, port=0, shutdown_timeout=0.1)
        try:
            async with aiohttp.ClientSession() as session:
                request = asyncio.ensure_future(session.post(url + "/submit", json={"user": 1}))
                for _ in range(500):  # until the backend has the call (bounded: 5 s)
                    if service._backend is not None and service._backend.busy:
                        break
                    await asyncio.sleep(0.01)
                service._reset_policies()  # what POST /admin/reset does
                response = await request
                status = response.status
                response.release()
        finally:
            await runner.cleanup()
        return status, service.breaker.state.value

    status, state = asyncio.run(main())
    assert status == 500  # the earlier request failed ...
    assert state == "closed"  # ... but it belonged to the breaker before the reset


def test_connecting_to_a_stalled_listener_times_out_within_the_client_timeout():
    # A listener that never accepts, its backlog full: the kernel drops further SYNs,
    # so connect() would hang for minutes.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    url = f"http://127.0.0.1:{port}"

    async def main():
        pool = Http1Pool(url, timeout=0.3)
        task = asyncio.ensure_future(pool.post(request_bytes(url, "/submit", b"{}")))
        done, _ = await asyncio.wait({task}, timeout=10.0)
        if not done:
            task.cancel()
            return None
        return task.exception()

    try:
        error = asyncio.run(main())
    finally:
        for s in [listener, *fillers]:
            s.close()
    assert isinstance(error, asyncio.TimeoutError)


def test_compare_serves_a_scenario_whose_empirical_latency_file_is_relative(tmp_path, monkeypatch):
    # What `simrouter calibrate` writes for an empirical fit: a TOML beside NAME.latency.txt.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lat.txt").write_text("0.001\n0.002\n0.003\n")
    (tmp_path / "s.toml").write_text('[backend]\nlatency = { dist = "empirical", file = "lat.txt" }\n')
    scenario = simrouter.load_scenario("s.toml")
    with serve_subprocess(scenario) as (url, _):
        assert url.startswith("http://127.0.0.1:")


def test_calibrate_says_when_latencies_are_not_positive():
    sample = np.r_[np.full(30, 0.05), 0.0]
    with pytest.raises(ConfigError, match="got 1 of 31 <= 0"):
        calibrate(sample)


def test_a_live_json_with_a_non_number_in_the_sample_is_a_config_error(tmp_path):
    path = tmp_path / "live.json"
    path.write_text('{"live": {"latency_sample_s": [0.1, "fast"]}}')
    with pytest.raises(ConfigError, match="--from"):
        read_sample(path)


def test_a_slow_fault_injection_does_not_make_the_first_arrivals_late():
    # The schedule starts once the faults are injected, not before the POST.
    scenario = quiet("breaker-failure", "duration=0.5", "workload.rate=40", "workload.arrival=constant", "faults=[{start = 5.0, end = 6.0, error_rate = 1.0}]")
    thread = ServiceThread(scenario, admin_token="t")
    answer = thread.service.handle_add_faults

    async def slow_add_faults(request):
        await asyncio.sleep(0.4)
        return await answer(request)

    thread.service.handle_add_faults = slow_add_faults
    with thread as svc:
        result = run_live(scenario, svc.url, LiveOptions(admin_token="t", handle_signals=False))
    assert result.fault_injection["injected"] is True
    assert result.arrivals == 20
    assert result.max_lag_s < 0.2  # was >= 0.4: the first arrivals waited for the POST


def test_live_window_percentiles_are_of_the_last_answers():
    scenario = quiet("concurrent", "metrics.window=3")
    sent = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    done = np.array([1.0, 0.15, 0.9, 0.35, 0.8])  # answered out of order
    kind = np.array([SUCCESS, SUCCESS, SUCCESS, SUCCESS, VALIDATION], dtype=np.int8)
    result = LiveResult(scenario=scenario, seed=1, sent=sent, done=done, kind=kind, transitions=[], final_state=BreakerState.CLOSED, sim_time_s=1.0, backend_busy_s=0.0, actual=sent)
    window = result.summary["latency_ms_window"]
    # Admitted, by answer time: 0.15 (0.05), 0.35 (0.05), 0.9 (0.7), 1.0 (1.0): the last three.
    assert window["count"] == 3
    assert window["max"] == pytest.approx(1000.0, rel=1e-3) and window["min"] == pytest.approx(50.0, rel=1e-3)
