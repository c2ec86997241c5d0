"""`serve --protocol openai` with `backend.model = "llm"`: the batching scheduler in real time.

* One scheduler, two engines: ``sim.batching.BatchScheduler`` driven by a bare loop
  (no SimPy, no asyncio: just ``now += duration``) gives the SimPy backend's steps and
  first tokens exactly, so neither engine adds a decision of its own.
* Over real HTTP on loopback (aiohttp client, answers decoded by the protocol layer):
  each arrival carries replication 0's tokens (``usage``), one content chunk per
  token, ``max_tokens`` cuts with "length", a full queue is a 503 ``queue_full``, a
  client that goes away takes its sequence out of the batch, ``/metrics`` shows the
  batch, and serve refuses an LLM scenario on a protocol that cannot stream tokens.

No assertion here is on a time: the twin's timing is tests/test_llm_serve_twin.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import numpy as np
import pytest
from multidict import CIMultiDict

from simrouter.config import scenario_from_dict
from simrouter.distributions import VariateStream
from simrouter.errors import ConfigError
from simrouter.live.llm_engine import arrival_tokens
from simrouter.protocols.encode import RequestEncoder
from simrouter.protocols.stream import StreamAccumulator
from simrouter.sim import simulate, streams
from simrouter.sim.batching import BatchScheduler, Sequence, StepLog
from simrouter.sim.requests import LLMRequest
from openai_fixture import running_openai as running

NO_FAILURES = {"processing": 0, "timeout": 0, "validation": 0}


def llm_scenario(backend=None, request=None, **sections):
    data = {
        "limiter": {"algorithm": "none"},
        "breaker": {"preset": "none"},
        "workload": {"model": "open", "rate": 5.0, "users": 4, "tokens": {"prompt": {"dist": "lognormal", "p50": 100, "p99": 400}, "output": {"dist": "exponential", "mean": 8}}},
        "backend": {
            "model": "llm",
            "max_num_seqs": 8,
            "max_num_batched_tokens": 512,
            "step_time": {"base": 0.002, "per_prefill_token": 0.00001, "per_decode_token": 0.0001},
            "failures": dict(NO_FAILURES),
            **(backend or {}),
        },
        "request": {"protocol": "openai-chat", "model": "m", "stream": True, **(request or {})},
        **sections,
    }
    return scenario_from_dict(data)


# ---------------------------------------------------------------- one scheduler, two engines


def test_bare_loop_on_the_scheduler_reproduces_the_simpy_backend():
    # A small KV cache: preemptions, and a few requests too long ever to fit (refused).
    busy = {"model": "open", "rate": 40.0, "users": 4, "tokens": {"prompt": {"dist": "lognormal", "p50": 100, "p99": 400}, "output": {"dist": "exponential", "mean": 20}}}
    s = llm_scenario(duration=20.0, warmup=0.0, workload=busy, backend={"max_num_seqs": 4, "max_num_batched_tokens": 128, "kv_cache_tokens": 250})
    result = simulate(s, seed=2)
    ok = np.isfinite(result.llm.first_token)
    # The same requests at the same times, through a loop that only adds durations.
    source = arrival_tokens(s, 2)
    arrivals = [(t, source.next()) for t in np.sort(result.sent)]  # the i-th arrival carries the i-th request
    uniform = lambda sid: VariateStream(lambda g, n: g.random(n), streams.stream(2, 0, sid))
    finished: list[Sequence] = []
    steps = StepLog()
    scheduler = BatchScheduler(s.backend, [], uniform(streams.BACKEND_OUTCOME), uniform(streams.FAULT_OUTCOME), finished.append, steps)
    seqs, refused, now, i = [], 0, 0.0, 0
    while i < len(arrivals) or scheduler.running_count or scheduler.waiting_count:
        if scheduler.waiting_count == 0 and not scheduler.running_count:
            now = max(now, arrivals[i][0])  # idle until the next arrival
        while i < len(arrivals) and arrivals[i][0] <= now:  # those that came during the step
            seq = Sequence(None, arrivals[i][1], arrivals[i][0])
            assert scheduler.submit(seq, arrivals[i][0])
            seqs.append(seq)
            i += 1
        refused += len(scheduler.refused)
        scheduler.refused.clear()
        duration = scheduler.plan_step(now)
        if duration is not None:
            now += duration
            scheduler.end_step(now)
    assert len(finished) == int(ok.sum()) == len(seqs) - refused
    assert refused > 0 and scheduler.preemptions > 0
    simulated = steps.columns()
    sim_steps = result.llm.steps
    assert simulated["duration"].size == sim_steps["duration"].size
    assert np.allclose(simulated["duration"], sim_steps["duration"], rtol=0, atol=1e-12)
    assert np.array_equal(simulated["running"], sim_steps["running"])
    assert np.allclose(np.sort([q.first_token for q in finished]), np.sort(result.llm.first_token[ok]), rtol=0, atol=1e-9)
    assert scheduler.preemptions == result.llm.preemptions


def test_scheduler_cancel_frees_the_slot_for_the_next_in_line():
    s = llm_scenario(backend={"max_num_seqs": 1})
    one = lambda: VariateStream(lambda g, n: g.random(n), np.random.default_rng(0))
    scheduler = BatchScheduler(s.backend, [], one(), one(), lambda seq: None)
    first, second = Sequence(None, LLMRequest(10, 100), 0.0), Sequence(None, LLMRequest(10, 5), 0.0)
    scheduler.submit(first, 0.0)
    scheduler.submit(second, 0.0)
    scheduler.end_step(scheduler.plan_step(0.0))
    assert list(scheduler.running()) == [first] and scheduler.waiting_count == 1 and scheduler.emitted(first) == 1
    assert scheduler.cancel(first, 0.1) and not scheduler.cancel(first, 0.1)
    scheduler.plan_step(0.1)
    assert list(scheduler.running()) == [second] and scheduler.waiting_count == 0


# ---------------------------------------------------------------- over HTTP




async def stream_one(session, url, s, seq=0, **body):
    encoded = RequestEncoder(s.request).encode(0, seq)
    data = encoded.body
    if body:
        import json

        data = json.dumps({**json.loads(data), **body}).encode()
    async with session.post(url + encoded.path, headers=CIMultiDict(encoded.headers), data=data) as resp:
        if resp.status != 200:
            return resp.status, await resp.json(), None
        acc = StreamAccumulator("openai-chat")
        async for piece in resp.content.iter_any():
            acc.feed(piece, time.monotonic())
        return resp.status, None, acc.finish(time.monotonic())


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_each_arrival_streams_replication_0s_tokens_one_chunk_per_token():
    s = llm_scenario()
    expected = arrival_tokens(s, 1)
    wanted = [expected.next() for _ in range(4)]

    async def main():
        async with running(s) as (session, url, _):
            return [await stream_one(session, url, s, seq=i) for i in range(4)]  # one after another: arrival order known

    for (status, _, summary), request in zip(run(main()), wanted):
        assert status == 200 and summary.done and summary.finish_reason in ("stop", "length")
        assert summary.prompt_tokens == request.prompt  # the drawn prompt, not the text's length / 4
        assert summary.usage_output_tokens == request.output == summary.content_chunks
        assert summary.finish_reason == "stop"


def test_max_tokens_cuts_the_output_with_length():
    s = llm_scenario(workload={"model": "open", "rate": 5.0, "users": 4, "tokens": {"output": {"dist": "constant", "value": 20}}})

    async def main():
        async with running(s) as (session, url, _):
            return await stream_one(session, url, s, max_tokens=3)

    status, _, summary = run(main())
    assert status == 200 and summary.content_chunks == 3 and summary.usage_output_tokens == 3 and summary.finish_reason == "length"


def test_full_queue_is_a_503_queue_full_and_metrics_show_the_batch():
    long_output = {"model": "open", "rate": 5.0, "users": 4, "tokens": {"prompt": {"dist": "constant", "value": 10}, "output": {"dist": "constant", "value": 400}}}
    s = llm_scenario(backend={"max_num_seqs": 1, "queue_limit": 1}, workload=long_output)

    async def main():
        async with running(s) as (session, url, _):
            first = asyncio.ensure_future(stream_one(session, url, s, seq=0))
            second = asyncio.ensure_future(stream_one(session, url, s, seq=1))
            while True:  # until the first runs and the second waits (no timing assumed)
                metrics = await (await session.get(url + "/metrics")).json()
                llm = metrics["service"]["llm"]
                if llm and llm["running"] == 1 and llm["waiting"] == 1:
                    break
                await asyncio.sleep(0.01)
            third = await stream_one(session, url, s, seq=2)
            first.cancel()
            second.cancel()
            return llm, metrics, third

    llm, metrics, (status, body, _) = run(main())
    assert status == 503 and body["error"]["code"] == "queue_full"
    assert llm["steps"] >= 1 and llm["step_lag_ms"]["mean"] is not None
    assert metrics["service"]["busy"] == 1 and metrics["service"]["queued"] == 1
    assert metrics["backend"]["capacity"] == 1  # sequence slots, as the simulation's summary


def test_a_client_that_goes_away_leaves_the_batch():
    long_output = {"model": "open", "rate": 5.0, "users": 4, "tokens": {"prompt": {"dist": "constant", "value": 10}, "output": {"dist": "constant", "value": 100_000}}}
    s = llm_scenario(workload=long_output)

    async def main():
        async with running(s) as (session, url, service):
            encoded = RequestEncoder(s.request).encode(0, 0)
            async with aiohttp.ClientSession() as own:
                resp = await own.post(url + encoded.path, headers=CIMultiDict(encoded.headers), data=encoded.body)
                await resp.content.readany()  # the first token came
                assert service.engine.busy == 1
                resp.close()  # the client goes away mid-stream
            for _ in range(1000):  # the next write fails and cancels the sequence
                if service.engine.busy == 0:
                    break
                await asyncio.sleep(0.01)
            return service.engine.busy, service.engine.gauges()

    busy, gauges = run(main())
    assert busy == 0 and gauges["running"] == 0 and gauges["waiting"] == 0


def test_serve_refuses_an_llm_scenario_without_the_openai_protocol(tmp_path):
    from simrouter.commands.serve import _serve

    s = llm_scenario()
    args = argparse.Namespace(protocol="simrouter", upstream=None, host="127.0.0.1", port=0, seed=1, header_timeout=10.0)
    with pytest.raises(ConfigError, match="--protocol"):
        asyncio.run(_serve(s, args, None))


def test_compare_refuses_an_llm_scenario_on_a_protocol_without_tokens():
    from simrouter.live.compare import compare

    s = scenario_from_dict({**llm_scenario().to_dict(), "request": {"protocol": "simrouter"}})
    with pytest.raises(ConfigError, match="request.protocol"):
        compare(s, replications=2, target="http://127.0.0.1:9")
