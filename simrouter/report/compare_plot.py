"""Simulated against live: one small panel per metric.

Reads the comparison table of ``simrouter compare`` (``--csv``, or the ``rows`` of
its ``--json``; ``LiveComparison.to_frame()``), one row per metric::

    metric          unit  sim_mean  ci_low  ci_high  pi_low  pi_high  live   ...
    latency_ms.p95  ms    131.2     127.9   134.5    122.0   140.4    138.0

``metric`` is a dotted summary path; ``sim_mean`` the simulation's mean across
replications, ``ci_low``/``ci_high`` its confidence interval, ``pi_low``/``pi_high``
(optional) the prediction interval where one run should fall; ``live`` the figure
measured live; ``unit`` (optional) labels the y axis. Other columns are ignored;
a missing value is NaN or empty.

Each panel shows the simulated mean with its confidence interval as an error bar,
the prediction interval as a light band, and the live value as a diamond labelled
with its difference from the mean: green inside the interval a single run should
fall in (the prediction interval when given, else the confidence interval), red
outside, grey when there is no interval to judge by. With a ``verdict`` column
(``simrouter compare`` writes one) the colour follows it: green "yes", red "no",
grey "inconclusive" (inside an interval too wide to tell anything). Each panel has
its own y axis.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..errors import ConfigError
from .style import new_figure, no_data, unit_of

COMPARE_COLUMNS = ("metric", "sim_mean", "ci_low", "ci_high", "live")
INSIDE, OUTSIDE, UNJUDGED = "#2ca02c", "#d62728", "0.5"
PI_ALPHA = 0.18


def check_compare_table(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COMPARE_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError("compare", f"table lacks column(s) {', '.join(missing)}; expected {', '.join(COMPARE_COLUMNS)}")
    return frame


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def judging_interval(row) -> tuple[float, float]:
    """The interval a live figure is judged by: the prediction interval if given, else the CI."""
    low, high = _number(row.get("pi_low")), _number(row.get("pi_high"))
    if math.isfinite(low) and math.isfinite(high):
        return low, high
    return _number(row["ci_low"]), _number(row["ci_high"])


VERDICT_COLOURS = {"yes": INSIDE, "no": OUTSIDE, "inconclusive": UNJUDGED}


def live_colour(row) -> str:
    verdict = row.get("verdict")
    if isinstance(verdict, str) and verdict in VERDICT_COLOURS:
        return VERDICT_COLOURS[verdict]
    low, high = judging_interval(row)
    live = _number(row["live"])
    if not all(math.isfinite(v) for v in (low, high, live)):
        return UNJUDGED
    return INSIDE if low <= live <= high else OUTSIDE


def compare_figure(frame: pd.DataFrame, title: str = "Simulated against live") -> Figure:
    """One panel per metric: simulated mean and CI, live value coloured by whether it is inside."""
    rows = check_compare_table(frame).reset_index(drop=True)
    columns = min(4, max(1, len(rows)))
    lines = max(1, math.ceil(len(rows) / columns))
    figure = new_figure(3.0 * columns + 1.0, 2.8 * lines + 0.8)
    figure.suptitle(title)
    grid = np.atleast_1d(figure.subplots(lines, columns, squeeze=False).ravel())
    for axes, (_, row) in zip(grid, rows.iterrows()):
        _panel(axes, row)
    for axes in grid[len(rows):]:
        axes.set_axis_off()
    if rows.empty:
        grid[0].set_axis_on()
        no_data(grid[0], "empty comparison table")
    figure.legend(
        handles=[
            Line2D([], [], color="#1f77b4", marker="o", label="simulated mean, 95 % CI"),
            Patch(color="#1f77b4", alpha=PI_ALPHA, label="prediction interval (one run)"),
            Line2D([], [], color=INSIDE, marker="D", linestyle="none", label="live, inside"),
            Line2D([], [], color=OUTSIDE, marker="D", linestyle="none", label="live, outside"),
            Line2D([], [], color=UNJUDGED, marker="D", linestyle="none", label="live, not judged / inconclusive"),
        ],
        loc="outside lower center", ncols=5, fontsize="small",
    )
    return figure


def _panel(axes, row) -> None:
    mean, low, high, live = (_number(row[c]) for c in COMPARE_COLUMNS[1:])
    pi_low, pi_high = _number(row.get("pi_low")), _number(row.get("pi_high"))
    if math.isfinite(pi_low) and math.isfinite(pi_high):
        axes.fill_between([-0.35, 0.35], pi_low, pi_high, color="#1f77b4", alpha=PI_ALPHA, linewidth=0)
    if math.isfinite(low) and math.isfinite(high):
        axes.errorbar([0], [mean], yerr=[[mean - low], [high - mean]], fmt="o", color="#1f77b4", capsize=6)
    else:
        axes.plot([0], [mean], "o", color="#1f77b4")
    if math.isfinite(live):
        axes.plot([1], [live], "D", color=live_colour(row), markersize=8)
        if mean:
            axes.annotate(f"{live / mean - 1:+.1%}", (1, live), xytext=(0, 9), textcoords="offset points", ha="center", fontsize="small")
    else:
        axes.text(1, mean if math.isfinite(mean) else 0.5, "no live\nvalue", ha="center", va="center", fontsize="small", color=UNJUDGED)
    axes.set_xticks([0, 1], ["simulated", "live"])
    axes.set_xlim(-0.6, 1.6)
    axes.set_xlabel("source")
    unit = row.get("unit") if isinstance(row.get("unit"), str) and row.get("unit") else unit_of(str(row["metric"]))
    axes.set_title(str(row["metric"]), fontsize="medium")
    axes.set_ylabel(unit or "value")
    axes.margins(y=0.25)  # room for the difference label
    axes.grid(True, axis="y", alpha=0.3)
