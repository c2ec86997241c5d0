"""Comparing two configurations under common random numbers: paired-t intervals.

``compare_configs(a, b, seed, replications)`` runs replications ``0 .. R-1`` of
both configurations with the same seed. Replication ``r`` of A and of B draw the
same arrivals, think times, service times and failure coin flips (one stream per
source, ``simrouter.sim.streams``), so their difference isolates the change of
configuration from the luck of the draw. For each metric the differences
``d_r = B_r - A_r`` are i.i.d. across replications and get a Student-t interval
(``simrouter.stats.paired_t_interval``); a difference is *significant* when its
interval excludes 0. Replications where either side lacks the figure (no
recovery, no latency sample) are left out of that metric's pairs, and ``n``
says how many remained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .replications import ReplicatedResult, check_metrics, replicate
from .stats import DEFAULT_LEVEL, paired_t_interval

DEFAULT_METRICS = (
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "latency_ms.avg",
    "throughput.rps",
    "error_rate",
    "breaker.trips",
    "breaker.recovery_s",
    "backend.utilization",
)
DEFAULT_REPLICATIONS = 20

__all__ = ["Comparison", "compare_configs"]


@dataclass(eq=False)
class Comparison:
    """Paired differences B - A, metric by metric."""

    a: ReplicatedResult
    b: ReplicatedResult
    metrics: Sequence[str]
    level: float = DEFAULT_LEVEL

    def rows(self) -> list[dict]:
        rows = []
        for metric in self.metrics:
            a, b = self.a.values(metric), self.b.values(metric)
            paired = ~(np.isnan(a) | np.isnan(b))
            a, b = a[paired], b[paired]
            interval = paired_t_interval(a, b, self.level)
            mean_a = float(a.mean()) if a.size else None
            mean_b = float(b.mean()) if b.size else None
            difference = None if mean_a is None else mean_b - mean_a
            rows.append(
                {
                    "metric": metric,
                    "a": mean_a,
                    "b": mean_b,
                    "difference": difference,
                    "low": interval.low if interval else None,
                    "high": interval.high if interval else None,
                    "relative": difference / mean_a if mean_a else None,
                    "significant": None if interval is None else not interval.covers(0.0),
                    "n": int(a.size),
                }
            )
        return rows

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: means of A and B, B - A with its interval, relative change."""
        return pd.DataFrame(self.rows()).astype({"a": float, "b": float, "difference": float, "low": float, "high": float, "relative": float})

    def to_dict(self) -> dict:
        from .result import strict_json

        return strict_json(
            {
                "seed": self.a.seed,
                "replications": self.a.replications,
                "level": self.level,
                "a": {"scenario": self.a.scenario.name, "config": self.a.scenario.to_dict()},
                "b": {"scenario": self.b.scenario.name, "config": self.b.scenario.to_dict()},
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
    first = replicate(a, seed=seed, overrides=overrides_a, replications=replications, executor=executor)
    second = replicate(b, seed=seed, overrides=overrides_b, replications=replications, executor=executor)
    return Comparison(first, second, metrics, level)
