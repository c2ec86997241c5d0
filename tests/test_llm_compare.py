"""Replicated TTFT / ITL / TPOT percentiles (pooled, sectioning intervals) and ``compare``'s LLM rows.

Every figure is checked against an independent computation from the runs' raw
records (per-request first tokens, per-step durations and decode counts), not
against the code's own helpers.
"""

from __future__ import annotations

import numpy as np
import pytest

from simrouter.config import load_scenario, scenario_from_dict
from simrouter.live.compare import LLM_METRICS, comparison_rows, live_token_figures
from simrouter.replications import replicate
from simrouter.sim import simulate
from simrouter.stats import quantile_interval

OVERRIDES = ["duration=40", "workload.rate=10"]
SEED = 4


@pytest.fixture(scope="module")
def replicated():
    return replicate("llm-chat", seed=SEED, replications=4, overrides=OVERRIDES)


def raw(replication: int):
    """(TTFT ms of measured successes, every inter-token gap ms expanded) from one run's records."""
    result = simulate(load_scenario("llm-chat", OVERRIDES), seed=SEED, replication=replication)
    llm = result.llm
    ok = result.measured & (result.kind == 0) & np.isfinite(llm.first_token)
    steps = llm.steps
    after = steps["end"] >= result.scenario.warmup
    gaps = np.concatenate([np.repeat(steps["duration"][after], steps["decoded"][after]), steps["gaps"]])
    return (llm.first_token[ok] - result.sent[ok]) * 1000.0, gaps * 1000.0


def inverted_cdf(values: np.ndarray, q: float) -> float:
    """The smallest value at or above the fraction q of the sorted values (ITL's definition)."""
    ordered = np.sort(values)
    return float(ordered[max(0, int(np.ceil(q * ordered.size)) - 1)])


def test_ttft_percentiles_are_pooled_with_sectioning_intervals(replicated):
    ttft = [raw(r)[0] for r in range(4)]
    pooled = np.concatenate(ttft)
    summary = replicated.summary
    for p in (50, 95, 99):
        assert summary["ttft_ms"][f"p{p}"] == pytest.approx(np.percentile(pooled, p), rel=1e-12)
        expected = quantile_interval(ttft, p / 100)
        assert summary["ci95"][f"ttft_ms.p{p}"] == pytest.approx([expected.low, expected.high], rel=1e-12)
    # Not the mean of the replications' own P95s (what the summary held before).
    assert summary["ttft_ms"]["p95"] != pytest.approx(np.mean([s["ttft_ms"]["p95"] for s in replicated.summaries]), rel=1e-6)


def test_itl_percentiles_are_the_pooled_gaps_inverted_cdf(replicated):
    gaps = [raw(r)[1] for r in range(4)]
    pooled = np.concatenate(gaps)
    summary = replicated.summary
    for p in (50, 95):
        assert summary["itl_ms"][f"p{p}"] == pytest.approx(inverted_cdf(pooled, p / 100), rel=1e-9)
        # Each replication's own figure is its section; the interval is centred on the pooled one.
        own = [inverted_cdf(g, p / 100) for g in gaps]
        assert [s["itl_ms"][f"p{p}"] for s in replicated.summaries] == pytest.approx(own, rel=1e-9)
        low, high = summary["ci95"][f"itl_ms.p{p}"]
        assert low < summary["itl_ms"][f"p{p}"] < high or low == high == summary["itl_ms"][f"p{p}"]
        assert (high - low) / 2 == pytest.approx(replicated.interval(f"itl_ms.p{p}").half_width)


def test_llm_samples_merge_equal_gaps_without_changing_them(replicated):
    values, weights = replicated.llm_samples[0]["itl"]
    assert values.size < weights.sum() / 10  # merged: far fewer pairs than gaps
    assert np.array_equal(np.repeat(values, weights), np.sort(raw(0)[1]))


STREAMED = ['request.protocol="openai-chat"', 'request.model="m"', "request.stream=true"]


def test_comparison_rows_line_up_ttft_itl_tpot(replicated):
    scenario = load_scenario("llm-chat", [*OVERRIDES, *STREAMED])
    rng = np.random.default_rng(0)
    timing = {"ttft": rng.uniform(0.01, 0.05, 300), "tpot": rng.uniform(0.006, 0.009, 300), "itl": rng.uniform(0.006, 0.008, 3000)}
    rows = comparison_rows(scenario, replicated.summaries, {"requests": {"sent": 300}}, replicated.summaries[0], live_token_timing=timing, pooled=replicated.interval)
    by_metric = {r.metric: r for r in rows}
    assert set(by_metric) >= {key for key, _ in LLM_METRICS}
    for key, _ in LLM_METRICS:
        row = by_metric[key]
        figure, leaf = key.split(".")
        assert row.sim_mean == pytest.approx(replicated.summary[figure][leaf])  # pooled, not the mean of replications
        assert row.sim_paired == replicated.summaries[0][figure][leaf]
        assert row.live_se > 0 and row.pi_low < row.sim_mean < row.pi_high
    # Live figures with the simulation's definitions: linear for TTFT, inverted CDF for ITL.
    assert by_metric["ttft_ms.p95"].live == pytest.approx(np.percentile(timing["ttft"], 95) * 1000)
    assert by_metric["itl_ms.p50"].live == pytest.approx(inverted_cdf(timing["itl"] * 1000, 0.5))
    assert live_token_figures(timing)["tpot_ms"]["p50"] == pytest.approx(np.percentile(timing["tpot"], 50) * 1000)


def test_no_itl_rows_without_a_stream(replicated):
    scenario = load_scenario("llm-chat", [*OVERRIDES, *STREAMED, "request.stream=false"])
    timing = {"ttft": np.full(5, 0.02), "tpot": np.full(5, 0.007), "itl": np.zeros(0)}
    metrics = {r.metric for r in comparison_rows(scenario, replicated.summaries, {}, None, live_token_timing=timing, pooled=replicated.interval)}
    assert "ttft_ms.p50" in metrics and not any(m.startswith("itl_ms") for m in metrics)


def test_delay_model_scenarios_get_no_llm_rows():
    scenario = scenario_from_dict({"request": {"protocol": "openai-chat", "model": "m"}})
    rows = comparison_rows(scenario, [{"latency_ms": {"p50": 1.0}}, {"latency_ms": {"p50": 2.0}}], {}, None)
    assert not any(r.metric.startswith(("ttft", "itl", "tpot")) for r in rows)
