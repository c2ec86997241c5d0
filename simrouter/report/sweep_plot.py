"""Sweep results: a metric against one parameter with CI bands, or a heatmap of two.

The plots read an aggregated sweep table in tidy (long) form, one row per grid
point and metric::

    backend.capacity  workload.rate  metric          mean   ci_low  ci_high  [n]
    8                 100            latency_ms.p95  131.2  127.9   134.5    5
    8                 100            throughput.rps  99.8   99.1    100.4    5

* one column per swept parameter, named by its dotted config field;
* ``metric``: a dotted summary path (``latency_ms.p95``, ``breaker.recovery_s``, ...);
* ``mean``, ``ci_low``, ``ci_high``: the mean across replications and its confidence
  interval (NaN when there was one replication: no band is drawn);
* any other column listed in ``STAT_COLUMNS`` is ignored.

``tidy_sweep`` also accepts the wide form (``<metric>_mean``, ``<metric>_ci_low``,
``<metric>_ci_high`` columns next to the parameters) and returns the long one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from ..errors import ConfigError
from .style import TARGET_STYLE, axis_label, new_figure, plain_log_scale, plain_log_ticks

VALUE_COLUMNS = ("mean", "ci_low", "ci_high")
WIDE_RANGE = 30.0
STAT_COLUMNS = ("metric", *VALUE_COLUMNS, "n", "replications", "std", "half_width")


def tidy_sweep(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in the long form above (wide ``<metric>_mean`` columns are melted)."""
    if "metric" in frame.columns:
        missing = [c for c in VALUE_COLUMNS if c not in frame.columns]
        if missing:
            raise ConfigError("sweep", f"table lacks column(s) {', '.join(missing)}; expected parameters, metric, mean, ci_low, ci_high")
        return frame
    if {"point", "replication"} <= set(frame.columns):
        raise ConfigError("sweep", "this is the per-replication table; give the aggregated one (NAME.summary.csv, written beside it by `simrouter sweep --out`)")
    metrics = [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean")]
    if not metrics:
        raise ConfigError("sweep", "table has neither a 'metric' column nor '<metric>_mean' columns")
    wide_columns = {f"{m}_{v}" for m in metrics for v in VALUE_COLUMNS}
    parameters = [c for c in frame.columns if c not in wide_columns and c not in STAT_COLUMNS]
    parts = []
    for metric in metrics:
        part = frame[parameters].copy()
        part["metric"] = metric
        for value in VALUE_COLUMNS:
            part[value] = frame.get(f"{metric}_{value}", np.nan)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def sweep_parameters(frame: pd.DataFrame) -> list[str]:
    """The parameter columns of a long sweep table, in table order."""
    return [c for c in frame.columns if c not in STAT_COLUMNS]


def _rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    frame = tidy_sweep(frame)
    rows = frame[frame["metric"] == metric]
    if rows.empty:
        known = ", ".join(sorted(frame["metric"].unique()))
        raise ConfigError("metric", f"{metric!r} is not in the sweep table; it has: {known}")
    return rows


def _check_parameters(rows: pd.DataFrame, wanted: Sequence[str]) -> None:
    for name in wanted:
        if name not in rows.columns:
            raise ConfigError("parameter", f"{name!r} is not a column of the sweep table; parameters: {', '.join(sweep_parameters(rows))}")


def sweep_figure(frame: pd.DataFrame, parameter: str, metric: str, *, target: float | None = None) -> Figure:
    """``metric`` (mean and CI band) against ``parameter``; one line per combination
    of the other swept parameters; ``target`` as a dashed horizontal line."""
    rows = _rows(frame, metric)
    _check_parameters(rows, [parameter])
    others = [p for p in sweep_parameters(rows) if p != parameter]
    figure = new_figure(8.0, 4.8)
    axes = figure.subplots()
    axes.set_title(f"{metric} against {parameter}")
    groups = rows.groupby(others, sort=True) if others else [((), rows)]
    for key, group in groups:
        group = group.sort_values(parameter)
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{p}={v:g}" if isinstance(v, (int, float)) else f"{p}={v}" for p, v in zip(others, key)) or "mean"
        line = axes.plot(group[parameter], group["mean"], marker="o", label=label)[0]
        if group[["ci_low", "ci_high"]].notna().all().all():
            axes.fill_between(group[parameter], group["ci_low"], group["ci_high"], color=line.get_color(), alpha=0.2, linewidth=0)
    if any(rows[["ci_low", "ci_high"]].notna().all(axis=1)):
        axes.fill_between([], [], [], color="0.6", alpha=0.3, label="confidence interval")
    if target is not None and math.isfinite(target):
        axes.axhline(target, label=f"target {target:g}", **TARGET_STYLE)
    axes.set_xlabel(axis_label(parameter))
    axes.set_ylabel(axis_label(metric) + (", log scale" if _wide_range(rows["mean"]) else ""))
    if _wide_range(rows["mean"]):
        plain_log_scale(axes, "y")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    return figure


def sweep_heatmap(frame: pd.DataFrame, x: str, y: str, metric: str, *, target: float | None = None) -> Figure:
    """Mean ``metric`` over the (``x``, ``y``) grid, each cell labelled, with the
    ``target`` level drawn as a contour where the grid crosses it (else a legend line
    says which side of it every cell is on)."""
    rows = _rows(frame, metric)
    _check_parameters(rows, [x, y])
    others = [p for p in sweep_parameters(rows) if p not in (x, y) and rows[p].nunique() > 1]
    if others:
        raise ConfigError("parameter", f"a heatmap shows two parameters; also varying: {', '.join(others)} (filter the table first)")
    grid = rows.pivot_table(index=y, columns=x, values="mean", aggfunc="mean").sort_index().sort_index(axis=1)
    values = grid.to_numpy(dtype=float)
    figure = new_figure(8.0, 5.6)
    axes = figure.subplots()
    axes.set_title(f"{metric} over {x} and {y}")
    norm = LogNorm() if _wide_range(values.ravel()) else Normalize()
    mesh = axes.imshow(values, origin="lower", aspect="auto", cmap="viridis", norm=norm)
    colourbar = figure.colorbar(mesh, ax=axes)
    colourbar.set_label(axis_label(metric) + (", log scale" if isinstance(norm, LogNorm) else ""))
    if isinstance(norm, LogNorm):
        plain_log_ticks(colourbar.ax.yaxis)
    axes.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
    axes.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    axes.set_xlabel(axis_label(x))
    axes.set_ylabel(axis_label(y))
    finite = values[np.isfinite(values)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    for (row, column), value in np.ndenumerate(values):
        if np.isfinite(value):
            dark = norm(value) < 0.6  # viridis is dark at its low end
            axes.text(column, row, _cell_text(value, spread), ha="center", va="center", fontsize="small", color="white" if dark else "black")
    if target is not None and _crosses(values, target):
        axes.contour(np.arange(grid.shape[1]), np.arange(grid.shape[0]), values, levels=[target], colors=[TARGET_STYLE["color"]], linewidths=2)
        axes.plot([], [], label=f"target {target:g} (contour)", **dict(TARGET_STYLE, linestyle="-", linewidth=2))
        axes.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize="small")
    elif target is not None and np.isfinite(values).any():
        if np.nanmax(values) < target or np.nanmin(values) > target:
            note = f"target {target:g}: every cell is {'below' if np.nanmax(values) < target else 'above'} it (no contour)"
        else:
            note = f"target {target:g}: cells on both sides (a contour needs 2 x 2 cells)"
        axes.plot([], [], linestyle="none", label=note)
        axes.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize="small", handlelength=0)
    return figure


def _wide_range(values) -> bool:
    """Positive values spanning more than WIDE_RANGE times: drawn on a log scale."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() > WIDE_RANGE


def _cell_text(value: float, spread: float) -> str:
    """``value`` to 3 significant digits, or more decimals when the cells differ by less."""
    def decimals_for(x: float, digits: int) -> int:
        return max(0, digits - 1 - math.floor(math.log10(abs(x)))) if x else 0

    decimals = max(decimals_for(value, 3), decimals_for(spread, 2) if spread > 0 else 0)
    return f"{value:,.{min(decimals, 6)}f}"


def _crosses(values: np.ndarray, level: float) -> bool:
    finite = values[np.isfinite(values)]
    return min(values.shape) >= 2 and finite.size > 0 and finite.min() < level < finite.max()
