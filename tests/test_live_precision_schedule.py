"""The live generator's open schedule: arrivals handed over by a thread at absolute
deadlines, ``--processes N`` fan-out merged into one result, ``--loop``, and the
heap frozen during a run. Real HTTP over loopback against a small aiohttp target
in a thread (not simrouter's serve); no timing is asserted (precision goals live in
``benchmarks/bench_precision.py``), only what was sent, when it was *intended*, and
the shape of the result.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from aiohttp import web

import simrouter
from simrouter.errors import ConfigError
from simrouter.live import hdr
from simrouter.live.loadgen import LiveOptions, run_live

RATE, SECONDS = 100, 1.5


@contextmanager
def foreign_target():
    """POST /submit answers ``{}`` at once; records each request's user key and the
    generator's heap-freeze count at that moment (same process); no /metrics (404)."""
    seen = {"users": [], "frozen": []}

    async def submit(request):
        body = await request.json()
        seen["users"].append(body["user"])
        seen["frozen"].append(gc.get_freeze_count())
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
    assert ready.wait(10)
    try:
        yield state["url"], seen
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def open_scenario(*extra):
    return simrouter.load_scenario(
        "baseline",
        ["workload.model=open", f"workload.rate={RATE}", "workload.arrival=constant", "workload.users=7", f"duration={SECONDS}",
         "limiter.algorithm=none", "breaker.preset=none", "warmup=0", *extra],
    )


def test_open_schedule_intended_times_are_the_exact_grid_and_every_arrival_is_sent_once():
    with foreign_target() as (url, seen):
        result = run_live(open_scenario(), url, LiveOptions(handle_signals=False))
    expected = int(RATE * SECONDS)
    assert result.arrivals == expected and len(result.sent) == expected
    np.testing.assert_allclose(np.sort(result.sent), np.arange(expected) / RATE, atol=1e-9)  # absolute deadlines, no drift
    assert np.all(result.ready >= result.sent) and np.all(result.actual >= result.ready) and np.all(result.done >= result.actual)
    assert len(seen["users"]) == expected  # every arrival reached the target once


def test_heap_is_frozen_while_sending_and_unfrozen_after():
    before = gc.get_freeze_count()
    with foreign_target() as (url, seen):
        run_live(open_scenario(), url, LiveOptions(handle_signals=False))
    assert max(seen["frozen"]) > 0  # requests were answered while the generator's heap was frozen
    assert gc.get_freeze_count() == before


def test_max_requests_bounds_the_schedule():
    with foreign_target() as (url, seen):
        result = run_live(open_scenario(), url, LiveOptions(handle_signals=False, max_requests=40))
    assert result.arrivals == 40 == len(seen["users"])
    np.testing.assert_allclose(np.sort(result.sent), np.arange(40) / RATE, atol=1e-9)


def test_two_processes_send_the_same_arrivals_with_the_same_keys_as_one():
    with foreign_target() as (url, seen_one):
        one = run_live(open_scenario(), url, LiveOptions(handle_signals=False, seed=3))
    with foreign_target() as (url, seen_two):
        two = run_live(open_scenario(), url, LiveOptions(handle_signals=False, seed=3, processes=2))
    expected = int(RATE * SECONDS)
    assert two.arrivals == one.arrivals == expected
    np.testing.assert_allclose(two.sent, np.arange(expected) / RATE, atol=1e-9)  # merged, in intended order
    assert sorted(seen_two["users"]) == sorted(seen_one["users"])  # every N-th arrival each: the same keys in all
    assert len(seen_two["users"]) == expected
    d1, d2 = one.to_dict(), two.to_dict()
    assert d1.keys() == d2.keys() and d1["live"].keys() == d2["live"].keys()  # identical in shape
    assert d2["live"]["latency_ms_corrected"]["count"] == d1["live"]["latency_ms_corrected"]["count"]
    assert any("2 generator processes" in note for note in d2["live"]["notes"])


def test_processes_need_the_open_model():
    with pytest.raises(ConfigError) as err:
        run_live(simrouter.load_scenario("baseline", []), "http://127.0.0.1:9", LiveOptions(processes=2))
    assert err.value.field == "--processes"


def test_loop_option_is_checked_and_uvloop_runs_when_installed():
    with pytest.raises(ConfigError) as err:
        run_live(open_scenario(), "http://127.0.0.1:9", LiveOptions(loop="trio"))
    assert err.value.field == "--loop"
    pytest.importorskip("uvloop")
    with foreign_target() as (url, seen):
        result = run_live(open_scenario(), url, LiveOptions(handle_signals=False, loop="uvloop"))
    assert len(seen["users"]) == int(RATE * SECONDS)
    latency = result.done - result.actual
    assert np.all(latency > 0) and len(np.unique(np.round(latency * 1e6))) > 10  # microsecond stamps, not uvloop's whole ms


def test_merged_histograms_equal_the_histogram_of_the_merged_requests():
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(-6, 1, size=n) for n in (3000, 2000, 1000)]
    merged = hdr.merge([hdr.encode(hdr.histogram(part)) for part in parts])
    whole = hdr.histogram(np.concatenate(parts))
    assert hdr.stats(merged) == hdr.stats(whole)
