"""Independent replications of one scenario, their means and 95 % intervals.

``replicate(scenario, seed, replications=R)`` runs replications ``0 .. R-1`` of
the same seed. Each replication draws from its own streams
``SeedSequence([seed, replication, source, ...])`` (``simrouter.sim.streams``),
so replications are independent, and two configurations run with the same seed
see the same draws replication by replication (common random numbers).

The result, ``ReplicatedResult``, keeps each replication's summary and offers:

* ``summary``: a summary of the same shape as one run's, where
  - every number is the **mean across replications** of that number (over the
    replications where it exists; ``breaker.recovery_s`` is None when any
    replication's breaker never re-closed, as a single run reports it);
  - a flag or state is the common value, or when replications disagree: False
    for flags (not true in every replication), the most frequent for text;
  - ``breaker.transitions`` is empty (each replication's are in
    ``replications_detail``), ``breaker.recoveries`` has one entry per fault
    window with the mean recovery;
  - ``targets`` and the breaker recommendation are evaluated **on the means**;
  - plus ``replications`` (how many), ``ci95`` (dotted key -> [low, high], the
    Student-t 95 % interval across replications, for every figure that is a
    number in some replication; None with fewer than two values, or when the
    mean is None) and, with sequential stopping, ``precision``.
* ``to_dict()``: that summary, ``replications_detail`` (each replication's
  summary) and ``config``: the JSON ``simrouter run --replications`` writes.
* ``to_frame()``: one row per replication, one column per dotted figure;
  ``intervals()``: one row per figure with mean, ci_low, ci_high, half_width, n.

Sequential stopping (``precision=0.05``): start with ``replications`` (default
``MIN_SEQUENTIAL``), add one at a time until, for every metric watched, the 95 %
half-width is at most ``precision`` times |mean|, or ``max_replications`` have
run. The metrics watched are those of the targets the runs check (or
``precision_metrics``); a metric no replication has a value for is skipped.
With an executor, replications run in rounds of its worker count; the stopping
point is still decided replication by replication, in order, so it does not
depend on the executor (extra replications of the last round are discarded).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Scenario, load_scenario
from .errors import ConfigError
from .executors import TasksInterrupted, run_tasks
from .report.progress import progress_bar
from .stats import DEFAULT_LEVEL, Interval, relative_half_width, t_interval

DEFAULT_REPLICATIONS = 10
MIN_SEQUENTIAL = 5
DEFAULT_MAX_REPLICATIONS = 100
# Identify a run, they are not figures to average.
NOT_FIGURES = ("seed", "replication")

__all__ = [
    "ReplicatedResult",
    "ReplicationsInterrupted",
    "figures",
    "flatten",
    "replicate",
    "summary_keys",
]


# ---------------------------------------------------------------- summaries as flat data


def flatten(summary: dict, prefix: str = "") -> dict:
    """Every scalar leaf of a nested summary under its dotted key (lists skipped)."""
    flat = {}
    for key, value in summary.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        elif not isinstance(value, list):
            flat[dotted] = value
    return flat


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def figures(summaries: Sequence[dict]) -> list[str]:
    """Dotted keys that hold a number in at least one of ``summaries``."""
    keys: dict[str, None] = {}
    for summary in summaries:
        for key, value in flatten(summary).items():
            if _is_number(value) and key not in NOT_FIGURES:
                keys.setdefault(key)
    return list(keys)


def _empty_summary() -> dict:
    """The flattened summary of a run without requests: every key, text keys as text."""
    from .result import RunResult
    from .policies.breakers import BreakerState

    empty = np.zeros(0)
    result = RunResult(Scenario(), 0, empty, empty, np.zeros(0, dtype=np.int8), [], BreakerState.CLOSED, 0.0, 0.0)
    return flatten(result.summary)


def summary_keys() -> list[str]:
    """Every dotted key a run's summary has (to validate metric names)."""
    return list(_empty_summary())


def check_metrics(metrics: Iterable[str], field: str, indexed: bool = True, numeric: bool = False) -> list[str]:
    """``metrics`` if each names a summary key (``numeric``: not a text one such as
    ``breaker.state``), else ConfigError naming ``field[.i]``."""
    from .errors import unknown_key_message

    known = _empty_summary()
    metrics = list(metrics)
    for index, metric in enumerate(metrics):
        where = f"{field}.{index}" if indexed else field
        if metric not in known:
            raise ConfigError(where, unknown_key_message(metric, list(known), "the run summary"))
        if numeric and isinstance(known[metric], str):
            raise ConfigError(where, f"{metric} is text, not a number; expected a numeric summary key such as latency_ms.p95")
    return metrics


def _values(flat_summaries: Sequence[dict], key: str) -> list:
    """``key``'s value in each flattened summary (None where it has none)."""
    return [flat.get(key) for flat in flat_summaries]


# ---------------------------------------------------------------- the mean summary


