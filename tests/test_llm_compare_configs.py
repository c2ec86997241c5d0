"""``compare_configs`` on the LLM backend's percentiles: pooled figures, sectioning intervals.

A and B (``llm-chat`` at 10 req/s, B with a slower decode step) under common
random numbers. Each row's A and B are the percentiles of that side's
replications' samples pooled, as ``run --replications`` reports them; the
difference is pooled B - pooled A, and its interval is sectioning on the
per-replication differences (TTFT, TPOT), or for ITL (weighted gaps) the
t-interval of the replications' own ITL percentile differences centred on the
pooled difference. Everything is checked against an independent computation
from the runs' raw records (per-request first tokens, per-step durations and
decode counts); the old rows (mean of the replications' own percentiles, the
t-interval of their differences) differ from them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from simrouter.comparison import compare_configs
from simrouter.config import load_scenario
from simrouter.sim import simulate

SEED = 5
R = 4
A = ["duration=40", "workload.rate=10"]
B = [*A, "backend.step_time.per_decode_token=0.00015"]
METRICS = ["ttft_ms.p50", "ttft_ms.p95", "tpot_ms.p95", "itl_ms.p50", "itl_ms.p95"]


@pytest.fixture(scope="module")
def comparison():
    return compare_configs("llm-chat", "llm-chat", seed=SEED, replications=R, overrides_a=A, overrides_b=B, metrics=METRICS)


def raw(overrides, replication):
    """{"ttft", "tpot", "itl"} in ms of one run, from its raw records (ITL gaps expanded)."""
    result = simulate(load_scenario("llm-chat", overrides), seed=SEED, replication=replication)
    llm = result.llm
    ok = result.measured & (result.kind == 0) & np.isfinite(llm.first_token)
    ttft = llm.first_token[ok] - result.sent[ok]
    e2e = result.done[ok] - result.sent[ok]
    out = llm.output_tokens[ok]
    several = out >= 2
    tpot = (e2e[several] - ttft[several]) / (out[several] - 1)
    steps = llm.steps
    after = steps["end"] >= result.scenario.warmup
    gaps = np.concatenate([np.repeat(steps["duration"][after], steps["decoded"][after]), steps["gaps"]])
    return {"ttft": ttft * 1000.0, "tpot": tpot * 1000.0, "itl": gaps * 1000.0}


def inverted_cdf(values, q):
    ordered = np.sort(values)
    return float(ordered[max(0, int(np.ceil(q * ordered.size)) - 1)])


@pytest.fixture(scope="module")
def records():
    return [raw(A, r) for r in range(R)], [raw(B, r) for r in range(R)]


def test_llm_rows_are_pooled_percentiles_with_sectioning_intervals(comparison, records):
    side_a, side_b = records
    rows = {row["metric"]: row for row in comparison.rows()}
    half = lambda sections: student_t.ppf(0.975, len(sections) - 1) * np.std(sections, ddof=1) / math.sqrt(len(sections))
    for metric in METRICS:
        figure, leaf = metric.split(".")
        name, q = {"ttft_ms": "ttft", "tpot_ms": "tpot", "itl_ms": "itl"}[figure], int(leaf[1:]) / 100
        # numpy's linear interpolation for TTFT / TPOT, the inverted CDF for ITL (the summaries' definitions)
        quantile = (lambda v: inverted_cdf(v, q)) if name == "itl" else (lambda v: float(np.quantile(v, q)))
        pooled_a = quantile(np.concatenate([r[name] for r in side_a]))
        pooled_b = quantile(np.concatenate([r[name] for r in side_b]))
        sections = [quantile(b[name]) - quantile(a[name]) for a, b in zip(side_a, side_b)]
        row = rows[metric]
        assert row["n"] == R
        assert row["a"] == pytest.approx(pooled_a, rel=1e-9) and row["b"] == pytest.approx(pooled_b, rel=1e-9), metric
        assert row["difference"] == pytest.approx(pooled_b - pooled_a, rel=1e-9, abs=1e-9), metric
        assert row["low"] == pytest.approx(pooled_b - pooled_a - half(sections), rel=1e-9, abs=1e-9), metric
        assert row["high"] == pytest.approx(pooled_b - pooled_a + half(sections), rel=1e-9, abs=1e-9), metric


def test_not_the_mean_of_the_replications_own_percentiles(comparison):
    # What the rows held before: the mean of each replication's P95, and the t-interval around its difference.
    row = {r["metric"]: r for r in comparison.rows()}["ttft_ms.p95"]
    old_a = float(np.mean(comparison.a.values("ttft_ms.p95")))
    old_difference = float(np.mean(comparison.b.values("ttft_ms.p95") - comparison.a.values("ttft_ms.p95")))
    assert row["a"] != pytest.approx(old_a, rel=1e-6)
    assert row["difference"] != pytest.approx(old_difference, rel=1e-6)


def test_a_slower_decode_step_is_a_significant_tpot_increase(comparison):
    row = {r["metric"]: r for r in comparison.rows()}["tpot_ms.p95"]
    assert row["significant"] and row["low"] > 0
