"""Recording requests and turning them into the seed's metrics.

``Recorder`` keeps three compact columns per request (sent time, answer time,
outcome code) in ``array.array`` buffers: no Python object per request.

The summary functions read those columns. Which requests each figure describes
(docs/model.md, "Which requests each figure describes"; docs/figures.md):

* latency (``latency_population``): every logical request that spent time, from
  its first send to its final answer: any try reached the backend (its final
  kind is success, failure or timeout) or it was answered later than it was
  sent (retries waited, a limiter delayed it). A request whose last try was
  rejected after earlier tries were served is in it. Percentiles (P50/P90/P95/P99,
  max, min, average, count) are exact over the measured run (numpy's linear
  interpolation) and over a rolling window of the last ``window`` answers;
* throughput (``throughput``) over one window, from the end of warm-up until
  the workload stopped offering its full load (the first closed-loop user
  finished, or open arrivals stopped): ``offered_rps`` sends in the window,
  ``rps`` answers in the window (all outcomes), ``goodput_rps`` successful
  answers in the window, whatever the request's send time (an answer to a
  request sent during warm-up counts: the backend did that work inside the
  window). ``overall_rps`` counts every answer from the end of warm-up to the
  last; ``throughput_window`` gives the window, which utilisation shares;
* utilisation (``busy_slot_seconds``): slot-seconds of service inside a window,
  exact, from each service's start and end;
* error counts and rates by kind; ``error_rate`` is every non-success over sent;
* recovery: for each fault window that tripped the breaker, the time from the
  window's end until the breaker last closed before the next fault (or the end
  of the run), provided it was closed then; ``None`` if it never re-closed.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

from .outcomes import FAILURE, KIND_NAMES, SUCCESS, TIMEOUT
from .policies.breakers import BreakerState, Transition

PERCENTILES = (50, 90, 95, 99)


class Recorder:
    """Append-only columns: when each request was sent, answered, and how."""

    __slots__ = ("sent", "done", "kind")

    def __init__(self) -> None:
        self.sent = array("d")
        self.done = array("d")
        self.kind = array("b")

    def add(self, sent: float, done: float, kind: int) -> None:
        self.sent.append(sent)
        self.done.append(done)
        self.kind.append(kind)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the columns; recording may go on (the live service's scrapes)."""
        return tuple(column.copy() for column in self.final_columns())

    def final_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The columns as numpy views of the buffers, without copying (17 bytes per
        request, not 34): for a finished run. While a view lives, ``add`` raises
        ``BufferError``."""
        return (
            np.frombuffer(self.sent, dtype=np.float64),
            np.frombuffer(self.done, dtype=np.float64),
            np.frombuffer(self.kind, dtype=np.int8),
        )


class AttemptRecorder:
    """Behind a gateway (``[[deployments]]``), every attempt in the order the router
    answered it: the deployment it went to (``policies.gateway.NO_DEPLOYMENT``
    when none could take it), when it was sent and answered, and its kind.
    Logical requests stay in ``Recorder``; this is what each deployment saw.

    One interleaved ``array("d")`` of (deployment, sent, done, kind) rows, so the
    hot loop logs an attempt with one call (``log((d, sent, done, kind))``)."""

    __slots__ = ("rows", "log")

    def __init__(self) -> None:
        self.rows = array("d")
        self.log = self.rows.extend  # log((deployment, sent, done, kind))

    def add(self, deployment: int, sent: float, done: float, kind: int) -> None:
        self.log((deployment, sent, done, kind))

    def add_columns(self, deployment: np.ndarray, sent: np.ndarray, done: np.ndarray, kind: np.ndarray) -> None:
        """Many attempts at once, in answer order (columns of one length): the fast
        engine keeps a compact log in its hot loop and hands it over at the end."""
        rows = np.empty((len(sent), 4), dtype=np.float64)
        rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] = deployment, sent, done, kind
        self.rows.frombytes(rows.tobytes())

    def columns(self) -> "AttemptColumns":
        rows = np.frombuffer(self.rows, dtype=np.float64).reshape(-1, 4)
        return AttemptColumns(
            deployment=rows[:, 0].astype(np.int64),
            sent=rows[:, 1].copy(),
            done=rows[:, 2].copy(),
            kind=rows[:, 3].astype(np.int8),
        )


@dataclass(frozen=True, eq=False)
class AttemptColumns:
    """Per attempt, in answer order (``AttemptRecorder``)."""

    deployment: np.ndarray
    sent: np.ndarray
    done: np.ndarray
    kind: np.ndarray


def latency_stats(latency_s: np.ndarray, overwrite: bool = False) -> dict:
    """Percentiles, extremes, mean and count, in milliseconds (None when empty).
    ``overwrite``: ``latency_s`` may be scaled and reordered in place (no copy)."""
    if latency_s.size == 0:
        return {**{f"p{p}": None for p in PERCENTILES}, "max": None, "min": None, "avg": None, "count": 0}
    ms = np.multiply(latency_s, 1000.0, out=latency_s if overwrite else None)
    extremes = {"max": float(ms.max()), "min": float(ms.min()), "avg": float(ms.mean()), "count": int(ms.size)}
    values = np.percentile(ms, PERCENTILES, overwrite_input=True)  # partitions ms in place: no second copy
    return {**{f"p{p}": float(v) for p, v in zip(PERCENTILES, values)}, **extremes}


def throughput_window(done: np.ndarray, start: float, full_load_end: float | None) -> tuple[float, float]:
    """(start, end) of the throughput window: from ``start`` (the end of warm-up)
    to ``full_load_end``, or to the last answer when full load never ended after
    ``start``. ``done``: every answer time of the run."""
    last = float(done.max()) if done.size else start
    end = full_load_end if full_load_end is not None and full_load_end > start else last
    return start, max(end, start)


def throughput(sent: np.ndarray, done: np.ndarray, success: np.ndarray, start: float, full_load_end: float | None) -> dict:
    """Rates over ``throughput_window``: sends (``offered_rps``), answers of any
    kind (``rps``, ``rpm``) and successful answers (``goodput_rps``, alias
    ``success_rps``) inside it, whatever each request's send time; ``overall_rps``
    is every answer from ``start`` to the last answer. Columns: every request of
    the run (warm-up included), ``success`` a mask of successes."""
    t0, t1 = throughput_window(done, start, full_load_end)
    window = t1 - t0
    answered = (done >= t0) & (done <= t1)
    rate = (lambda count: float(count) / window) if window > 0 else (lambda count: 0.0)
    rps = rate(np.count_nonzero(answered))
    goodput = rate(np.count_nonzero(answered & success))
    last = float(done.max()) if done.size else start
    overall = last - start
    return {
        "offered_rps": rate(np.count_nonzero((sent >= t0) & (sent <= t1))),
        "rps": rps,
        "rpm": rps * 60.0,
        "goodput_rps": goodput,
        "success_rps": goodput,
        "overall_rps": float(np.count_nonzero(done >= start)) / overall if overall > 0 else 0.0,
        "window_s": window,
    }


def busy_slot_seconds(start: np.ndarray, end: np.ndarray, t0: float, t1: float, chunk: int = 1 << 16) -> float:
    """Slot-seconds of service inside [t0, t1]: the sum over services of the
    length of [start, end] intersected with [t0, t1] (exact; in chunks, so no
    full-size temporaries)."""
    total = 0.0
    for first in range(0, start.size, chunk):
        overlap = np.minimum(end[first : first + chunk], t1)
        overlap -= np.maximum(start[first : first + chunk], t0)
        total += float(overlap[overlap > 0].sum())
    return total


def kind_counts(kind: np.ndarray) -> dict[str, int]:
    counts = np.bincount(kind, minlength=len(KIND_NAMES))
    return {name: int(counts[code]) for code, name in enumerate(KIND_NAMES)}


def backend_mask(kind: np.ndarray) -> np.ndarray:
    """Requests whose final try was admitted to the backend (one byte per request:
    ``np.isin`` would widen the codes to int64 first)."""
    return (kind == SUCCESS) | (kind == TIMEOUT) | (kind == FAILURE)


def latency_population(sent: np.ndarray, done: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Mask of the logical requests that spent time, the population of every
    latency figure: a try reached the backend (``kind`` is success, timeout or
    failure) or the answer came later than the first send (retries waited, a
    limiter delayed it). Left out: requests answered at once by the router
    (rate limited, validation, breaker, queue full on their only try)."""
    return backend_mask(kind) | (done > sent)


