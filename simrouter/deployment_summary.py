"""Per-deployment figures of a run behind a gateway (``[[deployments]]``).

Which attempts each figure describes (docs/gateway.md):

* ``share``: attempts routed to the deployment over all routed attempts (an
  attempt no deployment could take is not routed), among the attempts SENT in
  the measured window (at or after warm-up); fallbacks, retries and hedges are
  attempts too;
* ``requests``: those attempts by kind (``sent`` = routed to it; the kinds as
  ``requests.*``: ``rate_limited`` by its own limiter, ``breaker_rejected`` by
  its breaker, ``queue_full`` when its backend refused);
* ``latency_ms``: the attempts its backend answered (success, failure,
  timeout), from the attempt's send to its answer, same fields as the run's
  ``latency_ms``;
* ``breaker``: its own breaker (preset, final state, trips, transitions, and
  recovery after each fault window it sees: the top-level ones and its own, as
  ``metrics.recoveries``);
* ``utilisation`` (alias ``utilization``): busy slot-seconds of its backend in
  the run's throughput window over its capacity x the window, from its own
  ``ServiceLog``; ``utilization_whole_run`` over [0, end of run].

The run's own ``breaker`` section, with deployments, is never better than the
worst deployment: ``preset = "per-deployment"``, the worst final state (open,
then half-open, then closed), trips summed, ``recovery_s`` the worst
deployment's (None when one never recovered), ``recovered`` false when any
deployment that opened did not re-close.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .outcomes import SUCCESS
from .policies.breakers import BreakerState, Transition

SEVERITY = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(eq=False)
class DeploymentRun:
    """What one deployment did in a run: its breaker's history and its backend's services."""

    name: str
    preset: str
    capacity: int
    transitions: list[Transition]
    final_state: BreakerState
    busy_s: float  # slot-seconds of service up to the end of the run
    services: tuple[np.ndarray, np.ndarray] | None = None  # (start, end) of every service
    faults: list = field(default_factory=list)  # the fault windows it saw

    @staticmethod
    def worst_state(runs: list["DeploymentRun"]) -> BreakerState:
        return max((run.final_state for run in runs), key=SEVERITY.__getitem__, default=BreakerState.CLOSED)


def deployment_summaries(result) -> list[dict]:
    """``deployments: [...]`` of a ``RunResult`` behind a gateway (module docstring)."""
    s = result.scenario
    attempts = result.attempt_log
    measured = attempts.sent >= s.warmup
    routed = measured & (attempts.deployment >= 0)
    total_routed = int(np.count_nonzero(routed))
    t0, t1 = metrics.throughput_window(result.done, s.warmup, result.full_load_end_s)
    out = []
    for index, run in enumerate(result.deployment_runs):
        mine = routed & (attempts.deployment == index)
        kinds = attempts.kind[mine]
        answered = mine & metrics.backend_mask(attempts.kind)
        latency = attempts.done[answered] - attempts.sent[answered]
        recoveries = metrics.recoveries(run.transitions, run.faults, result.sim_time_s)
        values = [r.seconds for r in recoveries]
        recovery_s = max(values) if recoveries and None not in values else None
        if run.services is not None and t1 > t0:
            window = metrics.busy_slot_seconds(*run.services, t0, t1) / (run.capacity * (t1 - t0))
        else:
            window = run.busy_s / (run.capacity * result.sim_time_s) if result.sim_time_s else 0.0
        whole = run.busy_s / (run.capacity * result.sim_time_s) if result.sim_time_s else 0.0
        out.append(
            {
                "name": run.name,
                "share": int(kinds.size) / total_routed if total_routed else 0.0,
                "requests": {"sent": int(kinds.size), **metrics.kind_counts(kinds)},
                "latency_ms": metrics.latency_stats(latency, overwrite=True),
                "breaker": {
                    "preset": run.preset,
                    "state": run.final_state.value,
                    "trips": sum(1 for tr in run.transitions if tr.to_state is BreakerState.OPEN),
                    "transitions": [tr.to_dict() for tr in run.transitions],
                    "recovery_s": recovery_s,
                    "recovered": None if not recoveries else recovery_s is not None,
                    "recoveries": [r.to_dict() for r in recoveries],
                },
                "capacity": run.capacity,
                "utilisation": window,
                "utilization": window,
                "utilization_whole_run": whole,
            }
        )
    return out


def overall_breaker(deployments: list[dict], final_state: BreakerState) -> dict:
    """The run's ``breaker`` figures from its deployments' (never better than the worst)."""
    breakers = [d["breaker"] for d in deployments]
    opened = [b for b in breakers if b["recovered"] is not None]
    never = any(b["recovered"] is False for b in opened)
    recovery = None if never or not opened else max(b["recovery_s"] for b in opened)
    return {
        "preset": "per-deployment",
        "state": final_state.value,
        "healthy": final_state is BreakerState.CLOSED,
        "trips": sum(b["trips"] for b in breakers),
        "transitions": [],  # each deployment's are in deployments[i].breaker.transitions
        "recovery_s": recovery,
        "recovered": None if not opened else not never,
        "recoveries": [{**r, "deployment": d["name"]} for d in deployments for r in d["breaker"]["recoveries"]],
    }


def fallback_counts(result) -> dict:
    """``fallbacks: {total, per_request, succeeded_after_fallback}`` over the measured requests."""
    measured = result.measured
    fallbacks = result.fallbacks[measured]
    sent = int(measured.sum())
    total = int(fallbacks.sum())
    rescued = int(np.count_nonzero((fallbacks > 0) & (result.kind[measured] == SUCCESS)))
    return {"total": total, "per_request": total / sent if sent else 0.0, "succeeded_after_fallback": rescued}


def deployment_trip_causes(result) -> list[dict]:
    """``diagnosis.trip_causes`` of every deployment's own breaker, on its own
    attempts (the attempt log: sent, answered, kind), each trip tagged with
    ``deployment`` (its name), in time order."""
    from .diagnosis import trip_causes

    attempts, s = result.attempt_log, result.scenario
    found = []
    for index, (run, config) in enumerate(zip(result.deployment_runs, s.deployments)):
        mine = attempts.deployment == index
        trips = trip_causes(attempts.sent[mine], attempts.done[mine], attempts.kind[mine], run.transitions, config.breaker_of(s.breaker))
        found += [{**trip, "deployment": run.name} for trip in trips]
    return sorted(found, key=lambda trip: trip["t"])


__all__ = ["DeploymentRun", "deployment_summaries", "deployment_trip_causes", "fallback_counts", "overall_breaker"]


def deployment_latencies(result) -> list[np.ndarray]:
    """Each deployment's ``latency_ms`` sample (milliseconds): the measured attempts its backend answered."""
    attempts = result.attempt_log
    answered = (attempts.sent >= result.scenario.warmup) & metrics.backend_mask(attempts.kind)
    return [(attempts.done[mask] - attempts.sent[mask]) * 1000.0 for mask in (answered & (attempts.deployment == i) for i in range(len(result.deployment_runs)))]


def mean_deployments(summaries: list[dict], samples: list[list[np.ndarray]] | None, mean_tree, pooled_quantiles) -> list[dict]:
    """``deployments`` of a replicated summary: each figure the mean across
    replications (``mean_tree``: ``replications``' rule, shares included), the
    latency percentiles of the deployment's samples of every replication pooled
    (``pooled_quantiles``, as the run's ``latency_ms``), ``breaker.recovery_s``
    None when any replication's breaker of that deployment never re-closed."""
    merged = []
    for index, first in enumerate(summaries[0]["deployments"]):
        own = [s["deployments"][index] for s in summaries]
        entry = mean_tree(own)
        entry["name"] = first["name"]
        if samples is not None:
            for key, value in pooled_quantiles([per_run[index] for per_run in samples]).items():
                entry["latency_ms"][key.split(".", 1)[1]] = value
        breakers = [d["breaker"] for d in own]
        if any(b["recovered"] is False for b in breakers):
            entry["breaker"]["recovery_s"] = None
        tripped = [b for b in breakers if b["recovered"] is not None]
        entry["breaker"]["recoveries"] = [{"recovery_s": entry["breaker"]["recovery_s"], "replications": len(tripped)}] if tripped else []
        merged.append(entry)
    return merged
