"""One run over time: the picture that shows a trip and its recovery.

Three panels sharing the time axis (simulated seconds, bins of answer time from
``RunResult.timeseries``):

1. latency P50/P95/P99 per interval (ms, log scale) with the P95/P99 targets, of
   the requests in the latency population (``metrics.latency_population``: they
   spent time), warm-up included;
2. answers per second stacked by outcome, one step per interval (empty ones at
   zero), successes at the bottom, with the throughput (goodput) target;
3. the breaker state as a coloured band, drawn from the exact transition times
   (not sampled per interval); a span shorter than ``MIN_SPAN`` of the axis is
   drawn that wide, so a half-open spell of 0.2 s in a 2-minute run still shows.

Fault windows are shaded on every panel.

A run with ``[[deployments]]`` (``deployments_plot``) has no single breaker: the
third panel becomes the share of routed attempts per deployment (a stacked band,
0..1, per interval of send time, with the weights' boundaries dotted), followed
by one breaker band per deployment, named after it, each from that deployment's
exact transition times. The shared panels shade every fault window (top-level and
per deployment); a deployment's band shades the windows that hit it. Without
deployments the figure is the three panels above, unchanged.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..outcomes import KIND_NAMES
from . import deployments_plot
from .style import (
    BREAKER_COLOURS,
    OUTCOME_COLOURS,
    PERCENTILE_COLOURS,
    TARGET_STYLE,
    new_figure,
    no_data,
    plain_log_scale,
    shade_faults,
    target_of,
)


def timeline_figure(result, interval: float | None = None) -> Figure:
    """Latency percentiles, throughput by outcome and breaker state of ``result`` over time."""
    series = result.timeseries(interval)
    interval = interval or result.scenario.metrics.interval
    scenario = result.scenario
    end = max(result.sim_time_s, float(series["t_s"].max() + interval) if len(series) else 0.0)
    gateway = deployments_plot.has_deployments(result)
    names = deployments_plot.deployment_names(result) if gateway else []
    if gateway:  # the share band, then one breaker band per deployment
        figure = new_figure(11.0, 8.2 + 0.45 * len(names))
        latency_axes, rps_axes, share_axes, *band_rows = figure.subplots(
            3 + len(names), 1, sharex=True, height_ratios=(3, 3, 1.6, *[0.45] * len(names)), squeeze=False)[:, 0]
        faults = deployments_plot.all_faults(result)
    else:
        figure = new_figure(11.0, 7.0)
        latency_axes, rps_axes, band_axes = figure.subplots(3, 1, sharex=True, height_ratios=(3, 3, 0.6))
        band_rows, faults = [band_axes], scenario.faults
    figure.suptitle(f"{scenario.name} over time (seed {result.seed}, {interval:g} s intervals)")
    centre = series["t_s"] + interval / 2.0

    for name in ("p50", "p95", "p99"):
        latency_axes.plot(centre, series[f"{name}_ms"], label=name.upper(), color=PERCENTILE_COLOURS[name], linewidth=1.2)
    for metric, name in (("latency_ms.p95", "P95"), ("latency_ms.p99", "P99")):
        threshold = target_of(metric, scenario.targets)
        if threshold is not None:
            latency_axes.axhline(threshold, label=f"{name} target {threshold:g} ms", **dict(TARGET_STYLE, linestyle="--" if name == "P95" else ":"))
    if series[["p50_ms", "p95_ms", "p99_ms"]].notna().any().any():
        plain_log_scale(latency_axes, "y")
    else:
        no_data(latency_axes, "no request spent time (all answered at once)")
    latency_axes.set_ylabel("latency (ms, log scale)")

    kinds = [kind for kind in KIND_NAMES if kind in series and series[kind].sum() > 0]
    if kinds:
        # Bars over whole intervals, empty intervals included: steps from each interval's start.
        index = np.rint(series["t_s"].to_numpy() / interval).astype(int)
        edges = np.arange(index.max() + 2) * interval
        layers = []
        for kind in kinds:
            per_second = np.zeros(index.max() + 2)
            per_second[index] = series[kind].to_numpy() / interval
            per_second[-1] = per_second[-2]  # the last step's right edge
            layers.append(per_second)
        rps_axes.stackplot(
            edges,
            layers,
            labels=[kind.replace("_", " ") for kind in kinds],
            colors=[OUTCOME_COLOURS[kind] for kind in kinds],
            alpha=0.85,
            step="post",
        )
    threshold = target_of("throughput.goodput_rps", scenario.targets)
    if threshold is not None:  # the target judges successes: compare it with the bottom (succeeded) layer
        rps_axes.axhline(threshold, label=f"goodput target {threshold:g} req/s", **TARGET_STYLE)
    rps_axes.set_ylabel("answers per second (req/s)")

    outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": "small"}
    data_axes = [latency_axes, rps_axes]
    if gateway:
        deployments_plot.share_band(share_axes, result, interval, end)
        data_axes.append(share_axes)
        breakers = [(deployments_plot.deployment_transitions(result, i), deployments_plot.deployment_faults(result, i), name) for i, name in enumerate(names)]
    else:
        breakers = [(result.transitions, faults, "breaker")]
    for axes, (transitions, windows, label) in zip(band_rows, breakers):
        breaker_band(axes, transitions, end, label=label)
        shade_faults(axes, windows, label=False)
        axes.grid(True, alpha=0.25)
    band_rows[-1].set_xlabel("simulated time (s)")
    band_rows[-1].set_xlim(0, end)

    for axes in data_axes:
        shade_faults(axes, faults)
        axes.grid(True, alpha=0.25)
        axes.legend(**outside)
    band_rows[0].legend(
        handles=[Patch(color=colour, label=state.replace("_", "-")) for state, colour in BREAKER_COLOURS.items()],
        ncols=3, **dict(outside, bbox_to_anchor=(1.01, 1.1)),
    )
    return figure


MIN_SPAN = 0.004  # of the time axis


def breaker_spans(transitions, end: float) -> list[tuple[float, float, str]]:
    """(start, stop, state) spans covering [0, end], from the transition log."""
    spans, start, state = [], 0.0, "closed"
    for transition in transitions:
        spans.append((start, transition.t, state))
        start, state = transition.t, transition.to_state.value
    spans.append((start, max(end, start), state))
    return [span for span in spans if span[1] > span[0]]


def breaker_band(axes, transitions, end: float, label: str = "breaker") -> None:
    """One breaker's state over [0, end] as a coloured band, from its ``transitions``."""
    for start, stop, state in breaker_spans(transitions, end):
        width = max(stop - start, MIN_SPAN * end)
        axes.broken_barh([(start, width)], (0, 1), color=BREAKER_COLOURS[state], linewidth=0, zorder=2 if state != "closed" else 1)
    axes.set_ylim(0, 1)
    axes.set_yticks([])
    axes.set_ylabel(label, rotation=0, ha="right", va="center")
