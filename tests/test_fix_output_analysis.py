"""Issue 11, items 8-11 and the output-analysis structure points.

8. ``warmup = "auto"`` never cuts into a fault window or a stage change, and
   replications (and both sides of a comparison) share one truncation point
   chosen on the series averaged across replications.
9. Sequential stopping follows Law & Kelton (corrected target, n0 >= 10) and
   covers; the old rule does not.
10. Latency percentiles of replications are pooled, with sectioning intervals
    that cover the distribution's quantile; the old t-interval of per-run
    percentiles does not.
11. Comparisons count runs that never recovered (censored at the run end) and
    say what the difference then is.

Statistical checks use synthetic numpy samples with a fixed seed and a stated
number of trials (deterministic, not flaky), or the simulator against an
independent recomputation.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

import simrouter
from simrouter.comparison import compare_configs
from simrouter.errors import ConfigError
from simrouter.replications import replicate
from simrouter.stats import relative_half_width, t_interval
from simrouter.warmup import mser

# New names are imported inside the tests that use them, so that on the old code
# each test fails for its own reason rather than the module failing to import.

FAULT_AT_5 = ["faults=[{start=5, end=20, latency_factor=8}]", "warmup=auto"]


# ---------------------------------------------------------------- 8. warm-up


def test_auto_warmup_never_deletes_an_injected_fault():
    # The repro: MSER cut 42.4 s (the whole fault), P95 fell from 5,000 to 124 ms
    # and the run passed.
    result = simrouter.simulate("breaker-failure", overrides=FAULT_AT_5)
    warmup = result.summary["warmup"]
    assert warmup["seconds"] <= 5.0
    assert warmup["capped_by"] == "fault 0 at 5 s" and warmup["reliable"] is False
    fixed = simrouter.simulate("breaker-failure", overrides=[FAULT_AT_5[0], f"warmup={warmup['seconds']!r}"])
    assert result.summary["latency_ms"] == fixed.summary["latency_ms"]
    assert result.summary["latency_ms"]["p95"] > 1000.0  # the fault is in the figures
    assert not result.passed


def test_auto_warmup_never_deletes_a_workload_stage_change():
    # 50/s for 10 s, then 260/s: MSER alone sees the first stage as a transient (it
    # deletes 24 s); the cut must stop at the stage boundary.
    stages = ["workload.model=open", "workload.users=50", "workload.requests_per_user=0", "workload.stages=[{rate=50, duration=10}, {rate=260, duration=50}]", "warmup=auto"]
    result = simrouter.simulate("concurrent", overrides=stages)
    warmup = result.summary["warmup"]
    assert warmup["seconds"] <= 10.0
    assert warmup["capped_by"] == "workload stage 1 starting at 10 s" and warmup["reliable"] is False


def test_mser_cap_keeps_the_cut_within_the_allowed_prefix():
    rng = np.random.default_rng(3)
    series = np.concatenate([np.full(100, 5.0), np.ones(900)]) + rng.normal(0, 0.05, 1000)
    assert mser(series).observations == 100 and not mser(series).capped
    capped = mser(series, max_observations=42)
    assert capped.observations <= 42 and capped.capped and not capped.reliable
    assert mser(series, max_observations=500).observations == 100  # a cap it does not reach changes nothing


def slow_start(warmup):
    # M/M/1 at rho 0.9 started empty: the early requests are faster than in steady state.
    return simrouter.Scenario(
        name="slow start",
        duration=400.0,
        warmup=warmup,
        workload=simrouter.WorkloadConfig(model="open", rate=0.9, users=1),
        limiter=simrouter.LimiterConfig(algorithm="none"),
        breaker=simrouter.BreakerConfig(preset="none"),
        backend=simrouter.BackendConfig(capacity=1, queue_limit=10**9, latency=simrouter.Exponential(1.0), failures=simrouter.Failures(0, 0, 0)),
        router=simrouter.RouterConfig(timeout=math.inf),
    )


def averaged_bin_means(scenario, seed, replications, bins=1000):
    """Welch's averaged series, recomputed independently: per replication the mean
    response time per bin of send time, then the mean across replications."""
    from simrouter.metrics import latency_population

    edges = np.linspace(0.0, scenario.duration, bins + 1)
    per_run = np.full((replications, bins), np.nan)
    for r in range(replications):
        run = simrouter.simulate(scenario, seed=seed, replication=r)
        keep = latency_population(run.sent, run.done, run.kind)
        index = np.minimum(np.digitize(run.sent[keep], edges) - 1, bins - 1)
        response = run.done[keep] - run.sent[keep]
        for b in np.unique(index):
            per_run[r, b] = response[index == b].mean()
    present = ~np.all(np.isnan(per_run), axis=0)
    return np.nanmean(per_run[:, present], axis=0), edges[:-1][present]


def test_replications_share_one_warmup_chosen_on_the_averaged_series():
    result = replicate(slow_start("auto"), seed=3, replications=4)
    records = [s["warmup"] for s in result.summaries]
    assert len({r["seconds"] for r in records}) == 1  # one truncation point for all
    series, starts = averaged_bin_means(slow_start(0.0), 3, 4)
    truncation = mser(series)
    expected = float(starts[truncation.observations]) if truncation.observations else 0.0
    assert records[0]["seconds"] == pytest.approx(expected) and expected > 0
    assert records[0]["method"] == "mser-5" and records[0]["replications"] == 4
    # Each replication is summarised exactly as with that warm-up fixed.
    for r, summary in enumerate(result.summaries):
        fixed = simrouter.simulate(slow_start(expected), seed=3, replication=r).summary
        assert summary["latency_ms"] == fixed["latency_ms"]
        sent = simrouter.simulate(slow_start(0.0), seed=3, replication=r).sent
        assert summary["warmup"]["deleted_requests"] == int((sent < expected).sum())


def test_shared_warmup_does_not_depend_on_the_executor():
    alone = replicate(slow_start("auto"), seed=3, replications=3)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        pooled = replicate(slow_start("auto"), seed=3, replications=3, executor=pool)
    assert pooled.summaries == alone.summaries


def test_both_sides_of_a_comparison_share_one_warmup():
    faster = ["backend.latency={dist = \"exponential\", mean = 0.8}"]
    comparison = compare_configs(slow_start("auto"), slow_start("auto"), overrides_b=faster, replications=3, metrics=["latency_ms.avg"])
    a, b = comparison.a.summary["warmup"], comparison.b.summary["warmup"]
    assert a["seconds"] == b["seconds"] and a["replications"] == b["replications"] == 6


# ---------------------------------------------------------------- 9. sequential stopping


def rare_high_mode(rng, n, probability=0.25, factor=3.0):
    """Replication values: 1 +/- 10 %, and with ``probability`` ``factor`` times that."""
    return np.where(rng.random(n) < probability, factor, 1.0) * rng.normal(1.0, 0.1, n)


def law_kelton_interval(values, gamma):
    """The interval replicate's rule ends with: sequential_stop from the default n0."""
    from simrouter.stats import sequential_stop

    n = sequential_stop(lambda n: [t_interval(values[:n])], simrouter.replications.DEFAULT_FIRST_SEQUENTIAL, values.size, gamma) or values.size
    return t_interval(values[:n])


