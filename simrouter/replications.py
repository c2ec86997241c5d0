"""Independent replications of one scenario, their means and 95 % intervals.

``replicate(scenario, seed, replications=R)`` runs replications ``0 .. R-1`` of
the same seed. Each replication draws from its own streams
``SeedSequence([seed, replication, source, ...])`` (``simrouter.sim.streams``),
so replications are independent, and two configurations run with the same seed
see the same draws replication by replication (common random numbers).

The result, ``ReplicatedResult``, keeps each replication's summary (and its
latency samples) and offers:

* ``summary``: a summary of the same shape as one run's, where
  - every number is the **mean across replications** of that number (over the
    replications where it exists; ``breaker.recovery_s`` is None when any
    replication's breaker never re-closed, as a single run reports it),
    EXCEPT the latency percentiles ``latency_ms.p50/p90/p95/p99``: they are the
    percentile of **all replications' latency samples pooled**, the P99 of the
    latency distribution a planner reads (``stats.quantile_interval``); so are,
    on the LLM backend, ``ttft_ms``, ``tpot_ms`` (pooled per-request values) and
    ``itl_ms`` (the pooled inter-token gaps, with ``llm_summary``'s weighted
    percentile definition) percentiles (``LLM_QUANTILE_FIGURES``);
  - a flag or state is the common value, or when replications disagree: False
    for flags (not true in every replication), the most frequent for text;
  - ``breaker.transitions`` is empty (each replication's are in
    ``replications_detail``), ``breaker.recoveries`` has one entry per fault
    window with the mean recovery, and ``breaker.never_recovered`` counts the
    replications whose breaker tripped and never re-closed (``count``,
    ``fraction`` of all replications, ``tripped``);
  - ``targets`` and the breaker recommendation are evaluated on these figures;
  - plus ``replications`` (how many), ``ci95`` (dotted key -> [low, high], for
    every figure that is a number in some replication: the Student-t 95 %
    interval of the per-replication values, and for the pooled percentiles the
    sectioning interval around the pooled percentile (for ``itl_ms``: the
    t-interval of the per-replication percentiles, centred on the pooled one); None with fewer than two
    values, or when the figure is None; every figure is non-negative, so a low
    end below 0 is clipped to 0 and the key listed in ``ci95_clipped_at_0``) and,
    with sequential stopping, ``precision``; ``diagnosis``: the replications'
    ``simrouter.diagnosis`` codes merged, plus ``not_converged``.
* ``to_dict()``: that summary, ``replications_detail`` (each replication's
  summary) and ``config``: the JSON ``simrouter run --replications`` writes.
* ``to_frame()``: one row per replication, one column per dotted figure;
  ``intervals()``: one row per figure with its point estimate (``mean``),
  ci_low, ci_high, half_width, n.

``warmup = "auto"``: all replications share ONE truncation point, chosen by
MSER-5 on their response-time series averaged across replications
(``warmup.choose_shared_warmup``, never past the first fault or stage change).
The replications run twice: once for their series, then with that warm-up
fixed (a run does not depend on its warm-up, only its figures do). With
sequential stopping the warm-up is chosen on the first ``replications`` (n0)
and kept for the ones added. ``compare_configs`` chooses one for both sides.

Sequential stopping (``precision=gamma``): Law & Kelton's procedure. Start with
``replications`` (n0, default ``DEFAULT_FIRST_SEQUENTIAL``, at least
``stats.MIN_SEQUENTIAL``), add one at a time until, for every metric watched,
the 95 % half-width is at most ``gamma / (1 + gamma)`` times the point estimate
(``stats.precision_reached``), or ``max_replications`` have run:
``precision.converged`` is False then. The metrics watched are those of the
targets the runs check (or ``precision_metrics``); a metric no replication has
a value for is skipped. Two guards (``stats`` module doc): no interval is
trusted before Cochran's ``n >= 25 g1**2`` (g1: skewness of the per-replication
values), and a tail or recovery figure (``is_tail_figure``: P99, max,
``recovery_s``), whose runs can have a rare high mode, is not judged before
``max(n0, stats.MIN_TAIL_SEQUENTIAL)`` = 40 replications. ``precision.minimum_n``
says, per metric, the count each guard asked for at the stop. With an executor, replications run in rounds of its
worker count (``executors.worker_count``); the stopping point is still decided
replication by replication, in order, so it does not depend on the executor
(extra replications of the last round are discarded).

``on_replication(done, planned)``, if given, is called after each replication
finishes (``planned``: the most that can run): the caller draws progress.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import Scenario, load_scenario
from .errors import ConfigError
from .executors import TasksInterrupted, run_tasks, worker_count
from .metrics import PERCENTILES
from .stats import DEFAULT_LEVEL, MIN_SEQUENTIAL, MIN_TAIL_SEQUENTIAL, Interval, cochran_minimum, corrected_precision, precision_reached, quantile_interval, sequential_stop, t_interval
from .warmup import BinnedSeries, WarmupChoice, binned_response_times, choose_shared_warmup, send_time_grid, warmup_cap

if TYPE_CHECKING:  # pandas is imported where a table is built: a plain run does not load it
    import pandas as pd

DEFAULT_REPLICATIONS = 10
DEFAULT_FIRST_SEQUENTIAL = 20  # n0 of sequential stopping (Law & Kelton ask for >= 10)
DEFAULT_MAX_REPLICATIONS = 100
# Identify a run, they are not figures to average.
NOT_FIGURES = ("seed", "replication")
# The figures that are quantiles of the latency distribution: pooled, with sectioning intervals.
QUANTILE_FIGURES = {f"latency_ms.p{p}": p / 100.0 for p in PERCENTILES}
# The LLM backend's pooled quantiles: dotted key -> (``llm_summary.llm_samples`` key, q).
LLM_SAMPLES = {"ttft_ms": "ttft", "tpot_ms": "tpot", "itl_ms": "itl"}
LLM_QUANTILE_FIGURES = {f"{figure}.p{p}": (name, p / 100.0) for figure, name in LLM_SAMPLES.items() for p in PERCENTILES}

__all__ = [
    "LLM_QUANTILE_FIGURES",
    "QUANTILE_FIGURES",
    "ReplicatedResult",
    "ReplicationOutput",
    "ReplicationsInterrupted",
    "figures",
    "flatten",
    "is_tail_figure",
    "replicate",
    "shared_warmup",
    "summary_keys",
]


# ---------------------------------------------------------------- summaries as flat data


def flatten(summary: dict, prefix: str = "") -> dict:
    """Every scalar leaf of a nested summary under its dotted key (lists skipped,
    except a gateway's ``deployments``: ``deployments.0.share`` ...)."""
    flat = {}
    for key, value in summary.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        elif dotted == "deployments" and isinstance(value, list):
            for index, deployment in enumerate(value):
                flat.update(flatten(deployment, f"{dotted}.{index}."))
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
    return {**flatten(result.summary), **flatten(_empty_llm_summary())}  # the LLM backend's keys too (ttft_ms.p95, ...)


def _empty_llm_summary() -> dict:
    """The LLM keys (``llm_summary``) of a run without requests."""
    from .config.sections import BackendConfig
    from .llm_summary import LLMColumns, llm_summary
    from .policies.breakers import BreakerState
    from .result import RunResult

    empty, ints = np.zeros(0), np.zeros(0, dtype=np.int64)
    steps = {"end": empty, "duration": empty, "running": ints, "waiting": ints, "decoded": ints, "gaps": empty}
    llm = LLMColumns(first_token=empty, prompt_tokens=ints, output_tokens=ints, steps=steps)
    result = RunResult(Scenario(backend=BackendConfig(model="llm")), 0, empty, empty, np.zeros(0, dtype=np.int8), [], BreakerState.CLOSED, 0.0, 0.0, llm=llm)
    return llm_summary(result)


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


def _never_recovered(summaries: Sequence[dict]) -> dict:
    """Replications whose breaker tripped and never re-closed: a result, not missing data."""
    tripped = sum(1 for s in summaries if s["breaker"]["recovered"] is not None)
    never = sum(1 for s in summaries if s["breaker"]["recovered"] is False)
    return {"count": never, "fraction": never / len(summaries) if summaries else 0.0, "tripped": tripped}


def pooled_quantiles(samples: Sequence[np.ndarray]) -> dict[str, float | None]:
    """``QUANTILE_FIGURES`` of all ``samples`` pooled (milliseconds; None without any)."""
    parts = [part for part in samples if len(part)]
    if not parts:
        return {key: None for key in QUANTILE_FIGURES}
    pooled = np.concatenate(parts)
    values = np.percentile(pooled, [100.0 * q for q in QUANTILE_FIGURES.values()])
    return {key: float(value) for key, value in zip(QUANTILE_FIGURES, values)}


def _llm_parts(llm_samples: Sequence[dict], name: str) -> list:
    """Each replication's samples of ``name`` (``llm_summary.llm_samples``), those with any."""
    if name == "itl":
        return [pair for pair in (d[name] for d in llm_samples) if pair[1].sum() > 0]
    return [values for values in (d[name] for d in llm_samples) if len(values)]


def pooled_llm_quantiles(llm_samples: Sequence[dict]) -> dict[str, float | None]:
    """``LLM_QUANTILE_FIGURES`` of all replications' samples pooled (ms; None without any)."""
    from .llm_summary import weighted_percentiles

    out: dict[str, float | None] = {}
    for figure, name in LLM_SAMPLES.items():
        parts = _llm_parts(llm_samples, name)
        if name == "itl":
            rows = weighted_percentiles(np.concatenate([v for v, _ in parts]), np.concatenate([w for _, w in parts])) if parts else None
            out.update({f"{figure}.p{p}": (rows[f"p{p}"] if rows else None) for p in PERCENTILES})
        else:
            values = np.percentile(np.concatenate(parts), list(PERCENTILES)) if parts else [None] * len(PERCENTILES)
            out.update({f"{figure}.p{p}": (None if v is None else float(v)) for p, v in zip(PERCENTILES, values)})
    return out


def mean_summary(
    summaries: Sequence[dict], scenario: Scenario, latency_samples: Sequence[np.ndarray] | None = None, llm_samples: Sequence[dict] | None = None, deployment_samples=None
) -> dict:
    """The summary of means (module doc; latency percentiles pooled from
    ``latency_samples``, and the LLM ones from ``llm_samples``, when given),
    targets evaluated on it. Behind a gateway, ``deployments`` are merged
    deployment by deployment (``deployment_summary.mean_deployments``: shares and
    counts averaged, each deployment's latency percentiles pooled from
    ``deployment_samples``)."""
    from .diagnosis import merge as merge_diagnoses
    from .metrics import breaker_recommendation
    from .targets import evaluate_targets

    summary = _mean_tree(list(summaries))
    summary["replication"] = None
    if latency_samples is not None:
        for key, value in pooled_quantiles(latency_samples).items():
            summary["latency_ms"][key.split(".", 1)[1]] = value
    if llm_samples and "ttft_ms" in summary:
        for key, value in pooled_llm_quantiles(llm_samples).items():
            figure, leaf = key.split(".", 1)
            summary[figure][leaf] = value
    breaker = summary["breaker"]
    if any(s["breaker"]["recovered"] is False for s in summaries):
        breaker["recovery_s"] = None
    if "deployments" in summaries[0]:
        from .deployment_summary import mean_deployments

        summary["deployments"] = mean_deployments(list(summaries), deployment_samples, _mean_tree, pooled_quantiles)
        summary["breaker"]["transitions"] = []
    breaker["recoveries"] = _mean_recoveries(summaries)
    breaker["never_recovered"] = _never_recovered(summaries)
    summary["diagnosis"] = merge_diagnoses([s.get("diagnosis", []) for s in summaries])
    breaker["recommendation"] = breaker_recommendation(summary, scenario)
    has_faults = bool(scenario.faults) or any(d.faults for d in scenario.deployments)
    summary["targets"] = [t.to_dict() for t in evaluate_targets(summary, scenario.targets, has_faults)]
    return summary


def figure_interval(
    flat_summaries: Sequence[dict], latency_samples: Sequence[np.ndarray] | None, key: str, level: float = DEFAULT_LEVEL, llm_samples: Sequence[dict] | None = None
) -> Interval | None:
    """The interval ``ci95`` reports for ``key`` over these replications: sectioning
    around the pooled quantile for ``QUANTILE_FIGURES`` (when samples are kept) and
    ``LLM_QUANTILE_FIGURES`` (when LLM samples are kept), else the t-interval of the
    replications that have a value."""
    if key in QUANTILE_FIGURES and latency_samples is not None:
        return quantile_interval(latency_samples, QUANTILE_FIGURES[key], level)
    if key in LLM_QUANTILE_FIGURES and llm_samples:
        name, q = LLM_QUANTILE_FIGURES[key]
        if name != "itl":
            return quantile_interval(_llm_parts(llm_samples, name), q, level)
        # Weighted gaps: the sections are the replications' own percentiles (their summaries').
        sections = t_interval(np.array([v for v in _values(flat_summaries, key) if v is not None], dtype=float), level)
        point = pooled_llm_quantiles(llm_samples)[key]
        if sections is None or point is None:
            return None
        half = sections.half_width
        return Interval(point, point - half, point + half, sections.n, level, sections.skewness)
    values = np.array([v for v in _values(flat_summaries, key) if v is not None], dtype=float)
    return t_interval(values, level)


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
    # Each replication's latency samples (ms, the latency population after warm-up):
    # the pooled percentiles and their sectioning intervals. None: not kept.
    latency_samples: list[np.ndarray] | None = field(default=None, repr=False)
    # Behind a gateway: per replication, each deployment's latency samples (ms), pooled likewise.
    deployment_samples: list[list[np.ndarray]] | None = field(default=None, repr=False)
    # LLM backend: each replication's ``llm_summary.llm_samples`` (TTFT, TPOT, ITL pooled). None: not kept.
    llm_samples: list[dict] | None = field(default=None, repr=False)

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
        """The interval of ``key`` (``figure_interval``): for a latency percentile,
        around the pooled percentile; else the t-interval across the replications."""
        return figure_interval(self._flat_summaries, self.latency_samples, key, level, self.llm_samples)

    @cached_property
    def summary(self) -> dict:
        summary = mean_summary(self.summaries, self.scenario, self.latency_samples, self.llm_samples, self.deployment_samples)
        ci95 = {}
        flat = flatten(summary)
        clipped = []
        for key in figures(self.summaries):
            interval = self.interval(key) if flat.get(key) is not None else None
            ci95[key] = interval.to_list() if interval else None
            if ci95[key] and ci95[key][0] < 0:  # every figure is a count, rate, time or share: never negative
                ci95[key][0] = 0.0
                clipped.append(key)
        summary["replications"] = self.replications
        summary["ci95"] = ci95
        if clipped:
            summary["ci95_clipped_at_0"] = clipped  # their t-interval reached below 0: its low end is shown as 0
        if self.precision is not None:
            summary["precision"] = self.precision
            if self.precision.get("converged") is False:
                from .diagnosis import diagnose

                summary["diagnosis"] += [d for d in diagnose({}, self.scenario, precision=self.precision) if d["code"] == "not_converged"]
        if self.interrupted:
            summary["interrupted"] = True
        return summary

    def to_dict(self) -> dict:
        """The JSON: mean summary with ``ci95``, ``replications_detail`` and ``config``."""
        from .result import strict_json

        return strict_json({**self.summary, "replications_detail": self.summaries, "config": self.scenario.to_dict()})

    def to_frame(self) -> pd.DataFrame:
        """One row per replication: every scalar figure under its dotted key, and ``passed``."""
        import pandas as pd

        from .targets import all_passed

        rows = [{**flatten(s), "passed": all_passed(s["targets"])} for s in self.summaries]
        return pd.DataFrame(rows)

    def intervals(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per figure: its point estimate (``mean``: the mean across replications,
        the pooled percentile for a latency percentile), ci_low, ci_high, half_width and n
        (replications with a value)."""
        import pandas as pd

        rows = []
        flat = flatten(self.summary)
        for key in figures(self.summaries):
            interval = self.interval(key, level)
            values = self.values(key)
            n = int((~np.isnan(values)).sum())
            pooled = key in QUANTILE_FIGURES or (key in LLM_QUANTILE_FIGURES and self.llm_samples)
            point = flat.get(key) if pooled else (float(np.nanmean(values)) if n else None)
            low, high = (interval.low, interval.high) if interval else (math.nan, math.nan)
            rows.append({"metric": key, "mean": math.nan if point is None else point, "ci_low": low, "ci_high": high, "half_width": (high - low) / 2, "n": n})
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


@dataclass(frozen=True)
class ReplicationOutput:
    """What a worker sends back for one replication: its summary and its latency
    samples (ms, the latency population after warm-up); on the LLM backend its
    ``llm_summary.llm_samples`` (else None)."""

    summary: dict
    latency_ms: np.ndarray
    deployment_latency_ms: list[np.ndarray] | None = None  # behind a gateway: each deployment's (ms)
    llm: dict | None = None


def replication_summary(scenario: Scenario, seed: int, replication: int) -> dict:
    """One replication's summary (the task a sweep's worker runs)."""
    from .sim import simulate

    return simulate(scenario, seed=seed, replication=replication).summary


def replication_output(scenario: Scenario, seed: int, replication: int, warmup: WarmupChoice | None = None) -> ReplicationOutput:
    """One replication (the task ``replicate``'s worker runs). ``warmup``: a warm-up
    shared by several runs (``shared_warmup``), applied as a fixed one and reported
    as chosen, with this run's own count of deleted requests."""
    result, summary = run_with_warmup(scenario, seed, replication, warmup)
    per_deployment = None
    if result.deployment_runs is not None:
        from .deployment_summary import deployment_latencies

        per_deployment = deployment_latencies(result)
    llm = None
    if result.llm is not None:
        from .llm_summary import llm_samples

        llm = llm_samples(result)
    return ReplicationOutput(summary, result.latencies() * 1000.0, per_deployment, llm)


def run_with_warmup(scenario: Scenario, seed: int, replication: int, warmup: WarmupChoice | None = None):
    """(RunResult, its summary) of one replication; ``warmup``: a shared warm-up
    (``shared_warmup``) applied as a fixed one, the summary's ``warmup`` record saying
    how it was chosen and how many of this run's requests it deleted."""
    from .sim import simulate

    if warmup is not None:
        scenario = dataclasses.replace(scenario, warmup=warmup.seconds)
    result = simulate(scenario, seed=seed, replication=replication)
    summary = result.summary
    if warmup is not None:
        deleted = int(np.count_nonzero(result.latency_population() & ~result.measured))
        summary = {**summary, "warmup": dataclasses.replace(warmup, deleted_requests=deleted).to_dict()}
    return result, summary


def replication_series(scenario: Scenario, seed: int, replication: int) -> BinnedSeries:
    """One replication's response times on the common grid (for a shared warm-up)."""
    from .sim import simulate

    result = simulate(dataclasses.replace(scenario, warmup=0.0), seed=seed, replication=replication)
    return binned_response_times(result.sent, result.done, result.kind, send_time_grid(scenario))


def shared_warmup(scenarios: Sequence[Scenario], seed: int, replications: int, executor=None, on_done: Callable | None = None) -> WarmupChoice:
    """ONE MSER-5 warm-up for replications ``0 .. replications-1`` of every scenario
    in ``scenarios`` (the same duration), on their series averaged (module doc),
    never past the earliest fault or stage change of any of them."""
    durations = {s.duration for s in scenarios}
    if len(durations) > 1:
        raise ConfigError("duration", f"a shared warm-up needs one duration, got {sorted(durations)}")
    tasks = {(i, r): (s, seed, r) for i, s in enumerate(scenarios) for r in range(replications)}
    series = run_tasks(replication_series, tasks, executor, on_done=on_done)
    caps = [cap for cap in (warmup_cap(s) for s in scenarios) if cap is not None]
    return choose_shared_warmup([series[key] for key in sorted(series)], send_time_grid(scenarios[0]), min(caps, default=None))


def watched_metrics(summaries: Sequence[dict]) -> list[str]:
    """Metrics of the targets checked in any replication, in target order."""
    metrics: dict[str, None] = {}
    for summary in summaries:
        for target in summary["targets"]:
            if target["passed"] is not None:
                metrics.setdefault(target["metric"])
    return list(metrics)


def _watched_intervals(outputs: Sequence[ReplicationOutput], metrics: Sequence[str] | None) -> dict[str, Interval | None]:
    """The interval of each watched metric over ``outputs`` (metrics without any value left out)."""
    summaries = [o.summary for o in outputs]
    flat = [flatten(s) for s in summaries]
    watched = list(metrics) if metrics is not None else watched_metrics(summaries)
    samples = [o.latency_ms for o in outputs]
    llm = [o.llm for o in outputs] if outputs and all(o.llm is not None for o in outputs) else None
    return {m: figure_interval(flat, samples, m, llm_samples=llm) for m in watched if any(v is not None for v in _values(flat, m))}


# Figures whose per-replication values can have a rare high mode (module doc).
TAIL_SUFFIXES = (".p99", ".max", "recovery_s")


def is_tail_figure(metric: str) -> bool:
    """A P99, a maximum or a recovery time: judged from ``MIN_TAIL_SEQUENTIAL`` replications."""
    return metric.endswith(TAIL_SUFFIXES)


def first_stage(metric: str, first: int) -> int:
    """The replications ``metric`` needs before sequential stopping may judge it."""
    return max(first, MIN_TAIL_SEQUENTIAL) if is_tail_figure(metric) else first


def _staged_intervals(outputs: Sequence[ReplicationOutput], metrics: Sequence[str] | None, first: int) -> list[tuple[Interval | None, int]]:
    return [(interval, first_stage(m, first)) for m, interval in _watched_intervals(outputs, metrics).items()]


def precision_report(outputs: Sequence[ReplicationOutput], metrics: Sequence[str] | None, gamma: float, limit: int, first: int) -> dict:
    """What sequential stopping reached: relative half-width per watched metric, and
    the replications each needed (its first stage, or Cochran's rule if more)."""
    intervals = _watched_intervals(outputs, metrics)
    achieved = {m: (math.inf if i is None else i.relative_half_width) for m, i in intervals.items()}
    minimum_n = {m: max(first_stage(m, first), 0 if i is None else cochran_minimum(i.skewness)) for m, i in intervals.items()}
    converged = all(precision_reached(i, gamma, first_stage(m, first)) for m, i in intervals.items())
    return {
        "target": gamma,
        "corrected_target": corrected_precision(gamma),
        "met": converged,
        "converged": converged,
        "first": first,
        "max_replications": limit,
        "achieved": achieved,
        "minimum_n": minimum_n,
    }


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
    warmup: WarmupChoice | None = None,
    on_replication: Callable[[int, int], None] | None = None,
) -> ReplicatedResult:
    """Replications of ``scenario``: exactly ``replications`` (default 10), or with
    ``precision`` until every watched metric reaches it (module doc). ``warmup``: a
    warm-up already chosen for these runs (``shared_warmup``) instead of choosing one
    when the scenario's is "auto". ``on_replication(done, planned)``: progress."""
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
        first = DEFAULT_FIRST_SEQUENTIAL if replications is None else replications
        check_count(first, "--replications", MIN_SEQUENTIAL)
        limit = DEFAULT_MAX_REPLICATIONS if max_replications is None else max_replications
        check_count(limit, "--max-replications", first)
        if precision_metrics is not None:
            precision_metrics = check_metrics(precision_metrics, "--precision-metric", indexed=False, numeric=True)

    started = time.perf_counter()
    round_size = worker_count(executor)
    auto = warmup is None and scenario.warmup == "auto"
    planned = limit + (first if auto else 0)
    finished = 0

    def advance(*_) -> None:
        nonlocal finished
        finished += 1
        if on_replication is not None:
            on_replication(finished, planned)

    outputs: list[ReplicationOutput] = []
    report = None
    try:
        if auto:
            warmup = shared_warmup([scenario], seed, first, executor, on_done=advance)
        while True:
            wanted = first if not outputs else min(limit, len(outputs) + round_size)
            tasks = {r: (scenario, seed, r, warmup) for r in range(len(outputs), wanted)}
            done = run_tasks(replication_output, tasks, executor, on_done=advance)
            unchecked = max(first, len(outputs) + 1)  # shorter prefixes were checked last round
            outputs += [done[r] for r in sorted(done)]
            if precision is None:
                break
            stop = sequential_stop(lambda n: _staged_intervals(outputs[:n], precision_metrics, first), unchecked, len(outputs), precision)
            if stop is None and len(outputs) >= limit:
                stop = limit
            if stop is not None:
                outputs = outputs[:stop]
                report = precision_report(outputs, precision_metrics, precision, limit, first)
                break
    except TasksInterrupted as exc:
        outputs += _in_order(outputs, exc.completed) if all(isinstance(v, ReplicationOutput) for v in exc.completed.values()) else []
        partial = _result(scenario, seed, outputs, report, True, started) if outputs else None
        raise ReplicationsInterrupted(partial) from None
    return _result(scenario, seed, outputs, report, False, started)


def _result(scenario, seed, outputs: Sequence[ReplicationOutput], report, interrupted: bool, started: float) -> ReplicatedResult:
    return ReplicatedResult(
        scenario,
        seed,
        [o.summary for o in outputs],
        report,
        interrupted,
        time.perf_counter() - started,
        latency_samples=[o.latency_ms for o in outputs],
        deployment_samples=[o.deployment_latency_ms for o in outputs] if outputs and outputs[0].deployment_latency_ms is not None else None,
        llm_samples=[o.llm for o in outputs] if outputs and all(o.llm is not None for o in outputs) else None,
    )


def _in_order(outputs: list, completed: dict) -> list:
    """The completed replications that continue ``outputs`` without a gap."""
    extra = []
    while len(outputs) + len(extra) in completed:
        extra.append(completed[len(outputs) + len(extra)])
    return extra


def check_count(value, field: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, f"expected a whole number >= {minimum}, got {value!r}")
