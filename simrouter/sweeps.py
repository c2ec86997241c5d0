"""Parameter sweeps: every point of a sweep file, replicated, on any executor.

``sweep(spec, executor=...)`` runs replication ``r`` of point ``p`` as one task
(seed ``spec.seed``, replication ``r``: the same draws at every point, common
random numbers) and returns the **tidy table**: one row per point and
replication, sorted by (point, replication), with columns

    point, replication, seed, <each swept key>, <each metric>

A task's result depends only on its point, seed and replication, never on the
worker that ran it, so the table is identical whatever the executor
(``concurrent.futures.ProcessPoolExecutor``, a Dask ``Client.get_executor()``,
None for in-process) and the number of workers.

``aggregate(table, spec)`` is the **aggregated table**: one row per point and
metric, in the long form ``simrouter.report.sweep_figure`` plots:

    <each swept key>, metric, mean, ci_low, ci_high, half_width, n

with the mean across replications, its Student-t 95 % interval and ``n``, the
replications with a value (NaN bounds when n < 2).

A Ctrl-C raises ``SweepInterrupted`` (a ``KeyboardInterrupt``) carrying the
tidy table of the runs completed so far. Because each row names its point,
replication and swept values, a later run can read such a table back and skip
the (point, replication) pairs it already holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .executors import TasksInterrupted, run_tasks
from .replications import flatten, replication_summary
from .stats import DEFAULT_LEVEL, t_interval
from .sweepfile import SweepSpec, load_sweep, sweep_from_dict, toml_value

__all__ = ["SweepInterrupted", "aggregate", "sweep", "point_metrics"]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; ``partial`` is the tidy table of the completed runs."""

    def __init__(self, partial: pd.DataFrame):
        super().__init__(f"sweep interrupted after {len(partial)} runs")
        self.partial = partial


def point_metrics(scenario, seed: int, replication: int, metrics: list[str]) -> dict:
    """The figures ``metrics`` of one replication (the task a worker runs)."""
    flat = flatten(replication_summary(scenario, seed, replication))
    return {metric: flat.get(metric) for metric in metrics}


def _as_spec(spec) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return sweep_from_dict(spec)
    return load_sweep(spec)


def sweep(
    spec: SweepSpec | str | Path | dict,
    *,
    executor=None,
    progress: bool = False,
    on_result: Callable[[tuple[int, int], dict], None] | None = None,
) -> pd.DataFrame:
    """The tidy table of ``spec`` (a SweepSpec, a sweep file, or its dict).

    ``executor``: any ``concurrent.futures.Executor`` (None: in this process);
    ``progress``: draw a progress bar on standard error; ``on_result((point,
    replication), figures)`` is called as each run completes."""
    spec = _as_spec(spec)
    tasks = {(p.index, r): (p.scenario, spec.seed, r, spec.metrics) for p in spec.points for r in range(spec.replications)}
    with _progress_bar(spec, progress) as advance:

        def done(key, figures):
            advance(key)
            if on_result:
                on_result(key, figures)

        try:
            results = run_tasks(point_metrics, tasks, executor, on_done=done)
        except TasksInterrupted as exc:
            raise SweepInterrupted(tidy_table(spec, exc.completed)) from None
    return tidy_table(spec, results)


def tidy_table(spec: SweepSpec, results: dict[tuple[int, int], dict]) -> pd.DataFrame:
    """One row per completed (point, replication), sorted."""
    rows = []
    for point_index, replication in sorted(results):
        point = spec.points[point_index]
        swept = {key: _cell(point.values.get(key)) for key in spec.keys}
        rows.append({"point": point_index, "replication": replication, "seed": spec.seed, **swept, **results[(point_index, replication)]})
    columns = ["point", "replication", "seed", *spec.keys, *spec.metrics]
    table = pd.DataFrame(rows, columns=columns)
    for metric in spec.metrics:
        if all(isinstance(v, (int, float)) or v is None for v in table[metric]):
            table[metric] = table[metric].astype(float)
    return table.astype({"point": int, "replication": int, "seed": int})


def _cell(value):
    """A swept value as a table cell: scalars as they are, tables and lists as TOML."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else toml_value(value)


def aggregate(table: pd.DataFrame, spec: SweepSpec, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per point and numeric metric: mean, ci_low, ci_high, half_width, n."""
    rows = []
    for _, group in table.groupby("point", sort=True):
        swept = {key: group[key].iloc[0] for key in spec.keys}
        for metric in spec.metrics:
            if not pd.api.types.is_numeric_dtype(table[metric]):
                continue
            values = group[metric].to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            interval = t_interval(values, level)
            mean = float(values.mean()) if values.size else math.nan
            low, high = (interval.low, interval.high) if interval else (math.nan, math.nan)
            rows.append({**swept, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "half_width": (high - low) / 2, "n": int(values.size)})
    return pd.DataFrame(rows, columns=[*spec.keys, "metric", "mean", "ci_low", "ci_high", "half_width", "n"])


@contextmanager
def _progress_bar(spec: SweepSpec, enabled: bool):
    """``advance((point, replication))``, drawing points done and time left when enabled."""
    if not enabled:
        yield lambda key: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    remaining = {point.index: spec.replications for point in spec.points}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[points]}/%d points" % len(spec.points)),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(spec.name, total=spec.runs, points=0)
        finished = 0

        def advance(key):
            nonlocal finished
            remaining[key[0]] -= 1
            finished += remaining[key[0]] == 0
            progress.update(task, advance=1, points=finished)

        yield advance