def old_rule_interval(values, gamma):
    """The rule before the fix: the first n >= 5 with relative half-width <= gamma."""
    n = next(n for n in range(5, values.size + 1) if relative_half_width(values[:n]) <= gamma or n == values.size)
    return t_interval(values[:n])


def coverage(rule, gamma, trials, probability=0.25, factor=3.0, seed=2026):
    """Share of ``trials`` synthetic sequences whose stopped interval covers the true mean
    (also used for the issue's figures: probability 0.08, factor 6)."""
    rng = np.random.default_rng(seed)
    truth = 1.0 + probability * (factor - 1.0)
    return sum(rule(rare_high_mode(rng, 3000, probability, factor), gamma).covers(truth) for _ in range(trials)) / trials


@pytest.mark.parametrize(("gamma", "trials"), [(0.1, 500), (0.2, 2000)])
def test_sequential_stopping_covers_at_its_nominal_level(gamma, trials):
    # 25 % of runs 3x higher. Measured while writing (seed 2026, these trial counts):
    # coverage 0.948 (gamma 0.1) and 0.953 (gamma 0.2) with Law & Kelton from n0 = 20 and
    # Cochran's rule (0.948 and 0.919 without it), 0.81 and 0.74 with the old rule; one
    # standard error is 0.010 and 0.005. The 8 % x6 case:
    # tests/test_fix_sequential_coverage.py.
    new = coverage(law_kelton_interval, gamma, trials)
    old = coverage(old_rule_interval, gamma, trials)
    assert new >= 0.90, f"Law & Kelton coverage {new:.3f} at gamma {gamma}"
    assert old < 0.85, f"the old rule covered {old:.3f}: the test has no power"


