"""Plots: each shows the data it is given, with title, labelled axes, legend and targets.

Figures are checked against independent computations from the raw data (numpy
percentiles and histograms of the run's own columns, a sweep table built here
from a few ``simulate`` calls with a scipy t-interval), not against their own
code paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from matplotlib.colors import to_hex
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

import simrouter
from simrouter.cli import main
from simrouter.errors import ConfigError
from simrouter.report import compare_figure, latency_figure, sweep_figure, sweep_heatmap, timeline_figure, tidy_sweep, write_run_plots
from simrouter.report.style import BREAKER_COLOURS, png_bytes
from simrouter.report.timeline_plot import breaker_spans

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def concurrent():
    return simrouter.simulate("concurrent", seed=1)


@pytest.fixture(scope="module")
def breaker_failure():
    return simrouter.simulate("breaker-failure", seed=1)


def assert_well_formed(figure: Figure) -> None:
    """A title, every visible axes with both labels (a shared x axis once), and a legend."""
    assert isinstance(figure, Figure)
    titles = [figure.get_suptitle()] + [axes.get_title() for axes in figure.axes]
    assert any(titles)
    plotted = [axes for axes in figure.axes if axes.axison and axes.get_label() != "<colorbar>"]
    for axes in plotted:
        siblings = axes.get_shared_x_axes().get_siblings(axes)  # a shared time axis is labelled once
        assert any(sibling.get_xlabel() for sibling in siblings), axes
        assert axes.get_ylabel(), axes
    assert figure.legends or any(axes.get_legend() for axes in figure.axes)
    assert png_bytes(figure).startswith(PNG_MAGIC)


# ---------------------------------------------------------------- latency


def test_latency_figure_shows_the_runs_latencies(concurrent):
    figure = latency_figure(concurrent)
    assert_well_formed(figure)
    hist_axes, cdf_axes = figure.axes
    ms = concurrent.latencies() * 1000.0
    heights = [patch.get_height() for patch in hist_axes.patches]
    assert sum(heights) == ms.size  # every latency sample is in a bin
    assert hist_axes.get_xscale() == cdf_axes.get_xscale() == "log"
    assert "ms" in hist_axes.get_xlabel()
    # the CDF's percentile markers sit at numpy's percentiles of the raw samples
    markers = {line.get_label().split()[0]: line for line in cdf_axes.lines if line.get_marker() == "o"}
    for name, q in (("P50", 50), ("P95", 95), ("P99", 99)):
        x, y = markers[name].get_data()
        assert x[0] == pytest.approx(np.percentile(ms, q), rel=1e-12)
        assert y[0] == pytest.approx(q / 100)
    # the P95 and P99 targets (150 and 500 ms) as vertical lines on both panels
    for axes in (hist_axes, cdf_axes):
        verticals = {line.get_xdata()[0] for line in axes.lines if len(set(line.get_xdata())) == 1}
        assert {150.0, 500.0} <= verticals


def test_latency_figure_overlays_runs_as_shares(concurrent, breaker_failure):
    figure = latency_figure([concurrent, breaker_failure], labels=["a", "b"])
    assert_well_formed(figure)
    hist_axes, _ = figure.axes
    outlines = hist_axes.patches
    assert len(outlines) == 2
    texts = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "a" in texts and "b" in texts
    assert "fraction" in hist_axes.get_ylabel()


def test_latency_figure_without_samples():
    result = simrouter.simulate("concurrent", seed=1, overrides=["limiter.scope=global", "limiter.rate=0.001", "limiter.burst=1", "workload.requests_per_user=1"])
    assert result.latencies().size <= 1
    figure = latency_figure(result)
    assert png_bytes(figure).startswith(PNG_MAGIC)


# ---------------------------------------------------------------- timeline


def test_timeline_shows_trip_recovery_and_fault(breaker_failure):
    result = breaker_failure
    figure = timeline_figure(result)
    assert_well_formed(figure)
    latency_axes, rps_axes, band_axes = figure.axes[:3]
    assert latency_axes.get_yscale() == "log"
    assert band_axes.get_xlabel() == "simulated time (s)"
    # stacked answers per second: the top layer's outline reaches an independent count of
    # answers per 1 s bin (interval 1 s), bin by bin
    counts, _ = np.histogram(result.done, bins=np.arange(0.0, np.floor(result.done.max()) + 2.0))
    top_outline = rps_axes.collections[-1].get_paths()[0].vertices[:, 1]
    assert set(counts.astype(float)) <= set(np.round(top_outline, 9))
    assert top_outline.max() == counts.max()
    # the fault window (30-45 s) is shaded on the data panels
    for axes in (latency_axes, rps_axes, band_axes):
        spans = [patch.get_x() for patch in axes.patches if patch.get_width() == pytest.approx(15.0)]
        assert 30.0 in spans
    # the band: closed -> open (inside the fault) -> half-open -> closed, covering the run
    spans = breaker_spans(result.transitions, result.sim_time_s)
    assert [state for *_, state in spans] == ["closed", "open", "half_open", "closed"]
    assert 30.0 <= spans[1][0] <= 45.0
    assert sum(stop - start for start, stop, _ in spans) == pytest.approx(result.sim_time_s)
    colours = [to_hex(collection.get_facecolor()[0]) for collection in band_axes.collections]
    assert colours == [BREAKER_COLOURS[state] for *_, state in spans]


def test_breaker_spans_without_transitions():
    assert breaker_spans([], 12.5) == [(0.0, 12.5, "closed")]


# ---------------------------------------------------------------- sweeps


@pytest.fixture(scope="module")
def sweep_table():
    """capacity x rate, 3 replications each, mean and scipy t-interval per point."""
    rows, replications = [], 3
    for capacity in (4, 8):
        for rate in (60, 120):
            values = {"latency_ms.p95": [], "throughput.rps": []}
            for k in range(replications):
                result = simrouter.simulate(
                    "breaker-failure", seed=1, replication=k,
                    overrides=[f"backend.capacity={capacity}", f"workload.rate={rate}", "duration=5", "faults=[]"],
                )
                values["latency_ms.p95"].append(result.summary["latency_ms"]["p95"])
                values["throughput.rps"].append(result.summary["throughput"]["rps"])
            for metric, sample in values.items():
                sample = np.array(sample)
                low, high = scipy.stats.t.interval(0.95, replications - 1, loc=sample.mean(), scale=scipy.stats.sem(sample))
                rows.append({"backend.capacity": capacity, "workload.rate": rate, "metric": metric, "mean": sample.mean(), "ci_low": low, "ci_high": high, "n": replications})
    return pd.DataFrame(rows)


def test_sweep_figure_draws_means_and_ci_bands(sweep_table):
    figure = sweep_figure(sweep_table, "backend.capacity", "latency_ms.p95", target=150.0)
    assert_well_formed(figure)
    axes = figure.axes[0]
    assert "slots" in axes.get_xlabel() and "ms" in axes.get_ylabel()
    lines = {line.get_label(): line for line in axes.lines}
    for rate in (60, 120):
        expected = sweep_table[(sweep_table["metric"] == "latency_ms.p95") & (sweep_table["workload.rate"] == rate)].sort_values("backend.capacity")
        x, y = lines[f"workload.rate={rate}"].get_data()
        np.testing.assert_array_equal(x, expected["backend.capacity"])
        np.testing.assert_allclose(y, expected["mean"])
    bands = [c for c in axes.collections if len(c.get_paths()) and len(c.get_paths()[0].vertices)]
    band_y = np.concatenate([c.get_paths()[0].vertices[:, 1] for c in bands])
    rows = sweep_table[sweep_table["metric"] == "latency_ms.p95"]
    assert band_y.min() == pytest.approx(rows["ci_low"].min())
    assert band_y.max() == pytest.approx(rows["ci_high"].max())
    assert any(line.get_ydata()[0] == 150.0 and line.get_label().startswith("target") for line in axes.lines)


def test_sweep_heatmap_cells_and_target_contour(sweep_table):
    figure = sweep_heatmap(sweep_table, "backend.capacity", "workload.rate", "latency_ms.p95", target=None)
    assert_well_formed_heatmap(figure)
    image = figure.axes[0].images[0].get_array()
    rows = sweep_table[sweep_table["metric"] == "latency_ms.p95"]
    expected = rows.pivot(index="workload.rate", columns="backend.capacity", values="mean").to_numpy()
    np.testing.assert_allclose(np.asarray(image), expected)
    # a target between the smallest and largest cell gets a contour; outside the range none
    middle = float(np.median(expected))
    crossing = sweep_heatmap(sweep_table, "backend.capacity", "workload.rate", "latency_ms.p95", target=middle)
    assert any(isinstance(c, ContourSet) for c in crossing.axes[0].collections)
    beyond = sweep_heatmap(sweep_table, "backend.capacity", "workload.rate", "latency_ms.p95", target=expected.max() * 10)
    assert not any(isinstance(c, ContourSet) for c in beyond.axes[0].collections)


def assert_well_formed_heatmap(figure):
    axes = figure.axes[0]
    assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel()
    assert "ms" in figure.axes[1].get_ylabel()  # the colour bar has the metric's unit
    assert png_bytes(figure).startswith(PNG_MAGIC)


def test_sweep_errors_name_what_is_wrong(sweep_table):
    with pytest.raises(ConfigError) as info:
        sweep_figure(sweep_table, "backend.capacity", "latency_ms.p42")
    assert "latency_ms.p95" in str(info.value)  # lists the metrics it has
    with pytest.raises(ConfigError) as info:
        sweep_figure(sweep_table, "router.timeout", "latency_ms.p95")
    assert "backend.capacity" in str(info.value)
    three = sweep_table.assign(**{"limiter.rate": np.arange(len(sweep_table)) // 2 % 2})  # varies within each metric
    with pytest.raises(ConfigError, match="limiter.rate"):
        sweep_heatmap(three, "backend.capacity", "workload.rate", "latency_ms.p95")


def test_tidy_sweep_melts_the_wide_form(sweep_table):
    wide = sweep_table.pivot_table(index=["backend.capacity", "workload.rate"], columns="metric", values=["mean", "ci_low", "ci_high"])
    wide.columns = [f"{metric}_{value}" for value, metric in wide.columns]
    long = tidy_sweep(wide.reset_index())
    key = ["backend.capacity", "workload.rate", "metric"]
    merged = long.merge(sweep_table, on=key, suffixes=("", "_expected"))
    assert len(merged) == len(sweep_table)
    for column in ("mean", "ci_low", "ci_high"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_expected"])


# ---------------------------------------------------------------- simulated vs live


def test_compare_figure_colours_live_by_interval():
    table = pd.DataFrame(
        {
            "metric": ["latency_ms.p50", "latency_ms.p95", "throughput.rps"],
            "sim_mean": [45.0, 131.0, 150.0],
            "ci_low": [44.0, 127.0, np.nan],
            "ci_high": [46.0, 135.0, np.nan],
            "live": [47.0, 133.0, 149.0],
        }
    )
    figure = compare_figure(table)
    assert_well_formed(figure)
    panels = [axes for axes in figure.axes if axes.axison]
    assert [axes.get_title() for axes in panels] == list(table["metric"])
    assert [axes.get_ylabel() for axes in panels] == ["ms", "ms", "req/s"]
    live_colours = [to_hex(next(line for line in axes.lines if line.get_marker() == "D").get_color()) for axes in panels]
    assert live_colours == ["#d62728", "#2ca02c", "#808080"]  # outside, inside, no interval
    with pytest.raises(ConfigError, match="live"):
        compare_figure(table.drop(columns="live"))


def test_compare_figure_judges_by_the_prediction_interval_when_given():
    # `simrouter compare --csv` columns: one live run is judged by where ONE run should fall
    table = pd.DataFrame(
        {"metric": ["latency_ms.p95"], "unit": ["ms"], "sim_mean": [131.0], "ci_low": [127.0], "ci_high": [135.0],
         "pi_low": [120.0], "pi_high": [142.0], "live": [139.0], "rel_diff": [0.061], "inside": [True]}
    )
    axes = compare_figure(table).axes[0]
    diamond = next(line for line in axes.lines if line.get_marker() == "D")
    assert to_hex(diamond.get_color()) == "#2ca02c"  # outside the CI, inside the prediction interval
    band = axes.collections[0].get_paths()[0].vertices[:, 1]
    assert (band.min(), band.max()) == (120.0, 142.0)


# ---------------------------------------------------------------- files


def test_write_run_plots_and_cli_plot(tmp_path, breaker_failure, capsys):
    written = write_run_plots(breaker_failure, tmp_path / "a")
    assert [path.name for path in written] == ["breaker-failure-latency.png", "breaker-failure-timeline.png"]
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in written)
    assert main(["run", "concurrent", "--plot", str(tmp_path / "b")]) == 0
    assert sorted(path.name for path in (tmp_path / "b").iterdir()) == ["concurrent-latency.png", "concurrent-timeline.png"]
    assert "concurrent-timeline.png" in capsys.readouterr().out