def _combine(values: list):
    """One value standing for a leaf's per-replication values (see the module doc)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(v == present[0] and type(v) is type(present[0]) for v in values):
        return values[0]
    if all(_is_number(v) for v in present):
        return float(np.mean(present))
    if all(isinstance(v, bool) for v in present):
        return False if False in present else True
    return Counter(map(str, present)).most_common(1)[0][0]


def _mean_tree(trees: list[dict]) -> dict:
    out = {}
    for key, first in trees[0].items():
        values = [t.get(key) for t in trees]
        if isinstance(first, dict):
            out[key] = _mean_tree(values)
        elif isinstance(first, list):
            out[key] = []
        else:
            out[key] = _combine(values)
    return out


def _mean_recoveries(summaries: Sequence[dict]) -> list[dict]:
    by_fault: dict[int, list[dict]] = {}
    for summary in summaries:
        for recovery in summary["breaker"]["recoveries"]:
            by_fault.setdefault(recovery["fault"], []).append(recovery)
    merged = []
    for fault, items in sorted(by_fault.items()):
        seconds = [r["recovery_s"] for r in items]
        mean = None if None in seconds else float(np.mean(seconds))
        end = items[0]["fault_end"]
        merged.append({"fault": fault, "fault_end": end, "closed_at": None if mean is None else end + mean, "recovery_s": mean, "replications": len(items)})
    return merged


def mean_summary(summaries: Sequence[dict], scenario: Scenario) -> dict:
    """The summary of means (module doc), targets evaluated on the means."""
    from .metrics import breaker_recommendation
    from .targets import evaluate_targets

    summary = _mean_tree(list(summaries))
    summary["replication"] = None
    breaker = summary["breaker"]
    if any(s["breaker"]["recovered"] is False for s in summaries):
        breaker["recovery_s"] = None
    breaker["recoveries"] = _mean_recoveries(summaries)
    breaker["recommendation"] = breaker_recommendation(summary, scenario)
    summary["targets"] = [t.to_dict() for t in evaluate_targets(summary, scenario.targets, bool(scenario.faults))]
    return summary


# ---------------------------------------------------------------- the result


@dataclass(eq=False)
class ReplicatedResult:
    """Independent replications ``0 .. n-1`` of one scenario and seed."""

    scenario: Scenario
    seed: int
    summaries: list[dict]  # one per replication, in replication order
    precision: dict | None = None  # the sequential-stopping report, if used
    interrupted: bool = False  # Ctrl-C: only the replications completed before it
    wall_time_s: float = field(default=0.0, compare=False)

    @property
    def replications(self) -> int:
        return len(self.summaries)

    @cached_property
    def _flat_summaries(self) -> list[dict]:
        return [flatten(s) for s in self.summaries]

    def values(self, key: str) -> np.ndarray:
        """One value per replication of a dotted figure (NaN where it has none)."""
        return np.array([np.nan if v is None else v for v in _values(self._flat_summaries, key)], dtype=float)

    def interval(self, key: str, level: float = DEFAULT_LEVEL) -> Interval | None:
        """t-interval of ``key`` across the replications that have it."""
        values = self.values(key)
        return t_interval(values[~np.isnan(values)], level)

    @cached_property
    def summary(self) -> dict:
        summary = mean_summary(self.summaries, self.scenario)
        ci95 = {}
        flat = flatten(summary)
        for key in figures(self.summaries):
            interval = self.interval(key) if flat.get(key) is not None else None
            ci95[key] = interval.to_list() if interval else None
        summary["replications"] = self.replications
        summary["ci95"] = ci95
        if self.precision is not None:
            summary["precision"] = self.precision
        if self.interrupted:
            summary["interrupted"] = True
        return summary

    def to_dict(self) -> dict:
        """The JSON: mean summary with ``ci95``, ``replications_detail`` and ``config``."""
        from .result import strict_json

        return strict_json({**self.summary, "replications_detail": self.summaries, "config": self.scenario.to_dict()})

    def to_frame(self) -> pd.DataFrame:
        """One row per replication: every scalar figure under its dotted key, and ``passed``."""
        from .targets import all_passed

        rows = [{**flatten(s), "passed": all_passed(s["targets"])} for s in self.summaries]
        return pd.DataFrame(rows)

    def intervals(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per figure: mean, ci_low, ci_high, half_width and n (replications with a value)."""
        rows = []
        for key in figures(self.summaries):
            interval = self.interval(key, level)
            values = self.values(key)
            n = int((~np.isnan(values)).sum())
            mean = float(np.nanmean(values)) if n else math.nan
            low, high = (interval.low, interval.high) if interval else (math.nan, math.nan)
            rows.append({"metric": key, "mean": mean, "ci_low": low, "ci_high": high, "half_width": (high - low) / 2, "n": n})
        return pd.DataFrame(rows)

    @property
    def passed(self) -> bool:
        """True unless a checked target failed, judged on the means."""
        return all(t["passed"] is not False for t in self.summary["targets"])


class ReplicationsInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``replicate``; ``partial`` holds the replications completed in order."""

    def __init__(self, partial: ReplicatedResult | None):
        super().__init__("replications interrupted")
        self.partial = partial


# ---------------------------------------------------------------- running


def replication_summary(scenario: Scenario, seed: int, replication: int) -> dict:
    """One replication's summary (the task a worker process runs)."""
    from .sim import simulate

    return simulate(scenario, seed=seed, replication=replication).summary


def watched_metrics(summaries: Sequence[dict]) -> list[str]:
    """Metrics of the targets checked in any replication, in target order."""
    metrics: dict[str, None] = {}
    for summary in summaries:
        for target in summary["targets"]:
            if target["passed"] is not None:
                metrics.setdefault(target["metric"])
    return list(metrics)


def achieved_precision(summaries: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Relative 95 % half-width per metric (metrics without any value are left out)."""
    flat_summaries = [flatten(s) for s in summaries]
    achieved = {}
    for metric in metrics:
        values = [v for v in _values(flat_summaries, metric) if v is not None]
        if values:
            achieved[metric] = relative_half_width(values)
    return achieved


def replicate(
    scenario: Scenario | str | Path,
    seed: int = 1,
    overrides=(),
    replications: int | None = None,
    *,
    precision: float | None = None,
    max_replications: int | None = None,
    precision_metrics: Sequence[str] | None = None,
    executor=None,
    progress: bool = False,
) -> ReplicatedResult:
    """Replications of ``scenario``: exactly ``replications`` (default 10), or with
    ``precision`` until every watched metric's relative half-width <= ``precision``.
    ``progress``: a transient bar on standard error (out of the maximum count)."""
    scenario = load_scenario(scenario, overrides)
    if precision is None:
        count = DEFAULT_REPLICATIONS if replications is None else replications
        if max_replications is not None or precision_metrics is not None:
            raise ConfigError("--max-replications", "only used with --precision (sequential stopping)")
        check_count(count, "--replications", 1)
        first, limit = count, count
    else:
        if not (isinstance(precision, (int, float)) and 0 < precision < 1):
            raise ConfigError("--precision", f"expected a relative half-width between 0 and 1 (0.05: within 5 % of the mean), got {precision!r}")
        first = MIN_SEQUENTIAL if replications is None else replications
        check_count(first, "--replications", 2)
        limit = DEFAULT_MAX_REPLICATIONS if max_replications is None else max_replications
        check_count(limit, "--max-replications", first)
        if precision_metrics is not None:
            precision_metrics = check_metrics(precision_metrics, "--precision-metric", indexed=False, numeric=True)

    started = time.perf_counter()
    round_size = max(1, getattr(executor, "_max_workers", 1) or 1) if executor is not None else 1
    summaries: list[dict] = []
    report = None
    try:
        with progress_bar(limit, f"{scenario.name}: replications", enabled=progress) as advance:
            while True:
                wanted = first if not summaries else min(limit, len(summaries) + round_size)
                tasks = {r: (scenario, seed, r) for r in range(len(summaries), wanted)}
                done = run_tasks(replication_summary, tasks, executor, on_done=lambda key, summary: advance())
                unchecked = max(first, len(summaries) + 1)  # shorter prefixes were checked last round
                summaries += [done[r] for r in sorted(done)]
                if precision is None:
                    break
                stop, report = _sequential_stop(summaries, unchecked, limit, precision, precision_metrics)
                if stop is not None:
                    summaries = summaries[:stop]
                    break
    except TasksInterrupted as exc:
        summaries += _in_order(summaries, exc.completed)
        partial = ReplicatedResult(scenario, seed, summaries, report, True, time.perf_counter() - started) if summaries else None
        raise ReplicationsInterrupted(partial) from None
    return ReplicatedResult(scenario, seed, summaries, report, False, time.perf_counter() - started)


def _in_order(summaries: list[dict], completed: dict) -> list[dict]:
    """The completed replications that continue ``summaries`` without a gap."""
    extra = []
    while len(summaries) + len(extra) in completed:
        extra.append(completed[len(summaries) + len(extra)])
    return extra


def check_count(value, field: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, f"expected a whole number >= {minimum}, got {value!r}")


def _sequential_stop(summaries, start, limit, precision, metrics):
    """(n to stop at or None, report) checking every prefix n >= start in order."""
    for n in range(start, len(summaries) + 1):
        watched = list(metrics) if metrics is not None else watched_metrics(summaries[:n])
        achieved = achieved_precision(summaries[:n], watched)
        met = all(value <= precision for value in achieved.values())
        if met or n >= limit:
            report = {"target": precision, "met": met, "max_replications": limit, "achieved": achieved}
            return n, report
    return None, None
