"""What the planning experiments share: options, running a sweep, saving, plotting.

Every experiment is a script with the same options::

    --quick            a tiny grid and 2 replications (what the tests run)
    --replications R   replications per point (each script has its default)
    --seed S           the seed (default 1); same seed, same tables
    --workers N        local worker processes (default: one per core)
    --out DIR          where the CSV and PNG go (default experiments/out)

and writes ``DIR/NAME.csv`` (its answer or aggregated table) and ``DIR/NAME.png``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simrouter.executors import open_executor
from simrouter.sweepfile import SweepSpec, sweep_from_dict
from simrouter.sweeps import aggregate, sweep

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def parse_args(description: str, argv: list[str] | None, replications: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a tiny grid and 2 replications (seconds; used by the tests)")
    parser.add_argument("--replications", type=int, default=None, help=f"replications per point (default {replications}; --quick: 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.replications is None:
        args.replications = 2 if args.quick else replications
    return args


def run_sweep(spec: dict, args: argparse.Namespace) -> tuple[SweepSpec, pd.DataFrame]:
    """(spec, aggregated table) of a sweep given as a dict, on local processes."""
    spec = sweep_from_dict({"seed": args.seed, "replications": args.replications, **spec})
    with open_executor("processes", args.workers) as executor:
        table = sweep(spec, executor=executor, progress=True)
    return spec, aggregate(table, spec)


def metric_rows(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    return summary[summary["metric"] == metric]


def plot_lines(axes, summary: pd.DataFrame, x: str, group: str, metric: str, *, scale: float = 1.0, target: float | None = None, log: bool = False) -> None:
    """``metric``'s mean (times ``scale``) against ``x``, one line per ``group``
    value, with its 95 % interval as a band; ``target`` as a dashed line."""
    rows = metric_rows(summary, metric)
    for value, lines in rows.groupby(group, sort=True):
        lines = lines.sort_values(x)
        drawn = axes.plot(lines[x], lines["mean"] * scale, marker="o", label=f"{group} = {value:g}")[0]
        low, high = lines["ci_low"] * scale, lines["ci_high"] * scale
        if np.isfinite(low).all() and np.isfinite(high).all():
            axes.fill_between(lines[x], low, high, color=drawn.get_color(), alpha=0.2, linewidth=0)
    if target is not None:
        axes.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    if log:
        axes.set_yscale("log")
    axes.set_xlabel(x)
    axes.grid(True, alpha=0.3)


@dataclass(frozen=True)
class Panel:
    """One panel of ``plot_panels``: a metric, its axis label and how to draw it."""

    metric: str
    ylabel: str
    scale: float = 1.0
    target: float | None = None
    log: bool = False


def plot_panels(summary: pd.DataFrame, x: str, group: str, xlabel: str, title: str, panels: list[Panel]) -> Figure:
    """Side-by-side ``plot_lines`` panels sharing ``x`` and ``group``; legend on the first."""
    figure, axes_list = new_figure(len(panels), title)
    for axes, panel in zip(axes_list, panels):
        plot_lines(axes, summary, x, group, panel.metric, scale=panel.scale, target=panel.target, log=panel.log)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(panel.ylabel)
    axes_list[0].legend(fontsize="small")
    return figure


def save(table: pd.DataFrame, figure: Figure, out: Path, name: str) -> tuple[Path, Path]:
    """Write ``out/name.csv`` and ``out/name.png``."""
    out.mkdir(parents=True, exist_ok=True)
    csv, png = out / f"{name}.csv", out / f"{name}.png"
    table.to_csv(csv, index=False)
    figure.savefig(png, dpi=110, bbox_inches="tight")
    print(f"wrote {csv} and {png}")
    return csv, png


def new_figure(panels: int, title: str) -> tuple[Figure, list]:
    figure = Figure(figsize=(6.0 * panels, 4.6), layout="constrained")
    figure.suptitle(title)
    return figure, list(np.atleast_1d(figure.subplots(1, panels)))


__all__ = ["Panel", "metric_rows", "new_figure", "parse_args", "plot_lines", "plot_panels", "run_sweep", "save"]
