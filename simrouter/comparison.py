"""Comparing two configurations under common random numbers: paired-t intervals.

``compare_configs(a, b, seed, replications)`` runs replications ``0 .. R-1`` of
both configurations with the same seed. Replication ``r`` of A and of B draw the
same arrivals, think times, service times and failure coin flips (one stream per
source, ``simrouter.sim.streams``), so their difference isolates the change of
configuration from the luck of the draw. For each metric the differences
``d_r = B_r - A_r`` are i.i.d. across replications and get a Student-t interval
(``simrouter.stats.paired_t_interval``); a difference is *significant* when its
interval excludes 0. Replications where either side lacks the figure (no
latency sample, a breaker that never tripped) are left out of that metric's
pairs, and ``n`` says how many remained.

**Latency percentiles** compare the distributions: A's and B's columns are the
percentiles of each side's pooled samples (as in their replicated summaries),
the difference is pooled B minus pooled A, and its interval is sectioning on
the per-replication differences (``stats.paired_quantile_interval``). The LLM
backend's percentiles (``ttft_ms``, ``tpot_ms``, ``itl_ms``: ``replications.
LLM_QUANTILE_FIGURES``) likewise: each side's figure is the percentile of its
replications' samples pooled (``replications.pooled_llm_quantiles``, as
``run --replications`` reports it), the difference pooled B minus pooled A;
TTFT and TPOT get sectioning on the per-replication differences, ITL (weighted
gaps, inverted CDF) the t-interval of the replications' own ITL percentile
differences centred on the pooled difference (as ``replications.figure_interval``
does for one side).

**Never recovering is a result, not missing data.** For ``breaker.recovery_s``
a run whose breaker tripped and never re-closed is *censored* at the end of
the run: its recovery is at least ``run end - fault end``, and that is the
value paired (``censored_recovery_s``). Each row reports the fraction of runs
never recovered on each side (``never_a``, ``never_b``). When only B has
censored runs the difference is a **lower bound** (``bound = "lower"``: the
true difference is at least it; ``high`` is None and the difference is
significant when ``low > 0``); only A: an **upper bound**; both: no bound holds
and the difference is refused (None, with a ``reason``).

With ``warmup = "auto"`` on either side, the auto sides share one warm-up,
chosen on the series of both sides' replications averaged
(``replications.shared_warmup``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import load_scenario
from .replications import LLM_QUANTILE_FIGURES, QUANTILE_FIGURES, ReplicatedResult, check_metrics, pooled_llm_quantiles, replicate, shared_warmup
from .stats import DEFAULT_LEVEL, Interval, paired_quantile_interval, paired_t_interval

if TYPE_CHECKING:  # pandas is imported where the table is built
    import pandas as pd

DEFAULT_METRICS = (
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "latency_ms.avg",
    "throughput.goodput_rps",
    "throughput.rps",
    "error_rate",
    "breaker.trips",
    "breaker.recovery_s",
    "backend.utilization",
)
DEFAULT_REPLICATIONS = 20
# Figures a never-recovered run has no value for, but a censored one: at least the time left.
CENSORED_METRICS = ("breaker.recovery_s",)

__all__ = ["Comparison", "compare_configs"]


@dataclass(eq=False)
class Comparison:
    """Paired differences B - A, metric by metric."""

    a: ReplicatedResult
    b: ReplicatedResult
    metrics: Sequence[str]
    level: float = DEFAULT_LEVEL

    def rows(self) -> list[dict]:
        return [self._row(metric) for metric in self.metrics]

    def _row(self, metric: str) -> dict:
        censored = metric in CENSORED_METRICS
        if censored:
            (a, a_cut), (b, b_cut) = _censored_values(self.a), _censored_values(self.b)
        else:
            a, b = self.a.values(metric), self.b.values(metric)
            a_cut = b_cut = np.zeros(a.size, dtype=bool)
        paired = ~(np.isnan(a) | np.isnan(b))
        a, b, a_cut, b_cut = a[paired], b[paired], a_cut[paired], b_cut[paired]
        mean_a = float(a.mean()) if a.size else None
        mean_b = float(b.mean()) if b.size else None
        if metric in QUANTILE_FIGURES and self.a.latency_samples is not None and self.b.latency_samples is not None:
            q = QUANTILE_FIGURES[metric]
            samples_a = [s for s, keep in zip(self.a.latency_samples, paired) if keep]
            samples_b = [s for s, keep in zip(self.b.latency_samples, paired) if keep]
            interval = paired_quantile_interval(samples_a, samples_b, q, self.level)
            if a.size:
                mean_a, mean_b = float(np.quantile(np.concatenate(samples_a), q)), float(np.quantile(np.concatenate(samples_b), q))
        elif metric in LLM_QUANTILE_FIGURES and self.a.llm_samples and self.b.llm_samples:
            llm_a = [s for s, keep in zip(self.a.llm_samples, paired) if keep]
            llm_b = [s for s, keep in zip(self.b.llm_samples, paired) if keep]
            (mean_a, mean_b), interval = llm_quantile_difference(metric, llm_a, llm_b, a, b, self.level)
        else:
            interval = paired_t_interval(a, b, self.level)
        difference = None if mean_a is None or mean_b is None else mean_b - mean_a
        low, high = (interval.low, interval.high) if interval else (None, None)
        significant = None if interval is None else not interval.covers(0.0)
        bound = reason = None
        if a_cut.any() and b_cut.any():
            reason = f"runs that never recovered on both sides (A {int(a_cut.sum())}, B {int(b_cut.sum())} of {a.size}): censored both ways, the difference has no bound"
            difference = low = high = significant = None
        elif b_cut.any():  # B's true values are larger: B - A is at least this
            bound, high = "lower", None
            significant = None if low is None else low > 0.0
        elif a_cut.any():
            bound, low = "upper", None
            significant = None if high is None else high < 0.0
        return {
            "metric": metric,
            "a": mean_a,
            "b": mean_b,
            "difference": difference,
            "low": low,
            "high": high,
            "relative": difference / mean_a if difference is not None and mean_a else None,
            "significant": significant,
            "n": int(a.size),
            "bound": bound,
            "never_a": _never_fraction(self.a) if censored else None,
            "never_b": _never_fraction(self.b) if censored else None,
            "reason": reason,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: means of A and B, B - A with its interval, relative change."""
        import pandas as pd

        return pd.DataFrame(self.rows()).astype({"a": float, "b": float, "difference": float, "low": float, "high": float, "relative": float, "never_a": float, "never_b": float})

    def to_dict(self) -> dict:
        from .result import strict_json

        return strict_json(
            {
                "seed": self.a.seed,
                "replications": self.a.replications,
                "level": self.level,
                "a": {"scenario": self.a.scenario.name, "config": self.a.scenario.to_dict()},
                "b": {"scenario": self.b.scenario.name, "config": self.b.scenario.to_dict()},
                "never_recovered": {"a": self.a.summary["breaker"]["never_recovered"], "b": self.b.summary["breaker"]["never_recovered"]},
                "warmup": {"a": self.a.summary["warmup"], "b": self.b.summary["warmup"]},
                "differences": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in self.rows()],
            }
        )


