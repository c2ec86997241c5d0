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

A point whose scenario has ``warmup = "auto"`` gets ONE warm-up for all its
replications, chosen by MSER-5 on their averaged series (``simrouter.warmup``,
never past a fault or stage change): its runs are simulated once for their
series, then with that warm-up fixed. The aggregated intervals are t-intervals
of the per-run figures, percentiles included (the tidy table keeps figures,
not samples; pooled percentiles: ``simrouter.replicate``).

A run that raises (or whose worker process dies) does not stop the sweep: its
row gets NaN (None) figures and an ``error`` column, ``"ExceptionType: message"``,
added to the table when some run failed (empty for the others); ``aggregate``
leaves failed runs out (``n`` counts the rest).

A Ctrl-C (or SIGTERM) raises ``SweepInterrupted`` (a ``KeyboardInterrupt``)
carrying the tidy table of the runs completed so far. Because each row names its
point, replication and swept values, ``completed_runs(table, spec)`` reads such a
table back (checking that it belongs to this sweep) and ``sweep(spec, done=...)``
skips the (point, replication) pairs it holds: ``simrouter sweep --resume``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .executors import TasksInterrupted, run_tasks
from .replications import flatten, replication_series, run_with_warmup
from .warmup import WarmupChoice, choose_shared_warmup, send_time_grid, warmup_cap
from .stats import DEFAULT_LEVEL, t_interval
from .sweepfile import SweepSpec, load_sweep, sweep_from_dict, toml_value

__all__ = ["ERROR_COLUMN", "SweepInterrupted", "aggregate", "completed_runs", "sweep", "point_metrics"]

ERROR_COLUMN = "error"
RunKey = tuple[int, int]  # (point, replication)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; ``partial`` is the tidy table of the completed runs."""

    def __init__(self, partial: pd.DataFrame):
        super().__init__(f"sweep interrupted after {len(partial)} runs")
        self.partial = partial


def point_metrics(scenario, seed: int, replication: int, metrics: list[str], warmup: WarmupChoice | None = None) -> dict:
    """The figures ``metrics`` of one replication (the task a worker runs);
    ``warmup``: the point's shared warm-up, if its scenario's is "auto"."""
    flat = flatten(run_with_warmup(scenario, seed, replication, warmup)[1])
    return {metric: flat.get(metric) for metric in metrics}


def shared_warmups(spec: SweepSpec, points: set[int], executor=None) -> dict[int, WarmupChoice]:
    """One warm-up per point in ``points`` whose scenario's warm-up is "auto", chosen on
    all its replications' series (a point whose series all fail gets none)."""
    autos = [p for p in spec.points if p.index in points and p.scenario.warmup == "auto"]
    tasks = {(p.index, r): (p.scenario, spec.seed, r) for p in autos for r in range(spec.replications)}
    series = run_tasks(replication_series, tasks, executor, on_error=lambda key, error: None)
    chosen = {}
    for p in autos:
        found = [series[(p.index, r)] for r in range(spec.replications) if series[(p.index, r)] is not None]
        if found:
            chosen[p.index] = choose_shared_warmup(found, send_time_grid(p.scenario), warmup_cap(p.scenario))
    return chosen


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
    on_result: Callable[[RunKey, dict], None] | None = None,
    done: dict[RunKey, dict] | None = None,
) -> pd.DataFrame:
    """The tidy table of ``spec`` (a SweepSpec, a sweep file, or its dict).

    ``executor``: any ``concurrent.futures.Executor`` (None: in this process);
    ``progress``: draw a progress bar on standard error; ``on_result((point,
    replication), figures)`` is called as each run completes; ``done``: runs
    already completed (``completed_runs``), kept and not run again."""
    spec = _as_spec(spec)
    done = dict(done or {})
    pending = [(p, r) for p in spec.points for r in range(spec.replications) if (p.index, r) not in done]
    try:
        warmups = shared_warmups(spec, {p.index for p, _ in pending}, executor)
    except TasksInterrupted:
        raise SweepInterrupted(tidy_table(spec, done)) from None
    # The shared warm-up is passed only to the points that have one.
    tasks = {(p.index, r): (p.scenario, spec.seed, r, spec.metrics, *([warmups[p.index]] if p.index in warmups else [])) for p, r in pending}
    with _progress_bar(spec, progress) as advance:
        for key in done:
            advance(key)

        def finished(key, figures):
            advance(key)
            if on_result:
                on_result(key, figures)

        def failed(key, error: Exception) -> dict:
            return failed_figures(spec, f"{type(error).__name__}: {error}")

        try:
            results = run_tasks(point_metrics, tasks, executor, on_done=finished, on_error=failed)
        except TasksInterrupted as exc:
            raise SweepInterrupted(tidy_table(spec, {**done, **exc.completed})) from None
    return tidy_table(spec, {**done, **results})


