"""``LiveResult``: one live run, shaped like a simulated ``RunResult`` plus live-only fields.

It IS a ``RunResult`` (``to_dict()``, ``to_frame()``, ``timeseries()``, the
dashboard all work), on the generator's clock: ``sent`` is the *intended* send
time, so ``latency_ms`` is coordinated-omission corrected. Differences:

* ``latency_ms`` and ``latency_ms_window`` percentiles come from HdrHistogram
  (3 significant digits, ``simrouter.live.hdr``), not from exact sorting;
* ``requests`` and ``error_rates`` also hold the live transport kinds
  (``simrouter.live.classify``), so ``sent`` is still the sum of the kinds;
* ``breaker`` comes from the target's ``/metrics`` (transitions moved to the
  generator's clock) when the target provides one, else it reads "closed" with
  no transitions and ``live.breaker_source`` says ``"none"``;
* ``backend`` is the target's own figure when available (utilisation since the
  target started or was reset);
* ``live``: target, cut_short, corrected and uncorrected HDR latency (with the
  encoded histograms, mergeable), schedule (arrivals, dropped, late, lag),
  transport errors, fault injection, the target's own request counts and
  latency, notes, and ``latency_sample_s`` (successful requests, for
  ``simrouter calibrate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..metrics import backend_mask, breaker_recommendation
from ..outcomes import SUCCESS
from ..policies.breakers import BreakerState, Transition
from ..result import RunResult
from ..targets import evaluate_targets
from ..warmup import resolve_warmup
from . import hdr
from .classify import LIVE_KIND_NAMES, TRANSPORT_KINDS

SAMPLE_LIMIT = 20_000


@dataclass(eq=False)
class LiveResult(RunResult):
    """One live run (see the module docstring)."""

    actual: np.ndarray = field(default_factory=lambda: np.empty(0))  # actual send times
    target: str = ""
    cut_short: bool = False
    interrupted_by: str | None = None  # SIGINT / SIGTERM when a signal cut the run short
    arrivals: int = 0
    dropped: int = 0
    late: int = 0
    late_threshold_s: float = 0.0
    mean_lag_s: float = 0.0
    max_lag_s: float = 0.0
    fault_injection: dict = field(default_factory=dict)
    target_metrics: dict | None = None
    notes: list[str] = field(default_factory=list)

    def latencies(self, corrected: bool = True) -> np.ndarray:
        """Seconds from the intended (or, ``corrected=False``, actual) send to the answer,
        for measured requests admitted to the backend."""
        mask = self.latency_mask()
        start = self.sent if corrected else self.actual
        return self.done[mask] - start[mask]

    def latency_population(self) -> np.ndarray:
        """Requests admitted to the backend: on the real clock every answer takes
        time, so live latency keeps the backend-admitted kinds."""
        return backend_mask(self.kind)

    def to_frame(self) -> pd.DataFrame:
        """One row per request; also ``actual_s`` and the uncorrected latency."""
        names = np.array(LIVE_KIND_NAMES)
        return pd.DataFrame(
            {
                "sent_s": self.sent,
                "actual_s": self.actual,
                "done_s": self.done,
                "latency_ms": (self.done - self.sent) * 1000.0,
                "uncorrected_latency_ms": (self.done - self.actual) * 1000.0,
                "outcome": pd.Categorical(names[self.kind], categories=list(LIVE_KIND_NAMES)),
                "measured": self.measured,
            }
        )

    def latency_sample(self, limit: int = SAMPLE_LIMIT) -> np.ndarray:
        """Uncorrected latencies (s) of measured successes, at most ``limit``, chosen at random (seed 0)."""
        mask = self.measured & (self.kind == SUCCESS)
        values = (self.done - self.actual)[mask]
        if values.size > limit:
            values = np.random.default_rng(0).choice(values, limit, replace=False)
        return values

    @cached_property
    def summary(self) -> dict:
        summary = RunResult.summary.func(self)
        kind = self.kind[self.measured]
        sent = int(kind.size)
        counts = np.bincount(kind, minlength=len(LIVE_KIND_NAMES)) if sent else np.zeros(len(LIVE_KIND_NAMES), int)
        transport = {LIVE_KIND_NAMES[code]: int(counts[code]) for code in TRANSPORT_KINDS}
        summary["requests"].update(transport)
        summary["error_rates"].update({name: (n / sent if sent else 0.0) for name, n in transport.items()})

        corrected = hdr.histogram(self.latencies(corrected=True))
        uncorrected = hdr.histogram(self.latencies(corrected=False))
        summary["latency_ms"] = _like_simulation(hdr.stats(corrected))
        summary["latency_ms_window"] = _like_simulation(hdr.stats(hdr.histogram(self.window_latencies(self.scenario.metrics.window))))
        summary["breaker"]["avg_response_ms"] = summary["latency_ms"]["avg"]

        target = self.target_metrics
        if target and isinstance(target.get("backend"), dict):
            summary["backend"] = target["backend"]
        summary["breaker"]["recommendation"] = breaker_recommendation(summary, self.scenario)
        summary["targets"] = [t.to_dict() for t in evaluate_targets(summary, self.scenario.targets, bool(self.scenario.faults))]
        summary["live"] = self._live_section(corrected, uncorrected, transport)
        return summary

    def _live_section(self, corrected, uncorrected, transport: dict) -> dict:
        target = self.target_metrics
        sent = int(self.kind.size)
        return {
            "target": self.target,
            "cut_short": self.cut_short,
            "interrupted_by": self.interrupted_by,
            "latency_ms_corrected": hdr.stats(corrected),
            "latency_ms_uncorrected": hdr.stats(uncorrected),
            "hdr": {"unit": "us", "corrected": hdr.encode(corrected), "uncorrected": hdr.encode(uncorrected)},
            "schedule": {
                "arrivals": self.arrivals,
                "sent": sent,
                "dropped": self.dropped,
                "late": self.late,
                "late_threshold_ms": self.late_threshold_s * 1000.0,
                "mean_lag_ms": self.mean_lag_s * 1000.0,
                "max_lag_ms": self.max_lag_s * 1000.0,
            },
            "transport_errors": transport,
            "breaker_source": "target" if target else "none",
            "faults": self.fault_injection,
            "target_metrics": None if not target else {k: target.get(k) for k in ("requests", "latency_ms", "throughput", "service")},
            "notes": list(self.notes),
            "latency_sample_s": self.latency_sample().tolist(),
        }


def _like_simulation(stats: dict) -> dict:
    """HDR stats with the simulation's keys (P99.9 kept in ``live`` only)."""
    return {k: v for k, v in stats.items() if k != "p99_9"}