@dataclass(frozen=True)
class Recovery:
    """How the breaker came back after one fault window that tripped it."""

    fault_index: int
    fault_end: float
    closed_at: float | None  # None: not closed again before the next fault / run end

    @property
    def seconds(self) -> float | None:
        return None if self.closed_at is None else max(0.0, self.closed_at - self.fault_end)

    def to_dict(self) -> dict:
        return {"fault": self.fault_index, "fault_end": self.fault_end, "closed_at": self.closed_at, "recovery_s": self.seconds}


def recoveries(transitions: list[Transition], faults, run_end: float) -> list[Recovery]:
    """One ``Recovery`` per fault window during which (or after which, before the
    next window) the breaker opened, or that found it not closed (tripped just
    before the window, it stays open through it: its recovery counts too).

    The breaker has recovered when the last transition before the next window (or
    the run's end) is to CLOSED: a breaker that closed and tripped again counts
    from its last close, never its first. A close before the fault's end counts
    (0 s) only if it held to the horizon; a fault that outlasts the run has no
    recovery (None), even if the breaker came back by itself inside it (LiteLLM's
    cooldowns end on a timer, with no probe)."""
    order = sorted(range(len(faults)), key=lambda i: faults[i].start)
    found = []
    for position, index in enumerate(order):
        fault = faults[index]
        horizon = faults[order[position + 1]].start if position + 1 < len(order) else math.inf
        horizon = min(horizon, run_end + 1e-9)
        inside = [tr for tr in transitions if fault.start <= tr.t < horizon]
        before = [tr for tr in transitions if tr.t < fault.start]
        open_at_start = bool(before) and before[-1].to_state is not BreakerState.CLOSED
        if not open_at_start and not any(tr.to_state is BreakerState.OPEN for tr in inside):
            continue
        last = inside[-1] if inside else None
        closed_at = last.t if last is not None and last.to_state is BreakerState.CLOSED else None
        if fault.end > run_end:  # the fault outlasted the run: a breaker that came back by itself inside it has not recovered
            closed_at = None
        found.append(Recovery(index, fault.end, closed_at))
    return found