def failed_figures(spec: SweepSpec, error: str) -> dict:
    """The figures of a run that failed with ``error``."""
    return {**{metric: None for metric in spec.metrics}, ERROR_COLUMN: error}


def tidy_table(spec: SweepSpec, results: dict[RunKey, dict], error_column: bool | None = None) -> pd.DataFrame:
    """One row per completed (point, replication), sorted; the ``error`` column when
    ``error_column`` (None: when some run failed)."""
    rows = []
    for point_index, replication in sorted(results):
        point = spec.points[point_index]
        swept = {key: _cell(point.values.get(key)) for key in spec.keys}
        rows.append({"point": point_index, "replication": replication, "seed": spec.seed, **swept, **results[(point_index, replication)]})
    if error_column is None:
        error_column = any(row.get(ERROR_COLUMN) for row in rows)
    columns = ["point", "replication", "seed", *spec.keys, *spec.metrics, *([ERROR_COLUMN] if error_column else [])]
    table = pd.DataFrame(rows, columns=columns)
    if error_column:
        table[ERROR_COLUMN] = pd.Series(["" if _missing(v) else str(v) for v in table[ERROR_COLUMN]], index=table.index, dtype=object)
    for metric in spec.metrics:
        if all(isinstance(v, (int, float)) or v is None for v in table[metric]):
            table[metric] = table[metric].astype(float)
    return table.astype({"point": int, "replication": int, "seed": int})


def completed_runs(table: pd.DataFrame, spec: SweepSpec, source: str = "the table") -> dict[RunKey, dict]:
    """The successful runs of a tidy table written by an earlier (interrupted) run of
    ``spec``, as ``sweep(done=...)`` takes them. Failed runs and runs outside the
    spec's points and replications are left out (run again); a table from another
    sweep (other seed, swept values or metrics) is a ConfigError naming ``--resume``."""
    from .errors import ConfigError

    missing = [c for c in ("point", "replication", "seed", *spec.keys, *spec.metrics) if c not in table.columns]
    if missing:
        raise ConfigError("--resume", f"{source} lacks the columns {', '.join(missing)}: it was written by another sweep")
    done: dict[RunKey, dict] = {}
    for row in table.to_dict("records"):
        point, replication = int(row["point"]), int(row["replication"])
        if not _missing(row.get(ERROR_COLUMN)) and row[ERROR_COLUMN] != "":
            continue
        if not (0 <= point < len(spec.points) and 0 <= replication < spec.replications):
            continue
        if int(row["seed"]) != spec.seed:
            raise ConfigError("--resume", f"{source} was run with seed {row['seed']}, this sweep has seed {spec.seed}")
        for key in spec.keys:
            expected = _cell(spec.points[point].values.get(key))
            if not _same_cell(row[key], expected):
                raise ConfigError("--resume", f"{source} has {key} = {row[key]!r} at point {point}, this sweep has {expected!r}: it was written by another sweep")
        done[(point, replication)] = {metric: _from_cell(row[metric]) for metric in spec.metrics}
    return done


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _same_cell(read, expected) -> bool:
    """A swept value read back from CSV / Parquet equals the spec's (ints may come back as floats)."""
    if _missing(read) or _missing(expected):
        return _missing(read) and _missing(expected)
    numbers = (int, float, np.integer, np.floating)
    if isinstance(read, numbers) and isinstance(expected, numbers) and not isinstance(expected, bool):
        return math.isclose(float(read), float(expected), rel_tol=1e-12, abs_tol=0.0)
    return str(read) == str(expected)


def _from_cell(value):
    """A figure read back from a table: numpy scalars as Python values, NaN as None."""
    if _missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _cell(value):
    """A swept value as a table cell: scalars as they are, tables and lists as TOML."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else toml_value(value)


def aggregate(table: pd.DataFrame, spec: SweepSpec, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per point and numeric metric: mean, ci_low, ci_high, half_width, n.
    A non-negative metric's ci_low below 0 is clipped to 0 (half_width keeps the
    t-interval's); ``frame.attrs["ci_low_clipped_at_0"]`` lists those metrics."""
    rows = []
    clipped: set[str] = set()
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
            half_width = (high - low) / 2
            if low < 0 and values.min() >= 0:  # a quantity that cannot be negative: clip, and say so
                low = 0.0
                clipped.add(metric)
            rows.append({**swept, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "half_width": half_width, "n": int(values.size)})
    frame = pd.DataFrame(rows, columns=[*spec.keys, "metric", "mean", "ci_low", "ci_high", "half_width", "n"])
    frame.attrs["ci_low_clipped_at_0"] = sorted(clipped)
    return frame


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
