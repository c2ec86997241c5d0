"""Sweep files, the tidy and aggregated tables, executors, outputs and interrupts."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

import simrouter
from simrouter import ConfigError
from simrouter.cli import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, main
from simrouter.executors import open_executor
from simrouter.sweepfile import load_sweep, sweep_from_dict
from simrouter.sweeps import SweepInterrupted, aggregate, sweep

TINY = """
scenario = "concurrent"
seed = 7
replications = 2
metrics = ["latency_ms.p95", "throughput.rps", "breaker.state"]

[set]
workload.requests_per_user = 20

[grid]
backend.capacity = [4, 8]
workload.users = { from = 2, to = 6, steps = 3 }
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


# ---------------------------------------------------------------- the sweep file


def test_grid_points_are_every_combination_in_file_order(tiny):
    spec = load_sweep(tiny)
    assert spec.name == "tiny" and spec.seed == 7 and spec.replications == 2 and spec.runs == 12
    assert spec.keys == ["backend.capacity", "workload.users"]
    assert [tuple(p.values.values()) for p in spec.points] == [(4, 2), (4, 4), (4, 6), (8, 2), (8, 4), (8, 6)]
    point = spec.points[4]
    assert point.scenario.backend.capacity == 8 and point.scenario.workload.users == 4
    assert point.scenario.workload.requests_per_user == 20  # [set] applies everywhere
    assert point.overrides() == ["backend.capacity=8", "workload.users=4"]


def test_ranges_points_and_distributions():
    spec = sweep_from_dict(
        {
            "scenario": "breaker-failure",
            "grid": {"workload": {"rate": {"from": 50, "to": 100, "steps": 3}}, "breaker": {"open_duration": {"from": 1, "to": 2, "steps": 3}}},
            "points": [{"backend": {"latency": {"dist": "exponential", "mean": 0.05}}}, {"backend": {"capacity": 4}}],
        }
    )
    rates = sorted({p.values["workload.rate"] for p in spec.points})
    durations = sorted({p.values["breaker.open_duration"] for p in spec.points})
    assert rates == [50, 75, 100] and all(isinstance(r, int) for r in rates)  # whole steps stay whole
    assert durations == [1.0, 1.5, 2.0]
    assert len(spec.points) == 2 * 3 * 3
    assert spec.points[0].scenario.backend.latency == simrouter.Exponential(0.05)  # a {dist} table is one value
    assert spec.points[9].scenario.backend.capacity == 4


# (sweep dict, the field the error must name, a phrase it must contain)
BAD_SWEEPS = [
    ({"scenaro": "concurrent"}, "scenaro", "did you mean 'scenario'"),
    ({"grid": {}}, "scenario", "required"),
    ({"scenario": "concurrent", "replications": 0}, "replications", ">= 1"),
    ({"scenario": "concurrent", "metrics": ["latency_ms.p95", "latency.p99"]}, "metrics.1", "did you mean"),
    ({"scenario": "concurrent", "grid": {"backend": {"capacity": 4}}}, "grid.backend.capacity", "list of values"),
    ({"scenario": "concurrent", "grid": {"workload": {"users": {"from": 1, "to": 5, "steps": 1}}}}, "grid.workload.users.steps", ">= 2"),
    ({"scenario": "concurrent", "grid": {"workload": {"users": {"from": 1, "steps": 3}}}}, "grid.workload.users.to", "required"),
    ({"scenario": "concurrent", "grid": {"backend": {"capacity": [4, 0]}}}, "backend.capacity", "sweep point 1"),
    ({"scenario": "concurrent", "grid": {"backend": {"capacty": [4]}}}, "backend.capacty", "did you mean 'capacity'"),
    ({"scenario": "concurrent", "points": []}, "points", "non-empty"),
    ({"scenario": "nope"}, "", "no scenario file or built-in scenario"),
]


@pytest.mark.parametrize("data, field, phrase", BAD_SWEEPS, ids=[b[1] or "scenario-name" for b in BAD_SWEEPS])
def test_bad_sweeps_name_the_field(data, field, phrase):
    with pytest.raises(ConfigError) as caught:
        sweep_from_dict(data)
    assert caught.value.field == field
    assert phrase in caught.value.message


