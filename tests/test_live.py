"""``simrouter live`` against ``simrouter serve`` and against misbehaving targets, on loopback.

Every server is started by the test on a free 127.0.0.1 port (a background
thread, or a subprocess for the CLI), every run is bounded (a few hundred
requests, a few seconds). The checks are exact where the system is exact:

* every request is counted exactly once, and the generator's count of each kind
  equals the service's own count (same requests, seen from both ends);
* injected behaviour shows up as its kind and nowhere else (faults only inside
  their window, rate limiting within the token-bucket bound);
* the breaker trips in the fault window and recovers when the backend is healthy;
* coordinated omission: a 1 s stall of the target shows in the latency measured
  from the intended send time and not in the latency from the actual send time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
from aiohttp import web

import simrouter
from simrouter.live.classify import LIVE_KIND_NAMES, TRANSPORT_KINDS, Classifier
from simrouter.live.loadgen import LiveOptions, LoadGenerator, run_live
from simrouter.live.service_thread import serving
from simrouter.outcomes import KIND_NAMES

TOKEN = "live-test-token"
# A single lognormal backend (P50 45 ms, P99 234 ms): the default's 0.8 % of ~1.7 s calls
# would only make these runs longer and the breaker's probe timing less predictable.
LOGNORMAL_BACKEND = 'backend.latency={ dist = "lognormal", p50 = 0.045, p99 = 0.234 }'


def run_against_service(scenario, **options):
    """(LiveResult, the service's own /metrics, the service's arrival times) for one live
    run against a fresh service."""
    with serving(scenario, admin_token=TOKEN) as svc:
        result = run_live(scenario, svc.url, LiveOptions(admin_token=TOKEN, handle_signals=False, **options))
        return result, svc.service.metrics(), np.array(svc.service.arrival_range())


def assert_counted_once(result, service_metrics):
    requests = result.summary["requests"]
    assert requests["sent"] == len(result.kind) == sum(v for k, v in requests.items() if k != "sent")
    assert all(requests[LIVE_KIND_NAMES[k]] == 0 for k in TRANSPORT_KINDS)
    for kind in KIND_NAMES:  # the generator and the service saw the same answers
        assert requests[kind] == service_metrics["requests"][kind], kind
    backend = requests["succeeded"] + requests["timeouts"] + requests["failures"]
    assert result.summary["latency_ms"]["count"] == backend
    assert np.all(result.done >= result.actual) and np.all(result.actual >= result.sent)


def test_baseline_is_sequential():
    scenario = simrouter.load_scenario("baseline", ["workload.requests_per_user=15", LOGNORMAL_BACKEND])
    result, service, _ = run_against_service(scenario)
    assert_counted_once(result, service)
    assert result.summary["requests"]["sent"] == 15
    order = np.argsort(result.actual)
    # One user: each request is sent only after the previous one was answered.
    assert np.all(result.actual[order][1:] >= result.done[order][:-1])


def test_concurrent_closed_users_never_exceed_their_number():
    scenario = simrouter.load_scenario("concurrent", ["workload.requests_per_user=15", LOGNORMAL_BACKEND])
    result, service, _ = run_against_service(scenario)
    assert_counted_once(result, service)
    assert result.summary["requests"]["sent"] == 150
    events = np.concatenate([np.stack([result.actual, np.ones_like(result.actual)], 1), np.stack([result.done, -np.ones_like(result.done)], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]  # an answer before a send at the same instant
    assert np.cumsum(events[:, 1]).max() <= 10


def test_rate_limit_stress_admits_within_the_token_bucket_bound():
    scenario = simrouter.load_scenario("rate-limit-stress", ["duration=1.5", LOGNORMAL_BACKEND])
    result, service, arrivals = run_against_service(scenario)
    assert_counted_once(result, service)
    requests = result.summary["requests"]
    admitted = requests["sent"] - requests["rate_limited"]
    limiter = scenario.limiter
    span = arrivals.max() - arrivals.min()  # on the service's clock, where the limiter runs
    bound = scenario.workload.users * (limiter.burst + limiter.rate * span)
    # Each of the 10 keys gets ~40 req/s against 20 tokens/s: its bucket admits at most
    # burst + rate * span and, being almost always empty, close to that.
    assert 0.7 * bound <= admitted <= bound
    assert requests["breaker_rejected"] == requests["queue_full"] == requests["timeouts"] == 0


def test_breaker_failure_trips_in_the_fault_window_and_recovers():
    overrides = [
        "duration=3.5", "workload.rate=100", "faults.0.start=0.8", "faults.0.end=1.6", "breaker.open_duration=0.6",
        "backend.failures.processing=0.0", "backend.failures.validation=0.0", LOGNORMAL_BACKEND,
    ]
    scenario = simrouter.load_scenario("breaker-failure", overrides)
    result, service, _ = run_against_service(scenario)
    assert_counted_once(result, service)
    assert result.fault_injection["injected"] is True
    s = result.summary
    fault = scenario.faults[0]
    failed = result.sent[result.kind == KIND_NAMES.index("failures")]
    assert failed.size >= 5  # enough to trip (failure_threshold 5)
    # Failures come only from calls that started service in the window (the clocks agree to ~ms).
    assert failed.min() >= fault.start - 0.05 and failed.max() < fault.end + 0.05
    rejected = result.sent[result.kind == KIND_NAMES.index("breaker_rejected")]
    first_open = min(tr.t for tr in result.transitions if tr.to_state.value == "open")
    assert rejected.size > 0 and rejected.min() >= first_open - 0.01
    breaker = s["breaker"]
    assert breaker["trips"] >= 1 and breaker["state"] == "closed"
    # Independent of the summary: the last trip, plus open_duration, is when probes may
    # start; at 100 req/s the next arrival and three probe answers close it within 0.5 s.
    last_open = max(tr.t for tr in result.transitions if tr.to_state.value == "open")
    earliest = last_open + scenario.breaker.open_duration - fault.end
    assert breaker["recovery_s"] is not None and earliest - 0.01 <= breaker["recovery_s"] < earliest + 0.5


def test_router_kinds_line_up_timeouts_queue_full_validation():
    scenario = simrouter.load_scenario(
        "concurrent",
        [
            "workload.requests_per_user=20", "backend.capacity=4", "backend.queue_limit=2", "backend.latency=0.02",
            "backend.failures.timeout=0.1", "backend.failures.validation=0.1", "backend.failures.processing=0.1",
            "backend.hang_time=0.2", "router.timeout=0.1", "breaker.preset=none",
        ],
    )
    result, service, _ = run_against_service(scenario)
    assert_counted_once(result, service)
    requests = result.summary["requests"]
    for kind in ("succeeded", "timeouts", "queue_full", "validation_errors", "failures"):
        assert requests[kind] > 0, kind
    latency = (result.done - result.actual)[result.kind == KIND_NAMES.index("timeouts")]
    assert latency.min() >= 0.1  # answered at the router timeout, not before


# -- misbehaving targets


@contextmanager
def raw_target(behaviour):
    """A TCP server on a free loopback port whose connections get ``behaviour(reader, writer)``."""
    ready = threading.Event()
    state = {}

    async def main():
        server = await asyncio.start_server(behaviour, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        async with server:
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


async def _read_request(reader):
    await reader.readuntil(b"\r\n\r\n")


async def hang(reader, writer):
    await _read_request(reader)
    await asyncio.sleep(5)


async def garbage(reader, writer):
    await _read_request(reader)
    writer.write(b"this is not HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


async def reset(reader, writer):
    writer.transport.abort()


async def teapot(reader, writer):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SEQUENTIAL_3 = ["workload.requests_per_user=3"]


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
@pytest.mark.parametrize(
    "behaviour, kind",
    [(hang, "client_timeouts"), (garbage, "protocol_errors"), (reset, "protocol_errors"), (teapot, "unexpected_status")],
    ids=["hang", "garbage", "reset", "unexpected-status"],
)
def test_misbehaving_target_is_counted_not_raised(behaviour, kind, client):
    scenario = simrouter.load_scenario("baseline", SEQUENTIAL_3)
    with raw_target(behaviour) as url:
        result = run_live(scenario, url, LiveOptions(client_timeout=0.3, handle_signals=False, client=client))
    requests = result.summary["requests"]
    assert requests["sent"] == requests[kind] == 3
    assert result.summary["live"]["breaker_source"] == "none"


def test_custom_mapping_classifies_a_foreign_status():
    scenario = simrouter.load_scenario("baseline", SEQUENTIAL_3)
    with raw_target(teapot) as url:
        result = run_live(scenario, url, LiveOptions(classifier=Classifier(["418=rate_limited"]), handle_signals=False))
    assert result.summary["requests"]["rate_limited"] == 3


def test_refused_target_through_the_cli_is_reported_without_traceback(tmp_path, capsys):
    from simrouter.cli import main

    out = tmp_path / "refused.json"
    url = f"http://127.0.0.1:{free_port()}"
    status = main(["live", "baseline", "--target", url, "--set", "workload.requests_per_user=3", "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0 and "Traceback" not in captured.out + captured.err
    data = json.loads(out.read_text())
    assert data["requests"]["sent"] == data["requests"]["connect_errors"] == 3
    assert any("refused every connection" in note for note in data["live"]["notes"])
    assert main(["live", "baseline", "--target", "ftp://x"]) == 2


# -- interruption


def test_sigint_stops_the_run_and_keeps_what_was_measured():
    # Every call takes 5 s, so all requests are in flight when the signal comes.
    scenario = simrouter.load_scenario("breaker-failure", ["duration=30", "workload.rate=50", "backend.latency=5.0", "faults=[]"])
    with serving(scenario) as svc:
        generator = LoadGenerator(scenario, svc.url, LiveOptions())

        def interrupt_after_ten_arrivals():
            while generator.arrivals < 10:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_after_ten_arrivals, daemon=True).start()
        started = time.monotonic()
        result = asyncio.run(generator.run())
        elapsed = time.monotonic() - started
    requests = result.summary["requests"]
    assert result.cut_short and result.summary["live"]["cut_short"]
    assert requests["sent"] >= 10 and requests["interrupted"] == requests["sent"]
    assert elapsed < 10  # not the 30 s the scenario asked for
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_sigterm_to_the_cli_writes_the_json_and_exits_143(tmp_path):
    scenario = simrouter.load_scenario("concurrent", ["backend.latency=5.0", "workload.requests_per_user=1"])
    out = tmp_path / "cut.json"
    with serving(scenario) as svc:
        command = [sys.executable, "-m", "simrouter", "live", "concurrent", "--target", svc.url, "--set", "backend.latency=5.0",
                   "--set", "workload.requests_per_user=1", "--json", str(out)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while (svc.service._backend is None or svc.service._backend.busy < 10) and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 143, err.decode()  # 128 + SIGTERM, as shells report it
    data = json.loads(out.read_text())
    assert data["live"]["cut_short"] is True and data["live"]["interrupted_by"] == "SIGTERM"
    assert data["requests"]["sent"] == data["requests"]["interrupted"] == 10


# -- coordinated omission


@contextmanager
def stalling_target(stall_after: float, stall_for: float):
    """An HTTP target answering 200 at once, except that its event loop blocks for
    ``stall_for`` s at the first request after ``stall_after`` s of uptime."""
    started = time.monotonic()
    stalled = []

    async def submit(request):
        await request.read()
        if not stalled and time.monotonic() - started >= stall_after:
            stalled.append(True)
            time.sleep(stall_for)  # blocks the whole server, as a GC pause or a stuck thread would
        return web.Response(text="{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/submit", submit)
    ready, state = threading.Event(), {}

    async def main():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["url"] = "http://127.0.0.1:%d" % runner.addresses[0][1]
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield state["url"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
    assert stalled, "the target never stalled"


def test_coordinated_omission_stall_shows_in_corrected_latency_only():
    # 250 req/s evenly spaced for 3 s over 4 connections; the target stalls 1 s at ~1 s.
    scenario = simrouter.load_scenario("breaker-failure", ["duration=3", "workload.rate=250", "workload.arrival=constant", "faults=[]"])
    with stalling_target(stall_after=1.0, stall_for=1.0) as url:
        result = run_live(scenario, url, LiveOptions(connections=4, handle_signals=False))
    live = result.summary["live"]
    corrected, uncorrected = live["latency_ms_corrected"], live["latency_ms_uncorrected"]
    assert result.summary["requests"]["succeeded"] == result.summary["requests"]["sent"] == 750
    # ~250 arrivals fall in the stall and wait up to 1 s for a connection: a third of
    # all requests, so the corrected P90 sits well inside the stall and the max spans it.
    assert corrected["max"] >= 900 and corrected["p90"] >= 300
    # Measured from the actual send, only the <= 4 requests on the wire during the stall
    # (0.5 %) saw it: P99 stays at loopback speed.
    assert uncorrected["p99"] < 100 and uncorrected["p90"] < 50
    assert live["schedule"]["late"] >= 150
    # Late because every connection was busy with the stalled target, not because of the generator.
    assert live["generator"]["limited_by"] == "connections"
    assert any("waiting for a free connection" in note for note in live["notes"])