def compare_configs(
    a,
    b,
    *,
    seed: int = 1,
    replications: int = DEFAULT_REPLICATIONS,
    overrides_a=(),
    overrides_b=(),
    metrics: Sequence[str] | None = None,
    level: float = DEFAULT_LEVEL,
    executor=None,
) -> Comparison:
    """Paired comparison of configurations ``a`` and ``b`` (Scenario, built-in name or TOML path)."""
    metrics = list(DEFAULT_METRICS) if metrics is None else check_metrics(metrics, "--metric", indexed=False, numeric=True)
    a, b = load_scenario(a, overrides_a), load_scenario(b, overrides_b)
    autos = [s for s in (a, b) if s.warmup == "auto"]
    warmup = shared_warmup(autos, seed, replications, executor) if autos else None
    first = replicate(a, seed=seed, replications=replications, executor=executor, warmup=warmup if a.warmup == "auto" else None)
    second = replicate(b, seed=seed, replications=replications, executor=executor, warmup=warmup if b.warmup == "auto" else None)
    return Comparison(first, second, metrics, level)


def llm_quantile_difference(metric: str, llm_a: Sequence[dict], llm_b: Sequence[dict], values_a: np.ndarray, values_b: np.ndarray, level: float = DEFAULT_LEVEL):
    """((pooled A, pooled B), interval of B - A) of an LLM percentile (module docstring) over
    paired replications: ``llm_a[r]`` / ``llm_b[r]`` replication r's ``llm_summary.llm_samples``,
    ``values_a`` / ``values_b`` its own figure (the ITL sections). (None, None) without samples."""
    name, q = LLM_QUANTILE_FIGURES[metric]
    pooled_a, pooled_b = pooled_llm_quantiles(llm_a)[metric] if llm_a else None, pooled_llm_quantiles(llm_b)[metric] if llm_b else None
    if pooled_a is None or pooled_b is None:
        return (pooled_a, pooled_b), None
    if name != "itl":
        return (pooled_a, pooled_b), paired_quantile_interval([d[name] for d in llm_a], [d[name] for d in llm_b], q, level)
    sections = paired_t_interval(values_a, values_b, level)
    if sections is None:
        return (pooled_a, pooled_b), None
    point, half = pooled_b - pooled_a, sections.half_width
    return (pooled_a, pooled_b), Interval(point, point - half, point + half, sections.n, level, sections.skewness)


def censored_recovery_s(summary: dict) -> tuple[float, bool] | None:
    """(recovery seconds, censored) of one run: its worst recovery, a never-closed one
    counted as ``run end - fault end`` (censored = True); None if the breaker never tripped."""
    recoveries = summary["breaker"]["recoveries"]
    if not recoveries:
        return None
    values = [(r["recovery_s"], False) if r["recovery_s"] is not None else (max(0.0, summary["sim_time_s"] - r["fault_end"]), True) for r in recoveries]
    return max(value for value, _ in values), any(cut for _, cut in values)


def _censored_values(result: ReplicatedResult) -> tuple[np.ndarray, np.ndarray]:
    """Per replication: censored recovery (NaN: never tripped) and whether it is censored."""
    found = [censored_recovery_s(s) for s in result.summaries]
    values = np.array([math.nan if f is None else f[0] for f in found], dtype=float)
    return values, np.array([f is not None and f[1] for f in found], dtype=bool)


def _never_fraction(result: ReplicatedResult) -> float:
    return result.summary["breaker"]["never_recovered"]["fraction"]
