"""Tokens-per-minute limits (policies/limiters/tokens.py) and requests as data (sim/requests.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simrouter import simulate
from simrouter.errors import ConfigError
from simrouter.policies.limiters.scope import GlobalLimiter, NoLimiter
from simrouter.policies.limiters.token_bucket import TokenBucket
from simrouter.policies.limiters.tokens import TokenBudget, TokenLimited


@settings(max_examples=200, deadline=None)
@given(
    tpm=st.floats(600, 1e6),
    burst_minutes=st.floats(0.05, 2.0),
    requests=st.lists(st.tuples(st.floats(0, 5.0), st.integers(1, 5000)), min_size=1, max_size=200),
)
def test_never_more_than_rate_times_window_plus_burst(tpm, burst_minutes, requests):
    """In every window [a, b] of admission times: admitted tokens <= tpm x (b - a) / 60 + burst."""
    burst = tpm * burst_minutes
    cost = {"now": 0}
    limiter = TokenLimited(NoLimiter(), tpm, burst, "global", lambda: cost["now"])
    now, admitted = 0.0, []
    for gap, tokens in requests:
        now += gap
        cost["now"] = tokens
        if limiter.try_acquire(0, now):
            admitted.append((now, tokens))
    times = np.array([t for t, _ in admitted])
    tokens = np.array([n for _, n in admitted], dtype=float)
    for i in range(len(admitted)):
        for j in range(i, len(admitted)):
            window = times[j] - times[i]
            assert tokens[i : j + 1].sum() <= tpm * window / 60.0 + burst + 1e-6 * burst


def test_request_limiter_composes_and_rejection_spends_nothing():
    cost = {"now": 100}
    inner = GlobalLimiter(TokenBucket(rate=1.0, burst=1))
    limiter = TokenLimited(inner, 6000, 250, "per_user", lambda: cost["now"])
    assert limiter.try_acquire(1, 0.0)  # 100 of 250 tokens, the request bucket's only token
    assert not limiter.try_acquire(1, 0.0)  # the request limiter says no: no tokens spent
    assert limiter.try_acquire(1, 1.0)  # 150 + 100 refilled, a new request token
    cost["now"] = 1000
    assert not limiter.try_acquire(2, 5.0)  # more than the bucket ever holds
    assert limiter.rejected_tokens == 1
    budget = TokenBudget(100.0, 100.0)
    assert budget.try_take(100, 0.0) and not budget.try_take(1, 0.0) and budget.try_take(50, 0.5)


def tpm_run(tpm, *extra):
    return simulate(
        "baseline",
        overrides=[
            'workload.model="open"', "workload.rate=4", "duration=120", "workload.users=1",
            'backend.model="llm"', 'limiter.algorithm="none"', f"limiter.tokens_per_minute={tpm}",
            "workload.tokens.prompt=500", "workload.tokens.output=100", "router.timeout=inf", *extra,
        ],
    )


def test_tpm_quota_rejects_as_rate_limited_at_its_rate():
    """600 tokens per request, 4 req/s offered = 144k tokens/min; a 36k TPM quota
    admits 1 req/s (60/min) plus the first minute's burst of 60 requests."""
    r = tpm_run(36000)
    s = r.summary["requests"]
    admitted = s["sent"] - s["rate_limited"]
    assert s["rate_limited"] > 0
    assert abs(admitted - (36000 * 120 / 60 / 600 + 36000 / 600)) <= 2
    free = tpm_run(1e9)
    assert free.summary["requests"]["rate_limited"] == 0


def test_max_tokens_is_what_the_quota_counts():
    """With [request] max_tokens = 1000 each request counts 500 + 1000 tokens."""
    r = tpm_run(36000, "request.max_tokens=1000", 'request.protocol="openai-chat"', 'request.model="m"')
    s = r.summary["requests"]
    assert abs((s["sent"] - s["rate_limited"]) - (36000 * 2 / 1500 + 36000 / 1500)) <= 2


def test_trace_replay(tmp_path):
    trace = tmp_path / "requests.jsonl"
    rows = [{"t": 0.5 * i, "prompt_tokens": 10 + i, "output_tokens": 1 + i % 3} for i in range(20)]
    trace.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    r = simulate("baseline", overrides=['workload.model="open"', "workload.rate=1", "duration=100", 'backend.model="llm"',
                                        f'workload.tokens.trace="{trace}"', "backend.failures.processing=0", "backend.failures.validation=0"])
    assert np.allclose(np.sort(r.sent), [row["t"] for row in rows])
    assert r.summary["tokens"]["prompt"] == sum(row["prompt_tokens"] for row in rows)
    assert r.summary["tokens"]["output"] == sum(row["output_tokens"] for row in rows)
    trace.write_text('{"t": 1, "prompt_tokens": 0, "output_tokens": 3}\n')
    with pytest.raises(ConfigError, match="workload.tokens.trace"):
        simulate("baseline", overrides=['workload.model="open"', "workload.rate=1", "duration=100", 'backend.model="llm"', f'workload.tokens.trace="{trace}"'])


def test_token_limit_needs_the_llm_backend():
    with pytest.raises(ConfigError, match="limiter.tokens_per_minute"):
        simulate("baseline", overrides=["limiter.tokens_per_minute=1000"])


def test_tokens_rounded_up_to_at_least_one():
    r = simulate("baseline", overrides=['workload.model="open"', "workload.rate=20", "duration=20", 'backend.model="llm"',
                                        'workload.tokens.prompt={dist="exponential", mean=0.3}', "workload.tokens.output=0.2",
                                        "backend.failures.processing=0", "backend.failures.validation=0", "router.timeout=inf"])
    ok = r.kind == 0
    assert np.all(r.llm.output_tokens[ok] == 1) and np.all(r.llm.prompt_tokens >= 1)


def test_sweep_over_max_num_seqs_reports_ttft():
    """The LLM figures are sweep metrics: TTFT grows when slots, not compute, bind."""
    from simrouter.sweepfile import sweep_from_dict
    from simrouter.sweeps import sweep

    spec = sweep_from_dict({"scenario": "llm-chat", "replications": 1, "metrics": ["ttft_ms.p95", "batch.mean_running", "goodput.fraction"],
                            "set": {"duration": 60}, "grid": {"backend": {"max_num_seqs": [2, 64]}}})
    table = sweep(spec).set_index("backend.max_num_seqs")
    assert table.loc[2, "ttft_ms.p95"] > 10 * table.loc[64, "ttft_ms.p95"]
    assert table.loc[2, "goodput.fraction"] < table.loc[64, "goodput.fraction"]
    assert table.loc[2, "batch.mean_running"] <= 2.0
