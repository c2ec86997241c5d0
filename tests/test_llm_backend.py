"""The LLM backend (sim/llm_backend.py): exact single-request timings, batching
rules, KV-cache preemption, faults and policies, and processor sharing.

Processor sharing (M/G/1-PS): with ``base = per_prefill_token = 0`` and unlimited
``max_num_seqs`` / token budget, a step serving n sequences costs
``per_decode_token x n`` and gives each one token, so a request of k output
tokens needs service ``S = per_decode_token x k`` shared equally: mean E2E =
E[S] / (1 - rho) whatever the distribution of k. The engine is step-based (an
arrival joins at the next step boundary, a step is never split), a
discretisation of PS whose bias is of the order of one step per request,
~rho / (2 x mean tokens). Measured with 20-token requests at rho 0.7 (30
replications of 1000 s): -1.1 % +/- 1.4 % (geometric) and -1.5 % +/- 0.7 %
(constant). Each check: R independent replications, one mean per replication,
a 99.9 % Student-t interval, widened by DISCRETISATION_TOL = 2 % of theory.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simrouter import simulate
from simrouter.errors import ConfigError

QUIET = [
    "backend.failures.processing=0",
    "backend.failures.validation=0",
    'limiter.algorithm="none"',
    'breaker.preset="none"',
    "router.timeout=inf",
]


def llm(*extra, base=0.01, per_prefill=0.0001, per_decode=0.002, seqs=64, budget=8192):
    return [
        'backend.model="llm"',
        f"backend.max_num_seqs={seqs}",
        f"backend.max_num_batched_tokens={budget}",
        f"backend.step_time={{base={base}, per_prefill_token={per_prefill}, per_decode_token={per_decode}}}",
        *QUIET,
        *extra,
    ]


def one_request(prompt, output, **kw):
    overrides = llm("workload.model=\"open\"", "workload.rate=1", "workload.max_requests=1", "duration=100", f"workload.tokens.prompt={prompt}", f"workload.tokens.output={output}", **kw)
    return simulate("baseline", overrides=overrides)


@pytest.mark.parametrize("prompt,output,budget", [(1000, 5, 384), (1000, 5, 8192), (7, 1, 64), (384, 3, 384)])
def test_lone_request_ttft_and_e2e_exactly(prompt, output, budget):
    base, per_prefill, per_decode = 0.01, 0.0001, 0.002
    result = one_request(prompt, output, budget=budget)
    chunks = math.ceil(prompt / budget)
    ttft = chunks * base + per_prefill * prompt + per_decode  # the last prefill step samples the first token
    e2e = ttft + (output - 1) * (base + per_decode)
    s = result.summary
    assert s["requests"]["succeeded"] == 1
    assert result.llm.first_token[0] - result.sent[0] == pytest.approx(ttft, rel=1e-12)
    assert result.done[0] - result.sent[0] == pytest.approx(e2e, rel=1e-12)
    assert s["ttft_ms"]["p50"] == pytest.approx(ttft * 1000)
    assert s["tokens"]["output"] == output and s["tokens"]["prompt"] == prompt
    if output > 1:
        assert s["tpot_ms"]["p50"] == pytest.approx((base + per_decode) * 1000)
        assert s["itl_ms"]["count"] == output - 1 and s["itl_ms"]["p99"] == pytest.approx((base + per_decode) * 1000)
    assert s["batch"]["steps"] == chunks + output - 1


def two_at_once(seqs, budget, prompt=100, output=4):
    """Two requests sent at t=0 (constant arrivals at a huge rate: the 2nd at 1e-9 s)."""
    return simulate(
        "baseline",
        overrides=llm('workload.model="open"', "workload.arrival=\"constant\"", "workload.rate=1e9", "workload.max_requests=2", "duration=10",
                      f"workload.tokens.prompt={prompt}", f"workload.tokens.output={output}", seqs=seqs, budget=budget, per_prefill=0.0),
    )


def test_fcfs_slot_limit_second_request_waits_for_the_first():
    base, per_decode = 0.01, 0.002
    r = two_at_once(seqs=1, budget=1000)
    ends = r.done - r.sent
    # the first's prefill step started alone at t=0; the second waits for its last token
    one = 4 * (base + per_decode)
    assert r.done[0] == pytest.approx(one)
    assert r.llm.first_token[1] == pytest.approx(one + base + per_decode)
    assert ends.max() == pytest.approx(2 * one, abs=1e-8)


def test_batch_shares_steps_and_decode_counts_first():
    """max_num_seqs = 2: the second joins at the first step boundary; from then both
    decode in every step (step = base + per_decode x 2)."""
    base, per_decode = 0.01, 0.002
    r = two_at_once(seqs=2, budget=1000)
    first_step = base + per_decode
    assert r.llm.first_token[0] == pytest.approx(first_step)
    # step 2: 1 decoding + the second's prefill completing: 2 emitting
    assert r.llm.first_token[1] == pytest.approx(first_step + base + 2 * per_decode)
    assert r.summary["batch"]["max_running"] == 2


def test_token_budget_chunks_newcomers_after_decodes():
    """Budget 64, the first decoding takes 1 token, so the second's 100-token prompt
    takes chunks of 63 then 37 (decode tokens counted first, as vLLM)."""
    base, per_prefill, per_decode = 0.01, 0.0001, 0.002
    r = simulate(
        "baseline",
        overrides=llm('workload.model="open"', "workload.arrival=\"constant\"", "workload.rate=1e9", "workload.max_requests=2", "duration=10",
                      "workload.tokens.prompt=64", "workload.tokens.output=10", seqs=2, budget=64),
    )
    # first: one step with its 64-token prompt; the second joined at step 2 with 63... of 64 (prompt 64: 63 + 1)
    t1 = base + per_prefill * 64 + per_decode
    assert r.llm.first_token[0] == pytest.approx(t1)
    t2 = t1 + base + per_prefill * 63 + per_decode  # 1 decode + 63 prefill tokens
    t3 = t2 + base + per_prefill * 1 + 2 * per_decode  # 1 decode + the last prompt token, which samples
    assert r.llm.first_token[1] == pytest.approx(t3)


def test_kv_cache_preempts_newest_and_recomputes():
    """A cache of 120 tokens, two 50-token prompts producing 30 tokens each: both
    fit at first, then generation outgrows the cache and the newest is preempted
    and recomputed; everything still completes, later than without the limit."""
    common = ['workload.model="open"', "workload.arrival=\"constant\"", "workload.rate=1e9", "workload.max_requests=2", "duration=10",
              "workload.tokens.prompt=50", "workload.tokens.output=30"]
    free = simulate("baseline", overrides=llm(*common, seqs=4, budget=256))
    tight = simulate("baseline", overrides=llm(*common, "backend.kv_cache_tokens=120", seqs=4, budget=256))
    assert tight.summary["requests"]["succeeded"] == 2
    assert tight.summary["batch"]["preemptions"] >= 1 and free.summary["batch"]["preemptions"] == 0
    assert tight.done.max() > free.done.max()
    assert tight.summary["tokens"]["output"] == 60
    # a request that can never fit fails at once
    too_big = simulate("baseline", overrides=llm(*common, "backend.kv_cache_tokens=60", seqs=4, budget=256))
    assert too_big.summary["requests"]["failures"] == 2


def test_fault_multiplies_step_time_and_fails_requests():
    slow = one_request(100, 5, per_prefill=0.0)
    faulty = simulate("baseline", overrides=llm('workload.model="open"', "workload.rate=1", "workload.max_requests=1", "duration=100",
                                                "workload.tokens.prompt=100", "workload.tokens.output=5", "faults=[{start=0, end=50, latency_factor=3}]", per_prefill=0.0))
    assert faulty.done[0] - faulty.sent[0] == pytest.approx(3 * (slow.done[0] - slow.sent[0]))
    failing = simulate("baseline", overrides=llm('workload.model="open"', "workload.rate=5", "duration=20",
                                                 "faults=[{start=0, end=20, error_rate=1}]"))
    assert failing.summary["requests"]["failures"] == failing.summary["requests"]["sent"]


def test_router_timeout_retries_and_hedges_work():
    base = ['workload.model="open"', "workload.rate=20", "duration=30", "workload.tokens.prompt=200", "workload.tokens.output=100"]
    timed = simulate("baseline", overrides=llm(*base, seqs=2))
    timed = simulate("baseline", overrides=[*llm(*base, seqs=2), "router.timeout=1.0"])
    assert timed.summary["requests"]["timeouts"] > 0
    assert (timed.done - timed.sent).max() <= 1.0 + 1e-9
    retried = simulate("baseline", overrides=[*llm(*base, seqs=2), "router.timeout=1.0", "router.retry.max_attempts=3", "router.retry.retry_on=[\"timeouts\"]"])
    assert retried.summary["attempts"]["retries"] > 0
    hedged = simulate("baseline", overrides=[*llm(*base, seqs=8), "router.hedge.max_hedges=1", "router.hedge.delay=0.2", "router.hedge.cancel_loser=true"])
    assert hedged.summary["attempts"]["hedges"] > 0 and hedged.summary["requests"]["succeeded"] > 0
    # every answered exchange that succeeded has a first token no later than its end
    ok = hedged.kind == 0
    assert np.all(hedged.llm.first_token[ok] <= hedged.done[ok] + 1e-12)


def test_queue_limit_rejects_as_queue_full():
    r = simulate("baseline", overrides=llm('workload.model="open"', "workload.rate=50", "duration=10", "backend.queue_limit=2",
                                           "workload.tokens.output=200", seqs=2))
    assert r.summary["requests"]["queue_full"] > 0


def test_bad_llm_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="max_num_batched_tokens"):
        simulate("baseline", overrides=llm(seqs=64, budget=32))
    with pytest.raises(ConfigError, match='backend.model = "llm"'):
        simulate("baseline", overrides=["backend.max_num_seqs=4"])
    with pytest.raises(ConfigError, match="backend.model"):
        simulate("baseline", overrides=['backend.model="vllm"'])


def test_common_random_numbers_same_requests_whatever_the_server():
    base = ['workload.model="open"', "workload.rate=5", "duration=30"]
    a = simulate("baseline", overrides=llm(*base, seqs=4))
    b = simulate("baseline", overrides=llm(*base, seqs=64))
    n = min(a.sent.size, b.sent.size)
    assert np.array_equal(np.sort(a.sent)[:n], np.sort(b.sent)[:n])
    assert a.summary["tokens"]["prompt"] > 0


# ---------------------------------------------------------------- processor sharing

DISCRETISATION_TOL = 0.02
PDT = 0.005


def ps_overrides(output: str, rate: float, duration: float):
    return [
        'workload.model="open"', f"workload.rate={rate}", f"duration={duration}", "warmup=50",
        "workload.tokens.prompt=1", f"workload.tokens.output={output}", "backend.queue_limit=1000000",
        *llm(base=0, per_prefill=0, per_decode=PDT, seqs=1000000, budget=10000000),
    ]


@pytest.mark.parametrize(
    "output,mean_tokens",
    [
        ('{dist="exponential", mean=20}', 1 / (1 - math.exp(-1 / 20))),  # ceil of an exponential: geometric
        ("20", 20.0),  # constant: M/D/1-PS
    ],
    ids=["geometric", "constant"],
)
def test_processor_sharing_mean_e2e(output, mean_tokens):
    rate, R = 7.0, 10
    es = PDT * mean_tokens
    rho = rate * es
    theory = es / (1 - rho)
    means = np.array([simulate("baseline", seed=11, overrides=ps_overrides(output, rate, 600), replication=r).latencies().mean() for r in range(R)])
    half = stats.t.ppf(0.9995, R - 1) * means.std(ddof=1) / math.sqrt(R)
    assert abs(means.mean() - theory) <= half + DISCRETISATION_TOL * theory, (means.mean(), theory, half)
    # power: a wrong load (rho off by 10 %) would be outside
    wrong = es / (1 - 1.1 * rho)
    assert abs(means.mean() - wrong) > half + DISCRETISATION_TOL * theory


@pytest.mark.parametrize("timeout,kind", [(1.0, "succeeded"), (0.999, "timeouts")])
def test_ending_exactly_at_the_deadline_succeeds(timeout, kind):
    """Times on a binary grid: TTFT 0.5 s, E2E 1.0 s exactly; a router timeout of 1.0 s
    is met (instants.py, rule 1), 0.999 s is not."""
    r = simulate("baseline", overrides=[*llm('workload.model="open"', "workload.rate=1", "workload.max_requests=1", "duration=10",
                                              "workload.tokens.prompt=1", "workload.tokens.output=2", base=0.25, per_prefill=0.0, per_decode=0.25),
                                        f"router.timeout={timeout}"])
    assert r.summary["requests"][kind] == 1


def test_per_request_frame_has_ttft_and_tokens():
    r = simulate("baseline", overrides=llm('workload.model="open"', "workload.rate=5", "duration=10"))
    frame = r.to_frame()
    ok = frame.outcome == "succeeded"
    assert (frame.ttft_ms[ok] > 0).all() and (frame.ttft_ms[ok] <= frame.latency_ms[ok]).all()
    assert (frame.output_tokens[ok] >= 1).all() and frame.ttft_ms[~ok].isna().all()


def test_plots_include_ttft_itl_and_batch_size(tmp_path):
    from simrouter.report.run_plots import run_figures, write_run_plots

    r = simulate("baseline", overrides=llm('workload.model="open"', "workload.rate=5", "duration=10"))
    assert len(run_figures(r)["llm"].axes) == 3
    assert any(path.name.endswith("-llm.png") for path in write_run_plots(r, tmp_path))
    assert "llm" not in run_figures(simulate("baseline"))