def test_sequential_stopping_needs_n0_of_at_least_ten():
    with pytest.raises(ConfigError) as caught:
        replicate("concurrent", precision=0.05, replications=5)
    assert caught.value.field == "--replications"


def test_precision_not_reached_is_flagged():
    result = replicate("concurrent", precision=0.001, max_replications=20, precision_metrics=["latency_ms.avg"])
    precision = result.summary["precision"]
    assert result.replications == 20 and precision["converged"] is False and precision["met"] is False
    assert precision["corrected_target"] == pytest.approx(0.001 / 1.001)


# ---------------------------------------------------------------- 10. quantile intervals


def test_percentile_intervals_cover_the_distribution_quantile():
    # 20 replications of 200 i.i.d. lognormal latencies: the P99 of the distribution
    # is exp(z_0.99). The old t-interval of per-run P99s is biased low (about -7 %)
    # and covers ~0.70; sectioning around the pooled P99 covers ~0.92 (400 trials).
    from simrouter.stats import quantile_interval

    rng = np.random.default_rng(11)
    truth = math.exp(scipy_stats.norm.ppf(0.99))
    trials, new, old = 400, 0, 0
    for _ in range(trials):
        samples = [rng.lognormal(0.0, 1.0, 200) for _ in range(20)]
        new += quantile_interval(samples, 0.99).covers(truth)
        old += t_interval([np.percentile(s, 99) for s in samples]).covers(truth)
    assert new / trials >= 0.88
    assert old / trials <= 0.80


def test_replicated_percentiles_are_pooled_with_sectioning_intervals():
    result = replicate("concurrent", seed=4, replications=5)
    runs = [simrouter.simulate("concurrent", seed=4, replication=r) for r in range(5)]
    samples = [run.latencies() * 1000.0 for run in runs]
    pooled = np.percentile(np.concatenate(samples), 99)
    per_run = [run.summary["latency_ms"]["p99"] for run in runs]
    half = scipy_stats.t.ppf(0.975, 4) * np.std(per_run, ddof=1) / math.sqrt(5)
    assert result.summary["latency_ms"]["p99"] == pytest.approx(pooled, rel=1e-12)
    # A latency is never negative: the interval's low end is clipped at 0, and listed (issue 15).
    assert result.summary["ci95"]["latency_ms.p99"] == pytest.approx([max(0.0, pooled - half), pooled + half], rel=1e-12)
    assert (pooled - half < 0) == ("latency_ms.p99" in result.summary.get("ci95_clipped_at_0", []))
    p99_target = next(t for t in result.summary["targets"] if t["metric"] == "latency_ms.p99")
    assert p99_target["value"] == pytest.approx(pooled, rel=1e-12)  # targets judge the pooled P99


# ---------------------------------------------------------------- 11. never recovered


