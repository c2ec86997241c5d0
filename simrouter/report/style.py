"""The shared look of simrouter's plots, and what a summary figure means.

Plots are ``matplotlib.figure.Figure`` objects made without ``pyplot``: no global
figure registry, no GUI backend, and PNG output through Agg whatever backend a
notebook has chosen. ``new_figure`` makes one (constrained layout), ``png_bytes``
and ``save_png`` render it.

Colours: breaker states green (closed) / orange (half-open) / red (open); targets
are dashed red lines; fault windows are shaded grey; deployments (``[[deployments]]``)
take ``deployment_colour(index)`` from a palette that avoids the breaker colours.

``unit_of(metric)`` gives the unit of a dotted summary path (``latency_ms.p95`` ->
"ms"), ``axis_label`` a label with that unit, and ``target_of(metric, targets)``
the threshold a ``Targets`` config sets for it (None when the metric has no target
or the target is disabled: a max of ``inf``, a min of 0).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

BREAKER_COLOURS = {"closed": "#2ca02c", "half_open": "#ff7f0e", "open": "#d62728"}
TARGET_STYLE = {"color": "#d62728", "linestyle": "--", "linewidth": 1.2}
FAULT_STYLE = {"color": "0.55", "alpha": 0.25, "linewidth": 0}
PERCENTILE_COLOURS = {"p50": "#1f77b4", "p90": "#17becf", "p95": "#9467bd", "p99": "#8c564b"}
# Deployments, in config order: blues, purples, browns, no green/orange/red (those are breaker states).
DEPLOYMENT_COLOURS = ("#1f77b4", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22", "#aec7e8", "#c5b0d5", "#c49c94")
OUTCOME_COLOURS = {
    "succeeded": "#2ca02c",
    "rate_limited": "#bcbd22",
    "breaker_rejected": "#ff7f0e",
    "timeouts": "#9467bd",
    "failures": "#d62728",
    "validation_errors": "#7f7f7f",
    "queue_full": "#8c564b",
}

# Summary path -> (Targets field, comparison); mirrors simrouter.targets.
TARGET_FIELDS = {
    "latency_ms.p95": ("p95_ms", "<"),
    "latency_ms.p99": ("p99_ms", "<"),
    "throughput.goodput_rps": ("min_rps", ">"),
    "throughput.success_rps": ("min_rps", ">"),
    "error_rate": ("max_error_rate", "<"),
    "breaker.recovery_s": ("max_recovery_s", "<"),
}

_UNITS = (
    ("latency_ms", "ms"),
    ("throughput.rpm", "req/min"),
    ("throughput.window_s", "s"),
    ("throughput", "req/s"),
    ("error_rates", "fraction"),
    ("error_rate", "fraction"),
    ("breaker.failure_rate", "fraction"),
    ("backend.utilization", "fraction"),
    ("backend.utilization_whole_run", "fraction"),
    ("breaker.recovery_s", "s"),
    ("breaker.trips", "count"),
    ("requests", "count"),
    ("sim_time_s", "s"),
    # swept configuration fields
    ("backend.capacity", "slots"),
    ("backend.queue_limit", "requests"),
    ("workload.rate", "req/s"),
    ("workload.users", "users"),
    ("limiter.rate", "tokens/s"),
    ("limiter.burst", "tokens"),
    ("breaker.open_duration", "s"),
    ("breaker.failure_threshold", "failures"),
    ("breaker.failure_rate_threshold", "fraction"),
    ("router.timeout", "s"),
)


def deployment_colour(index: int) -> str:
    """The colour of deployment ``index`` (the palette repeats after ten deployments)."""
    return DEPLOYMENT_COLOURS[index % len(DEPLOYMENT_COLOURS)]


def new_figure(width: float = 9.0, height: float = 5.0) -> Figure:
    """An empty figure, laid out with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(figure: Figure, path: Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(figure, dpi))
    return path


def unit_of(metric: str) -> str:
    """The unit of a dotted summary path ("" when unknown)."""
    for prefix, unit in _UNITS:
        if metric == prefix or metric.startswith(prefix + "."):
            return unit
    return ""


def axis_label(metric: str) -> str:
    unit = unit_of(metric)
    return f"{metric} ({unit})" if unit else metric


def target_of(metric: str, targets) -> float | None:
    """The enabled threshold ``targets`` (a ``Targets``) sets on ``metric``, else None."""
    if targets is None or metric not in TARGET_FIELDS:
        return None
    name, comparison = TARGET_FIELDS[metric]
    threshold = float(getattr(targets, name))
    if (comparison == "<" and math.isinf(threshold)) or (comparison == ">" and threshold == 0):
        return None
    return threshold


def shade_faults(axes, faults, label: bool = True) -> None:
    """Shade each fault window on ``axes``; only the first gets a legend label."""
    for index, fault in enumerate(faults):
        axes.axvspan(fault.start, fault.end, label="fault window" if label and index == 0 else None, **FAULT_STYLE)


def plain_log_scale(axes, which: str = "x") -> None:
    """Log scale on ``axes``' x or y axis, labelled 10, 20, 50, 100 rather than 10^1."""
    getattr(axes, f"set_{which}scale")("log")
    plain_log_ticks(getattr(axes, f"{which}axis"))


def plain_log_ticks(axis) -> None:
    """Ticks at 1, 2, 5 x 10^k on a log-scaled ``axis`` (an Axis), as plain numbers."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def no_data(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", color="0.4")
