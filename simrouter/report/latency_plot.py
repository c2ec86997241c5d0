"""Latency distribution of one or more runs: histogram and CDF on a log time axis.

The latencies are those the summary's percentiles describe (requests sent after
warm-up that spent time, ``metrics.latency_population``, from first send to final
answer: ``RunResult.latencies()``), in milliseconds.
Left: a histogram with log-spaced bins (counts for one run; each run's share of
its requests, as step outlines, when several overlay); right: the empirical CDF,
with P50/P95/P99 marked (the summary's exact values, so the marks sit on the
curve) and the P95/P99 targets of the first run's scenario drawn as dashed and
dotted vertical lines. The legend sits under both panels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import PERCENTILE_COLOURS, TARGET_STYLE, new_figure, no_data, plain_log_scale, target_of

MARKED = ("p50", "p95", "p99")


def latency_figure(results, labels: Sequence[str] | None = None, *, bins: int = 60) -> Figure:
    """Histogram and CDF of the latencies of ``results`` (a ``RunResult`` or a sequence).

    One run: a filled histogram of counts with its P50/P95/P99 as vertical lines.
    Several: step outlines of each run's share of requests per bin (runs differ in size)."""
    results = [results] if hasattr(results, "latencies") else list(results)
    labels = list(labels) if labels is not None else [_label(r) for r in results]
    samples = [r.latencies() * 1000.0 for r in results]
    overlay = len(results) > 1
    figure = new_figure(11.0, 5.0)
    hist_axes, cdf_axes = figure.subplots(1, 2)
    figure.suptitle("Latency distribution" + ("" if overlay else f": {labels[0]}"))
    for axes in (hist_axes, cdf_axes):
        axes.set_xlabel("latency (ms, log scale)")
    hist_axes.set_ylabel("share of requests per bin (fraction)" if overlay else "requests per bin (count)")
    cdf_axes.set_ylabel("cumulative fraction of requests (0-1)")
    present = [s for s in samples if s.size]
    if not present:
        for axes in (hist_axes, cdf_axes):
            no_data(axes, "no request spent time (all answered at once)")
        return figure
    edges = _log_bins(np.concatenate(present), bins)
    for result, label, ms in zip(results, labels, samples):
        if not ms.size:
            continue
        stats = result.summary["latency_ms"]
        if overlay:
            line = cdf_axes.ecdf(ms, label=label)
            hist_axes.hist(ms, bins=edges, weights=np.full(ms.size, 1.0 / ms.size), histtype="step", linewidth=1.4, color=line.get_color())
            _mark_percentiles(cdf_axes, stats, line.get_color(), label)
            continue
        hist_axes.hist(ms, bins=edges, alpha=0.75, color="#1f77b4", label="requests")
        cdf_axes.ecdf(ms, label="empirical CDF", color="#1f77b4")
        for name in MARKED:
            if stats[name] is not None:
                hist_axes.axvline(stats[name], color=PERCENTILE_COLOURS[name], linewidth=1.2)
        _mark_percentiles(cdf_axes, stats, None, "")
    _draw_targets(results[0].scenario.targets, (hist_axes, cdf_axes))
    for axes in (hist_axes, cdf_axes):
        plain_log_scale(axes)
        axes.grid(True, which="both", alpha=0.25)
    cdf_axes.set_ylim(0, 1.02)
    handles, texts = cdf_axes.get_legend_handles_labels()
    figure.legend(handles, texts, loc="outside lower center", ncols=2 if overlay else 3, fontsize="small")
    return figure


def _label(result) -> str:
    return f"{result.scenario.name} (seed {result.seed})"


def _log_bins(ms: np.ndarray, bins: int) -> np.ndarray:
    low = max(float(ms.min()), 1e-3)
    high = max(float(ms.max()), low * 1.01)
    return np.geomspace(low, high, bins + 1)


def _mark_percentiles(axes, stats: dict, colour: str | None, run_label: str) -> None:
    """One coloured marker per percentile for a single run; one legend entry per run
    (markers in the run's colour) when several overlay."""
    present = [(name, stats[name]) for name in MARKED if stats.get(name) is not None]
    for index, (name, value) in enumerate(present):
        if colour is None:
            marker_colour, text = PERCENTILE_COLOURS[name], f"{name.upper()} {value:,.1f} ms"
        else:
            marker_colour, text = colour, None
            if index == 0:
                names = "/".join(n.upper() for n, _ in present)
                text = f"{run_label} {names} " + " / ".join(f"{v:,.1f}" for _, v in present) + " ms"
        axes.plot([value], [int(name[1:]) / 100.0], marker="o", linestyle="none", color=marker_colour, label=text, zorder=5)


def _draw_targets(targets, axes_pair) -> None:
    for metric, name in (("latency_ms.p95", "P95"), ("latency_ms.p99", "P99")):
        threshold = target_of(metric, targets)
        if threshold is None:
            continue
        style = dict(TARGET_STYLE, linestyle="--" if name == "P95" else ":")
        for index, axes in enumerate(axes_pair):
            axes.axvline(threshold, label=f"{name} target {threshold:g} ms" if index == 1 else None, **style)
