"""The planning experiments run (``--quick``), save a CSV and a PNG, and answer sensibly."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


@pytest.fixture
def experiment(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    return importlib.import_module


def run_quick(module, out: Path) -> pd.DataFrame:
    table = module.main(["--quick", "--workers", "2", "--out", str(out)])
    csv, png = out / f"{module.NAME}.csv", out / f"{module.NAME}.png"
    assert png.stat().st_size > 10_000  # a real plot, not an empty canvas
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)
    return table


def test_capacity_needed_grows_with_traffic_and_exceeds_the_load(experiment, tmp_path):
    module = experiment("capacity_for_p95")
    answer = run_quick(module, tmp_path).set_index("workload.rate")
    needed = answer["capacity_needed"]
    assert needed.notna().all()
    assert needed[200] > needed[50]
    assert (needed > answer["offered_load"]).all()  # P95 < 150 ms needs spare slots
    assert (answer["p95_ms"] < module.TARGET_MS).all()
    assert (tmp_path / "capacity_for_p95.sweep.csv").exists()


def test_breaker_recovery_grows_with_the_open_wait_and_so_do_rejections(experiment, tmp_path):
    summary = run_quick(experiment("breaker_tuning"), tmp_path)
    # Threshold 8: a threshold of 2 can re-trip on the backend's background failures.
    for metric in ("breaker.recovery_s", "requests.breaker_rejected"):
        rows = summary[(summary["metric"] == metric) & (summary["breaker.failure_threshold"] == 8)].sort_values("breaker.open_duration")
        assert rows["mean"].is_monotonic_increasing, rows
    recovery = summary[summary["metric"] == "breaker.recovery_s"].set_index(["breaker.failure_threshold", "breaker.open_duration"])["mean"]
    # Closed lazily by the first probe after the wait: a 60 s wait from a trip at
    # ~30 s probes at ~90 s, 45 s after the outage ended at 45 s.
    assert recovery[(8, 60.0)] == pytest.approx(45.0, abs=1.0)


def test_rate_limits_trade_violations_for_latency(experiment, tmp_path):
    module = experiment("rate_limit_tuning")
    summary = run_quick(module, tmp_path)
    burst = summary[summary["limiter.burst"] == 5]
    rejected = burst[burst["metric"] == "error_rates.rate_limited"].sort_values("limiter.rate")["mean"]
    p95 = burst[burst["metric"] == "latency_ms.p95"].sort_values("limiter.rate")["mean"]
    assert rejected.is_monotonic_decreasing and rejected.iloc[0] > 0.5  # 10 of 40 req/s let through
    assert p95.iloc[-1] > 5 * p95.iloc[0]  # no limit to speak of: the backend saturates
    # The answer is a rate that holds the target, below "no limit" (40), which does not.
    best = module.best_limits(summary).set_index("limiter.burst").loc[5, "largest_rate_holding_p95"]
    by_rate = burst[burst["metric"] == "latency_ms.p95"].set_index("limiter.rate")["mean"]
    assert best < 40.0 and by_rate[best] < module.P95_TARGET_MS <= by_rate[40.0]