def test_cli_reports_a_bad_sweep_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('scenario = "concurrent"\n[grid]\nbackend.capacity = 4\n')
    assert main(["sweep", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert "grid.backend.capacity" in err and "\n" not in err
    assert main(["sweep", str(bad), "--out", str(tmp_path / "x.xlsx")]) == EXIT_CONFIG


# ---------------------------------------------------------------- the tables


def test_tidy_table_is_one_row_per_point_and_replication(tiny):
    spec = load_sweep(tiny)
    table = sweep(spec)
    assert list(table.columns) == ["point", "replication", "seed", "backend.capacity", "workload.users", "latency_ms.p95", "throughput.rps", "breaker.state"]
    assert len(table) == 12
    assert list(zip(table["point"], table["replication"])) == [(p, r) for p in range(6) for r in range(2)]
    # Each row is that point's replication, run on its own.
    row = table.iloc[9]  # point 4, replication 1
    summary = simrouter.simulate(spec.points[4].scenario, seed=7, replication=1).summary
    assert row["latency_ms.p95"] == summary["latency_ms"]["p95"] and row["breaker.state"] == summary["breaker"]["state"]


def test_aggregated_table_has_the_t_intervals(tiny):
    spec = load_sweep(tiny)
    table = sweep(spec)
    summary = aggregate(table, spec)
    assert list(summary.columns) == ["backend.capacity", "workload.users", "metric", "mean", "ci_low", "ci_high", "half_width", "n"]
    assert set(summary["metric"]) == {"latency_ms.p95", "throughput.rps"}  # text columns are not averaged
    values = table.loc[table["point"] == 5, "throughput.rps"].to_numpy()
    row = summary[(summary["backend.capacity"] == 8) & (summary["workload.users"] == 6) & (summary["metric"] == "throughput.rps")].iloc[0]
    half = scipy_stats.t.ppf(0.975, 1) * values.std(ddof=1) / np.sqrt(2)
    assert row["mean"] == pytest.approx(values.mean())
    # A rate is never negative: the low end is clipped at 0 (issue 15), the half-width kept.
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((max(0.0, values.mean() - half), values.mean() + half))
    assert row["half_width"] == pytest.approx(half)
    assert row["n"] == 2


def test_the_report_module_plots_the_aggregated_table(tiny):
    spec = load_sweep(tiny)
    from simrouter.report import sweep_figure

    figure = sweep_figure(aggregate(sweep(spec), spec), "workload.users", "latency_ms.p95", target=150)
    assert len(figure.axes[0].lines) >= 2  # one line per capacity


def test_same_seed_same_table_on_any_executor(tiny):
    spec = load_sweep(tiny)
    serial = sweep(spec)
    with cf.ProcessPoolExecutor(max_workers=1) as one:
        pd.testing.assert_frame_equal(sweep(spec, executor=one), serial)
    with open_executor("processes", 2) as two:
        pd.testing.assert_frame_equal(sweep(spec, executor=two), serial)
    with open_executor("dask", 2) as dask:
        pd.testing.assert_frame_equal(sweep(spec, executor=dask), serial)


def test_cli_writes_csv_and_parquet(tiny, tmp_path, capsys):
    expected = sweep(load_sweep(tiny))
    csv = tmp_path / "out" / "results.csv"
    assert main(["sweep", str(tiny), "--workers", "2", "--out", str(csv), "--no-progress"]) == EXIT_OK
    pd.testing.assert_frame_equal(pd.read_csv(csv), expected, check_dtype=False)
    assert len(pd.read_csv(tmp_path / "out" / "results.summary.csv")) == 6 * 2
    assert "tiny: means of 2 replications" in capsys.readouterr().out
    parquet = tmp_path / "results.parquet"
    assert main(["sweep", str(tiny), "--executor", "serial", "--out", str(parquet), "--no-progress"]) == EXIT_OK
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), expected)
    assert (tmp_path / "results.summary.parquet").exists()


# ---------------------------------------------------------------- Ctrl-C


def interrupt_after(monkeypatch, runs):
    import simrouter.sweeps as module

    real, calls = module.point_metrics, []

    def flaky(*args):
        calls.append(args)
        if len(calls) > runs:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(module, "point_metrics", flaky)


def test_ctrl_c_keeps_the_completed_runs(monkeypatch, tiny):
    complete = sweep(load_sweep(tiny))
    interrupt_after(monkeypatch, 5)
    with pytest.raises(SweepInterrupted) as caught:
        sweep(load_sweep(tiny))
    partial = caught.value.partial
    assert len(partial) == 5
    pd.testing.assert_frame_equal(partial, complete.iloc[:5])


def test_cli_writes_what_is_done_on_ctrl_c(monkeypatch, tiny, tmp_path):
    interrupt_after(monkeypatch, 3)
    out = tmp_path / "partial.csv"
    assert main(["sweep", str(tiny), "--executor", "serial", "--out", str(out), "--no-progress"]) == EXIT_INTERRUPTED
    kept = pd.read_csv(out)
    assert list(zip(kept["point"], kept["replication"])) == [(0, 0), (0, 1), (1, 0)]


def test_progress_bar_counts_points_and_runs(tiny, capsys):
    seen = []
    sweep(load_sweep(tiny), progress=True, on_result=lambda key, figures: seen.append(key))
    assert sorted(seen) == [(p, r) for p in range(6) for r in range(2)]
    err = capsys.readouterr().err
    assert "6/6 points" in err and "12/12" in err
