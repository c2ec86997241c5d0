"""`limiter.tokens_per_minute` in the live service (`serve --protocol openai`, LLM backend).

* The service's limiter (``live.limiter_table``: one ``TokenLimit`` per key in the
  bounded table, or one for everyone) decides every request exactly as the
  simulation's ``TokenLimited`` does, on the same (key, time, cost) sequence.
* A refused request hears how long its budget needs to hold its cost (exact
  arithmetic on a known bucket); over the bucket: never.
* Over real HTTP on loopback: the second request of a drained budget is a 429 of
  OpenAI's TPM shape with a Retry-After that matches the bucket's arithmetic; a
  request over ``tokens_burst`` is a 429 "request too large" without Retry-After.

The rate_limited share against the simulation is tests/test_llm_tpm_twin.py's.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np
import pytest
from multidict import CIMultiDict

from simrouter.config import scenario_from_dict
from simrouter.live.limiter_table import LimiterTable, build_service_limiter
from simrouter.policies import build_limiter
from simrouter.policies.limiters.tokens import TokenBudget, TokenLimit, TokenLimited
from simrouter.protocols.encode import RequestEncoder
from openai_fixture import running_openai as running


def limiter_config(**limiter):
    return scenario_from_dict({"backend": {"model": "llm"}, "limiter": limiter}).limiter


@pytest.mark.parametrize(
    "limiter",
    [
        {"algorithm": "token_bucket", "rate": 3.0, "burst": 4, "scope": "per_user", "tokens_per_minute": 6000.0, "tokens_burst": 500.0},
        {"algorithm": "none", "scope": "per_user", "tokens_per_minute": 3000.0},
        {"algorithm": "sliding_window_log", "size": 2.0, "limit": 20, "scope": "global", "tokens_per_minute": 90000.0, "tokens_burst": 800.0},
        {"algorithm": "concurrency", "max_in_flight": 3, "scope": "per_user", "tokens_per_minute": 6000.0, "tokens_burst": 400.0},
    ],
    ids=["token_bucket-per_user", "none-per_user", "window-global", "concurrency-per_user"],
)
def test_the_services_token_limiter_decides_as_the_simulations(limiter):
    config = limiter_config(**limiter)
    rng = np.random.default_rng(7)
    n = 3000
    times = np.cumsum(rng.exponential(0.05, n))  # ~20 req/s over 4 keys: both limits bind
    keys = rng.integers(0, 4, n)
    costs = rng.integers(20, 300, n)
    cost = {"now": 0}
    simulated = TokenLimited(build_limiter(config), config.tokens_per_minute, config.tokens_burst, config.scope, lambda: cost["now"])
    service = build_service_limiter(config, cost=lambda: cost["now"])
    assert isinstance(service, LimiterTable) == (config.scope == "per_user")
    held: list[tuple[int, float]] = []  # (key, release time) of admitted requests, for the holding limiter
    decisions = []
    for t, key, c in zip(times, keys, costs):
        for k, done in [h for h in held if h[1] <= t]:
            simulated.release(k, done)
            service.release(k, done)
        held = [h for h in held if h[1] > t]
        cost["now"] = int(c)
        a, b = simulated.acquire(int(key), float(t)), service.acquire(int(key), float(t))
        assert a == b, (t, key, c)
        if a is not None and config.algorithm == "concurrency":
            held.append((int(key), float(t) + 0.3))
        decisions.append(a is not None)
    assert 0.2 < np.mean(decisions) < 0.9  # the sequence exercises admissions and refusals


def test_a_refusal_tells_how_long_the_budget_needs():
    heard = []
    cost = {"now": 900}
    limit = TokenLimit(None, TokenBudget(100.0, 1000.0, 0.0), lambda: cost["now"], heard.append)
    assert limit.try_acquire(0.0)  # 1000 - 900 = 100 left
    cost["now"] = 300
    assert not limit.try_acquire(1.0)  # 200 in the bucket: 100 missing at 100 per second
    assert heard == [pytest.approx(1.0)]
    assert limit.try_acquire(2.0)  # as told
    cost["now"] = 1001
    assert not limit.try_acquire(100.0)  # over the bucket: never
    assert heard[-1] == math.inf


def test_an_idle_keys_budget_is_forgotten_once_full_again():
    config = limiter_config(algorithm="none", scope="per_user", tokens_per_minute=600.0, tokens_burst=100.0)  # full again after 10 s
    table = build_service_limiter(config, cost=lambda: 60)
    assert table.horizon == pytest.approx(10.0)
    assert table.try_acquire(1, 0.0)
    assert not table.try_acquire(1, 1.0)  # 40 + 10 < 60
    table.try_acquire(2, 11.5)  # another key's call evicts key 1, idle 10.5 s
    assert len(table) == 1 and table.try_acquire(1, 11.5)


# ---------------------------------------------------------------- over HTTP


def tpm_scenario():
    return scenario_from_dict(
        {
            "limiter": {"algorithm": "none", "scope": "global", "tokens_per_minute": 600.0, "tokens_burst": 100.0},  # 10 tokens/s
            "breaker": {"preset": "none"},
            "workload": {"model": "open", "rate": 1.0, "tokens": {"prompt": {"dist": "constant", "value": 30}, "output": {"dist": "constant", "value": 5}}},
            "backend": {
                "model": "llm",
                "max_num_seqs": 4,
                "step_time": {"base": 0.002, "per_prefill_token": 0.00001, "per_decode_token": 0.0001},
                "failures": {"processing": 0, "timeout": 0, "validation": 0},
            },
            "request": {"protocol": "openai-chat", "model": "m", "stream": False, "max_tokens": 40},  # each costs 30 + 40 = 70 tokens
        }
    )


async def post(session, url, s, seq, **body):
    encoded = RequestEncoder(s.request).encode(0, seq)
    data = json.dumps({**json.loads(encoded.body), **body}).encode()
    async with session.post(url + encoded.path, headers=CIMultiDict(encoded.headers), data=data) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def test_a_drained_token_budget_answers_openais_tpm_429_with_retry_after():
    s = tpm_scenario()

    async def main():
        async with running(s) as (session, url, _):
            started = time.monotonic()
            first = await post(session, url, s, 0)  # 100 - 70: 30 tokens left
            second = await post(session, url, s, 1)
            elapsed = time.monotonic() - started
            too_large = await post(session, url, s, 2, max_tokens=200)  # 230 > the 100-token bucket
            metrics = await (await session.get(url + "/metrics")).json()
            return first, second, elapsed, too_large, metrics

    first, (status, headers, body), elapsed, too_large, metrics = asyncio.run(asyncio.wait_for(main(), 60))
    assert first[0] == 200 and first[2]["usage"]["prompt_tokens"] == 30
    assert status == 429 and headers["X-Simrouter-Outcome"] == "rate_limited"
    assert body["error"]["type"] == "tokens" and body["error"]["code"] == "rate_limit_exceeded"
    assert "tokens per min" in body["error"]["message"]
    # 40 tokens missing at 10 per second, less what refilled between the two admissions (< elapsed).
    wait_ms = int(headers["retry-after-ms"])
    assert 4000 - 1000 * elapsed - 1 <= wait_ms <= 4000
    assert int(headers["Retry-After"]) == max(1, math.ceil(wait_ms / 1000))
    assert headers["x-ratelimit-limit-tokens"] == "600"
    assert 0 <= int(headers["x-ratelimit-remaining-tokens"]) < 70
    status, headers, body = too_large
    assert status == 429 and body["error"]["type"] == "tokens" and "Retry-After" not in headers and "too large" in body["error"]["message"]
    assert metrics["requests"]["rate_limited"] == 2 and metrics["requests"]["succeeded"] == 1