RESILIENCE4J = ["faults.0.end=75", "breaker.preset=resilience4j", "breaker.enable_randomized_wait=true", "breaker.randomized_wait_factor=0.9"]


def test_a_comparison_counts_the_runs_that_never_recovered():
    from simrouter.comparison import censored_recovery_s

    comparison = compare_configs(
        "breaker-failure",
        "breaker-failure",
        overrides_a=[*RESILIENCE4J, "breaker.wait_duration_in_open_state=20"],
        overrides_b=[*RESILIENCE4J, "breaker.wait_duration_in_open_state=40"],
        replications=20,
        metrics=["breaker.recovery_s"],
    )
    row = comparison.rows()[0]
    a = [censored_recovery_s(s) for s in comparison.a.summaries]
    b = [censored_recovery_s(s) for s in comparison.b.summaries]
    never_b = sum(cut for _, cut in b)
    assert never_b > 0 and not any(cut for _, cut in a)
    assert row["n"] == 20  # nobody left out
    assert row["never_a"] == 0.0 and row["never_b"] == never_b / 20
    # A run that never re-closed counts as recovering at the run end, at least.
    for summary, (value, cut) in zip(comparison.b.summaries, b):
        if cut:
            assert value == pytest.approx(summary["sim_time_s"] - 75.0)
    differences = np.array([vb for vb, _ in b]) - np.array([va for va, _ in a])
    assert row["difference"] == pytest.approx(differences.mean())
    assert row["bound"] == "lower" and row["high"] is None
    assert row["low"] == pytest.approx(t_interval(differences).low)


def test_a_difference_censored_on_both_sides_is_refused():
    never = ["faults.0.end=100", "breaker.preset=resilience4j", "breaker.enable_randomized_wait=true", "breaker.randomized_wait_factor=0.9"]
    comparison = compare_configs(
        "breaker-failure",
        "breaker-failure",
        overrides_a=[*never, "breaker.wait_duration_in_open_state=15"],
        overrides_b=[*never, "breaker.wait_duration_in_open_state=25"],
        replications=10,
        metrics=["breaker.recovery_s"],
    )
    row = comparison.rows()[0]
    assert row["never_a"] > 0 and row["never_b"] > 0
    assert row["difference"] is None and row["significant"] is None and "both sides" in row["reason"]


def test_the_replicated_summary_counts_replications_that_never_recovered():
    result = replicate("breaker-failure", overrides=["faults.0.end=120"], replications=2)
    assert result.summary["breaker"]["never_recovered"] == {"count": 2, "fraction": 1.0, "tripped": 2}


# ---------------------------------------------------------------- structure


def test_statistics_do_not_import_the_progress_bar_ui():
    code = "import sys, simrouter.replications, simrouter.stats, simrouter.comparison; print('simrouter.report.progress' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert shown == "False"


def test_progress_is_a_callback_of_the_caller():
    seen = []
    replicate("concurrent", replications=3, on_replication=lambda done, planned: seen.append((done, planned)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_the_worker_count_is_asked_through_executors():
    from simrouter.executors import open_executor, worker_count

    assert worker_count(None) == 1
    with open_executor("processes", workers=3) as pool:
        assert worker_count(pool) == 3


def test_a_sweep_point_shares_one_warmup_across_its_replications():
    from simrouter.sweeps import sweep

    spec = {"scenario": "breaker-failure", "seed": 2, "replications": 2, "metrics": ["warmup.seconds", "warmup.replications", "latency_ms.p95"], "set": {"warmup": "auto", "faults": [{"start": 5, "end": 20, "latency_factor": 8}]}, "grid": {"backend": {"capacity": [12, 16]}}}
    table = sweep(spec)
    for _, point in table.groupby("point"):
        assert point["warmup.seconds"].nunique() == 1 and point["warmup.seconds"].iloc[0] <= 5.0
        assert (point["warmup.replications"] == 2).all()
