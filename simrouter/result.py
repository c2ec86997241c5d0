"""The value a run returns: raw columns, the breaker's history, and its summary.

Requests are logical (one per workload send, whatever retries or hedges it
took); ``attempts`` in the summary and ``attempts`` in ``to_frame()`` count what
reached the limiter. Which requests each figure describes (docs/model.md, "Which
requests each figure describes"; docs/figures.md): "measured" requests are the
ones sent at or after warm-up; latency figures describe the measured requests
in ``metrics.latency_population`` (they spent time: a try reached the backend,
or retries waited), from first send to final answer; throughput and
``backend.utilization`` share one window (end of warm-up .. end of full load),
``backend.utilization_whole_run`` is [0, end of run]; counts and error rates
describe the measured requests. ``RunResult.to_dict()`` is the JSON that ``simrouter run --json`` writes (same
seed and config give the same dict, byte for byte once dumped: wall-clock time is
kept apart in ``wall_time_s``). ``to_frame()`` is one row per request,
``timeseries()`` one row per interval, both pandas DataFrames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from . import diagnosis, metrics
from .config import Scenario
from .outcomes import KIND_NAMES, SUCCESS
from .policies.breakers import BreakerState, Transition
from .targets import all_passed, evaluate_targets
from .warmup import WarmupChoice

if TYPE_CHECKING:  # pandas is imported where a DataFrame is built: a plain run does not load it
    import pandas as pd

    from .deployment_summary import DeploymentRun
    from .llm_summary import LLMColumns
    from .metrics import AttemptColumns


@dataclass(eq=False)
class RunResult:
    """One simulated run."""

    scenario: Scenario
    seed: int
    sent: np.ndarray  # seconds, per request
    done: np.ndarray  # seconds, when the router answered
    kind: np.ndarray  # outcome codes (simrouter.outcomes)
    transitions: list[Transition]
    final_state: BreakerState
    sim_time_s: float
    backend_busy_s: float  # slot-seconds of service up to sim_time_s (not work left over after the run)
    replication: int = 0
    warmup: WarmupChoice | None = None  # how the warm-up was chosen (None: fixed, scenario.warmup)
    # Per logical request, from the policy path (None on the fast path: one attempt each).
    retries: np.ndarray | None = None
    hedges: np.ndarray | None = None
    budget_denied: np.ndarray | None = None  # a retry was refused by the retry budget
    full_load_end_s: float | None = None  # when the first user finished / arrivals stopped
    # (start, end) of every backend service, seconds (sim.backend.ServiceLog); None
    # when the backend keeps no log (live): window utilisation is then the whole run's.
    services: tuple[np.ndarray, np.ndarray] | None = None
    llm: LLMColumns | None = None  # backend.model = "llm": per-request tokens and TTFT, per-step batch (llm_summary)
    # Behind a gateway ([[deployments]]; None otherwise): per logical request the fallback
    # attempts and the deployment of the final answer (-1: none), every attempt in answer
    # order (metrics.AttemptColumns), and each deployment's breaker and backend (deployment_summary).
    fallbacks: np.ndarray | None = None
    deployment: np.ndarray | None = None
    attempt_log: AttemptColumns | None = None
    deployment_runs: list[DeploymentRun] | None = None
    wall_time_s: float = field(default=0.0, compare=False)

    # -- views of the raw data

    @cached_property
    def measured(self) -> np.ndarray:
        """Mask of requests sent after warm-up."""
        return self.sent >= self.scenario.warmup

    def latencies(self) -> np.ndarray:
        """Seconds from first send to final answer, for the measured requests in
        the latency population (``metrics.latency_population``)."""
        return _masked_difference(self.done, self.sent, self.latency_mask())

    def latency_population(self) -> np.ndarray:
        """Mask of the requests that spent time (``metrics.latency_population``), warm-up included."""
        return metrics.latency_population(self.sent, self.done, self.kind)

    def latency_mask(self) -> np.ndarray:
        """Measured requests in the latency population: what every latency figure describes."""
        return self.measured & self.latency_population()

    def _measured_only(self, column: np.ndarray) -> np.ndarray:
        """``column`` for the measured requests: itself (no copy) without warm-up."""
        return column if self.scenario.warmup <= 0 else column[self.measured]

    def window_latencies(self, size: int) -> np.ndarray:
        """Latencies (seconds) of the last ``size`` requests of ``latency_mask`` to
        be answered, in answer order (the rolling ``latency_ms_window``)."""
        mask = self.latency_mask()
        done = self.done
        if np.all(done[1:] >= done[:-1]):  # recorded in answer order, as both engines do
            index = _last_true(mask, size)
        else:
            index = np.flatnonzero(mask)
            index = index[np.argsort(done[index], kind="stable")][-size:]
        return done[index] - self.sent[index]

    def to_frame(self) -> pd.DataFrame:
        """One row per request: sent_s, done_s, latency_ms, outcome, measured,
        in_latency (in ``metrics.latency_population``; the latency figures take the
        rows that are both measured and in_latency), attempts; on the LLM backend
        also ttft_ms, prompt_tokens, output_tokens."""
        import pandas as pd

        names = np.array(KIND_NAMES)
        llm = {} if self.llm is None else {  # backend.model = "llm": per-request tokens and TTFT (NaN unless it succeeded)
            "ttft_ms": (self.llm.first_token - self.sent) * 1000.0, "prompt_tokens": self.llm.prompt_tokens, "output_tokens": self.llm.output_tokens}
        return pd.DataFrame(
            {
                "sent_s": self.sent,
                "done_s": self.done,
                "latency_ms": (self.done - self.sent) * 1000.0,
                "outcome": pd.Categorical(names[self.kind], categories=list(KIND_NAMES)),
                "measured": self.measured,
                "in_latency": self.latency_population(),
                "attempts": 1 + self._per_request(self.retries) + self._per_request(self.hedges) + self._per_request(self.fallbacks),
                **llm,
                **({} if self.deployment is None else {"deployment": self._deployment_names()}),
            }
        )

    def _deployment_names(self):
        """The final answer's deployment per request, by name ("" when none took it)."""
        import pandas as pd

        names = [run.name for run in self.deployment_runs]
        codes = np.where(self.deployment >= 0, self.deployment, len(names))
        return pd.Categorical.from_codes(codes, categories=[*names, ""])

    def _per_request(self, column: np.ndarray | None) -> np.ndarray:
        return np.zeros(self.sent.size, dtype=np.int64) if column is None else column

    def attempt_counts(self) -> dict:
        """Attempts behind the measured logical requests: first tries, retries, hedges."""
        measured = self.measured
        sent = int(measured.sum())
        retries = 0 if self.retries is None else int(self.retries[measured].sum())
        hedges = 0 if self.hedges is None else int(self.hedges[measured].sum())
        denied = 0 if self.budget_denied is None else int(self.budget_denied[measured].sum())
        total = sent + retries + hedges
        counts = {"total": total, "retries": retries, "hedges": hedges, "per_request": total / sent if sent else 0.0, "retries_denied_by_budget": denied}
        if self.fallbacks is not None:  # behind a gateway: fallback attempts are attempts too
            fallbacks = int(self.fallbacks[measured].sum())
            counts.update(total=total + fallbacks, fallbacks=fallbacks, per_request=(total + fallbacks) / sent if sent else 0.0)
        return counts

    def timeseries(self, interval: float | None = None) -> pd.DataFrame:
        """Per interval of answer time, every request (warm-up included): counts by
        outcome, rps (answers of any kind), latency percentiles of the requests in
        the latency population, and the breaker state at the interval's end."""
        interval = interval or self.scenario.metrics.interval
        frame = self.to_frame()
        frame["t_s"] = np.floor(frame["done_s"] / interval) * interval
        counts = frame.pivot_table(index="t_s", columns="outcome", values="sent_s", aggfunc="count", observed=False).fillna(0)
        counts = counts.reindex(columns=list(KIND_NAMES), fill_value=0).astype(int)
        admitted = frame[self.latency_population()]
        quantiles = admitted.groupby("t_s")["latency_ms"].quantile([0.5, 0.95, 0.99]).unstack()
        # No request in the latency population leaves no quantile column to name.
        quantiles = quantiles.reindex(columns=[0.5, 0.95, 0.99])
        quantiles.columns = ["p50_ms", "p95_ms", "p99_ms"]
        series = counts.join(quantiles, how="left")
        series["rps"] = counts.sum(axis=1) / interval
        series["breaker_state"] = [self.breaker_state_at(t + interval) for t in series.index]
        return series.reset_index()

    def breaker_state_at(self, t: float) -> str:
        state = BreakerState.CLOSED
        for tr in self.transitions:
            if tr.t > t:
                break
            state = tr.to_state
        return state.value

    # -- the summary

    @cached_property
    def summary(self) -> dict:
        s = self.scenario
        kind = self._measured_only(self.kind)
        counts = metrics.kind_counts(kind)
        sent = int(kind.size)
        latency = self.latencies()
        successes = int((kind == SUCCESS).sum())
        window = self.window_latencies(s.metrics.window)
        recoveries = metrics.recoveries(self.transitions, s.faults, self.sim_time_s)
        recovery_values = [r.seconds for r in recoveries]
        # The worst recovery; None if there was none, or if one never re-closed.
        recovery_s = max(recovery_values) if recoveries and None not in recovery_values else None
        latency_ms = metrics.latency_stats(latency, overwrite=True)
        summary = {
            "scenario": s.name,
            "seed": self.seed,
            "replication": self.replication,
            "sim_time_s": self.sim_time_s,
            "warmup": (self.warmup or WarmupChoice(float(s.warmup), "fixed")).to_dict(),
            "requests": {"sent": sent, **counts},
            "attempts": self.attempt_counts(),
            "latency_ms": latency_ms,
            "latency_ms_window": metrics.latency_stats(window),
            "throughput": metrics.throughput(self.sent, self.done, self.kind == SUCCESS, s.warmup, self.full_load_end_s),
            "error_rate": (sent - successes) / sent if sent else 0.0,
            "error_rates": {name: (counts[name] / sent if sent else 0.0) for name in KIND_NAMES[1:]},
            "breaker": {
                "preset": s.breaker.preset,
                "state": self.final_state.value,
                "healthy": self.final_state is BreakerState.CLOSED,
                "failure_rate": metrics.failure_rate(kind),
                "avg_response_ms": latency_ms["avg"],
                "trips": sum(1 for tr in self.transitions if tr.to_state is BreakerState.OPEN),
                "transitions": [tr.to_dict() for tr in self.transitions],
                "recovery_s": recovery_s,
                "recovered": None if not recoveries else recovery_s is not None,
                "recoveries": [r.to_dict() for r in recoveries],
            },
            "backend": self._backend_summary(),
        }
        if self.deployment_runs is not None:
            from .deployment_summary import deployment_summaries, deployment_trip_causes, fallback_counts, overall_breaker

            summary["deployments"] = deployment_summaries(self)
            summary["fallbacks"] = fallback_counts(self)
            summary["breaker"].update(overall_breaker(summary["deployments"], self.final_state))
            trips = deployment_trip_causes(self)  # each deployment's breaker, on its own attempts
        else:
            trips = diagnosis.trip_causes(self.sent, self.done, self.kind, self.transitions, s.breaker)
        summary["diagnosis"] = diagnosis.diagnose(summary, s, trips)  # deployment-aware behind a gateway
        summary["breaker"]["recommendation"] = metrics.breaker_recommendation(summary, s)
        has_faults = bool(s.faults) or any(d.faults for d in s.deployments)
        targets = evaluate_targets(summary, s.targets, has_faults)
        if self.llm is not None:
            from .llm_summary import llm_summary, llm_targets

            summary.update(llm_summary(self))
            targets += llm_targets(summary, s.targets)
        summary["targets"] = [t.to_dict() for t in targets]
        return summary

    def _backend_summary(self) -> dict:
        """Capacity; utilisation over the throughput window and over the whole run."""
        if self.deployment_runs is not None:  # behind a gateway: every deployment's slots
            capacity = sum(run.capacity for run in self.deployment_runs)
        else:
            capacity = self.scenario.backend.capacity if not self.scenario.backend.is_llm else self.scenario.backend.max_num_seqs  # LLM: sequence slots
        whole_run = self.backend_busy_s / (capacity * self.sim_time_s) if self.sim_time_s else 0.0
        t0, t1 = metrics.throughput_window(self.done, self.scenario.warmup, self.full_load_end_s)
        if self.services is None:  # no service log (live): the whole run's figure
            window = whole_run
        else:
            window = metrics.busy_slot_seconds(*self.services, t0, t1) / (capacity * (t1 - t0)) if t1 > t0 else 0.0
        return {"capacity": capacity, "utilization": window, "utilization_whole_run": whole_run}

    def to_dict(self) -> dict:
        """The JSON-ready summary, with the scenario it ran (infinities as "inf")."""
        return strict_json({**self.summary, "config": self.scenario.to_dict()})

    @property
    def passed(self) -> bool:
        """True unless a checked target failed."""
        return all_passed(self.summary["targets"])


def _masked_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``a[mask] - b[mask]``, computed in chunks: no full-size temporaries."""
    out = np.empty(np.count_nonzero(mask))
    filled = 0
    for start in range(0, mask.size, chunk):
        part = mask[start : start + chunk]
        difference = a[start : start + chunk][part]
        difference -= b[start : start + chunk][part]
        out[filled : filled + difference.size] = difference
        filled += difference.size
    return out


def _last_true(mask: np.ndarray, count: int) -> np.ndarray:
    """Indices of the last ``count`` True entries of ``mask``, ascending, found
    from the end without an index array of the whole run."""
    step = max(2 * count, 4096)
    start = mask.size
    while start > 0:
        start = max(0, start - step)
        if np.count_nonzero(mask[start:]) >= count:
            break
        step *= 2
    return (start + np.flatnonzero(mask[start:]))[-count:] if count > 0 else np.zeros(0, dtype=np.intp)


def strict_json(value):
    """``value`` with non-finite floats as strings, so any JSON parser reads it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value
