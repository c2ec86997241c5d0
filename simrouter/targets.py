"""Pass/fail targets, k6-threshold style: the seed's five by default.

Each target reads one figure of a summary and compares it strictly:
``latency_ms.p95 < p95_ms``, ``latency_ms.p99 < p99_ms``, ``throughput.goodput_rps > min_rps``,
``error_rate < max_error_rate``, ``breaker.recovery_s < max_recovery_s``.
The throughput target judges goodput, successful answers per second in the
throughput window: rejections and failures answered fast are not throughput
(a dead backend behind a breaker answers 503s at thousands per second).
A target is *not checked* (``passed`` is None) when its threshold disables it
(a max of ``inf``, a min of 0), when the figure does not exist (no latency
sample), or, for recovery, when the scenario has no fault window or the breaker
never tripped. A breaker that tripped and never re-closed fails recovery
(unless ``max_recovery_s = inf`` turns the target off). Behind a gateway
(``deployments`` in the summary) the same recovery target is also judged on
every deployment whose own breaker opened (``recovery:NAME``, metric
``deployments.N.breaker.recovery_s``): one that never recovered fails it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TargetResult:
    name: str
    metric: str
    comparison: str  # "<" or ">"
    threshold: float
    value: float | None
    passed: bool | None
    unit: str

    def to_dict(self) -> dict:
        threshold = self.threshold if math.isfinite(self.threshold) else None
        return {
            "name": self.name,
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": threshold,
            "value": self.value,
            "passed": self.passed,
            "unit": self.unit,
        }


def _compare(value, threshold, comparison) -> bool | None:
    if value is None:
        return None
    if comparison == "<":
        return None if math.isinf(threshold) else value < threshold
    return None if threshold == 0 else value > threshold


def evaluate_targets(summary: dict, targets, has_faults: bool) -> list[TargetResult]:
    """Compare a summary dict with a ``Targets`` config."""
    latency = summary["latency_ms"]
    breaker = summary["breaker"]
    rows = [
        ("p95_latency", "latency_ms.p95", "<", targets.p95_ms, latency["p95"], "ms"),
        ("p99_latency", "latency_ms.p99", "<", targets.p99_ms, latency["p99"], "ms"),
        ("throughput", "throughput.goodput_rps", ">", targets.min_rps, summary["throughput"]["goodput_rps"], "req/s"),
        ("error_rate", "error_rate", "<", targets.max_error_rate, summary["error_rate"], "fraction"),
    ]
    results = [TargetResult(n, m, c, t, v, _compare(v, t, c), u) for n, m, c, t, v, u in rows]
    recovery = breaker["recovery_s"]
    if not has_faults or not breaker["recoveries"]:
        passed = None
    else:  # a breaker that never came back took forever: fails any finite max
        passed = _compare(math.inf if recovery is None else recovery, targets.max_recovery_s, "<")
    results.append(TargetResult("breaker_recovery", "breaker.recovery_s", "<", targets.max_recovery_s, recovery, passed, "s"))
    for index, deployment in enumerate(summary.get("deployments") or ()):  # behind a gateway: each deployment's own breaker
        own = deployment["breaker"]
        if not has_faults or not own["recoveries"]:
            continue  # its breaker never opened around a fault: nothing to judge
        value = own["recovery_s"]
        passed = _compare(math.inf if value is None else value, targets.max_recovery_s, "<")
        results.append(TargetResult(f"recovery:{deployment['name']}", f"deployments.{index}.breaker.recovery_s", "<", targets.max_recovery_s, value, passed, "s"))
    return results


def all_passed(results: list[dict]) -> bool:
    """True unless some checked target failed."""
    return all(r["passed"] is not False for r in results)