# What each transport kind means, for the notes of a run that had some.
TRANSPORT_MEANINGS = {
    "connect_errors": "could not connect (refused or unreachable)",
    "client_timeouts": "got no complete answer within the client timeout of {timeout:g} s (a hung or too slow target)",
    "protocol_errors": "had the connection reset or closed mid-answer, or got an answer that is not HTTP",
    "unexpected_status": "got an HTTP status no --map rule (nor the defaults) classifies",
}


def transport_notes(kind: np.ndarray, target: str, timeout: float) -> list[str]:
    """One note per transport kind that occurred, saying what it means."""
    count = len(kind)
    notes = []
    for name, meaning in TRANSPORT_MEANINGS.items():
        n = int(np.count_nonzero(kind == LIVE_KIND_NAMES.index(name)))
        if name == "connect_errors" and n and n == count:
            notes.append(f"the target {target} refused every connection: is it running?")
        elif n:
            notes.append(f"{n} of {count} requests {meaning.format(timeout=timeout)}")
    return notes


def build_live_result(generator, elapsed: float, target_metrics: dict | None, wall_start: float) -> LiveResult:
    """The ``LiveResult`` of a finished ``LoadGenerator`` run."""
    import time

    sent, actual, done, kind = generator.columns.arrays()
    scenario, warmup = resolve_warmup(generator.scenario, sent, done, kind)
    transitions: list[Transition] = []
    final_state = BreakerState.CLOSED
    if target_metrics:
        offset = target_metrics["clock_offset_s"]
        breaker = target_metrics["breaker"]
        for tr in breaker.get("transitions", []):
            t = tr["t"] + offset
            if t >= 0:
                transitions.append(Transition(t, BreakerState(tr["from"]), BreakerState(tr["to"])))
        final_state = BreakerState(breaker.get("state", "closed"))
    notes = list(generator.notes)
    count = len(kind)
    if generator.late:
        notes.append(
            f"generator fell behind: {generator.late} of {count} requests sent more than "
            f"{generator.options.late_threshold * 1000:g} ms after their intended time "
            f"(max {generator.max_lag * 1000:.1f} ms); corrected latency includes the lag"
        )
    if generator.dropped:
        notes.append(f"{generator.dropped} arrivals dropped: more than connections + max_backlog requests were pending")
    if generator.cut_short:
        notes.append("cut short (interrupted): figures cover the part that ran")
    notes += transport_notes(kind, generator.target, generator.options.timeout_for(generator.scenario))
    return LiveResult(
        scenario=scenario,
        warmup=warmup,
        seed=generator.options.seed,
        sent=sent,
        done=done,
        kind=kind,
        transitions=transitions,
        final_state=final_state,
        sim_time_s=float(max(elapsed, done.max() if count else 0.0)),
        full_load_end_s=min(generator.finished) if generator.finished else elapsed,
        backend_busy_s=0.0,
        wall_time_s=time.time() - wall_start,
        actual=actual,
        target=generator.target,
        cut_short=generator.cut_short,
        interrupted_by=generator.interrupted_by,
        arrivals=generator.arrivals,
        dropped=generator.dropped,
        late=generator.late,
        late_threshold_s=generator.options.late_threshold,
        mean_lag_s=generator.lag_sum / count if count else 0.0,
        max_lag_s=generator.max_lag,
        fault_injection=dict(generator.fault_injection),
        target_metrics=target_metrics,
        notes=notes,
    )