# The diagnosis codes that decide the advice by themselves, most fundamental first.
DIAGNOSIS_ADVICE = {
    "unreachable": "{message}.",
    "overloaded": "{message}; or shed load earlier (limiter).",
    "latency_floor_above_target": "{message}.",
    "backend_failing": "{message}; investigate the backend before tuning the breaker.",
}


def breaker_recommendation(summary: dict, scenario) -> str:
    """One line of advice from the summary, most urgent first; it follows the
    summary's ``diagnosis`` (``simrouter.diagnosis``) when that names a cause."""
    for item in summary.get("diagnosis") or ():
        advice = DIAGNOSIS_ADVICE.get(item["code"])
        if advice:
            return advice.format(message=item["message"][0].upper() + item["message"][1:])
    breaker, targets = summary["breaker"], scenario.targets
    requests = summary["requests"]
    sent = max(requests["sent"], 1)
    if breaker["state"] != BreakerState.CLOSED.value:
        return "Breaker not closed at the end of the run: the backend is still failing or probes have not completed."
    if breaker["recovered"] is False:
        return "Breaker tripped and did not stay closed after the fault: check the half-open probe settings."
    if breaker["recovery_s"] is not None and breaker["recovery_s"] >= targets.max_recovery_s:
        return f"Recovery {breaker['recovery_s']:.1f} s exceeds {targets.max_recovery_s:g} s: shorten the breaker's open wait or allow more half-open probes."
    if breaker["failure_rate"] >= 0.05:
        return f"Backend failure rate {breaker['failure_rate']:.1%}: investigate the backend before adding traffic."
    p95 = summary["latency_ms"]["p95"]
    if p95 is not None and p95 >= targets.p95_ms:
        return f"P95 {p95:.0f} ms over {targets.p95_ms:g} ms: add backend capacity or shed load earlier."
    if requests["rate_limited"] / sent > 0.01:
        return f"Rate limiter rejects {requests['rate_limited'] / sent:.1%} of requests: raise limiter.rate/burst if this traffic is legitimate."
    if requests["queue_full"]:
        return "Backend queue overflowed: add capacity or lower the router timeout."
    return "Healthy: no action needed."


def failure_rate(kind: np.ndarray) -> float:
    """Failures and timeouts over requests admitted to the backend."""
    failed = int(np.count_nonzero(kind == FAILURE)) + int(np.count_nonzero(kind == TIMEOUT))
    admitted = failed + int(np.count_nonzero(kind == SUCCESS))
    if admitted == 0:
        return 0.0
    return float(failed) / admitted
