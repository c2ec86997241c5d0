"""Running aggregates of the reference service's answers: a scrape costs O(1) in requests.

``RunningRecorder`` takes the same ``add(sent, done, kind)`` calls as
``simrouter.metrics.Recorder`` but keeps no per-request column. Per answer it
updates, in constant time:

* a count per outcome kind, and of successes;
* for requests admitted to the backend (``outcomes.BACKEND_KINDS``, the
  simulation's latency population): an HdrHistogram of the latency
  (``simrouter.live.hdr``'s configuration: whole microseconds, 3 significant
  digits), the exact sum, minimum and maximum, and a count per Prometheus
  bucket (``LATENCY_BUCKETS``, upper bounds inclusive);
* a ring buffer of the last ``window`` such latencies, exact (the rolling
  ``latency_ms_window``: its size is the scenario's ``metrics.window``, not the
  number of requests);
* the first and last send time and the last answer time.

Answers to requests sent before ``start`` (sent before a reset, answered after
it) are not measured, as the simulation does not measure warm-up requests;
``answered`` counts every ``add``.

Figures (``latency_stats``): P50/P90/P95/P99 are HdrHistogram's (nearest rank,
the bucket's highest equivalent value: within 0.1 % of the exact order
statistic); max, min and avg are exact. ``window_stats`` is exact, with numpy's
linear interpolation, as the simulation's window. Reading the histogram's
percentiles walks its buckets once (~23,000, whatever the number of requests).
"""

from __future__ import annotations

import math
from bisect import bisect_left

import numpy as np

from ..metrics import PERCENTILES, latency_stats
from ..outcomes import BACKEND_KINDS, KIND_NAMES, SUCCESS
from . import hdr

# Upper bounds (seconds) of the Prometheus latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RunningRecorder:
    """Counts, an HdrHistogram and a bounded window of the answers since ``start``."""

    def __init__(self, window: int, start: float = 0.0):
        if window < 1:
            raise ValueError(f"window: expected at least 1, got {window}")
        self.start = start
        self.answered = 0  # every add, measured or not
        self._counts = [0] * len(KIND_NAMES)
        self._latency_kind = [code in BACKEND_KINDS for code in range(len(KIND_NAMES))]
        self._hist = hdr.new_histogram()
        self._latency_count = 0
        self._latency_sum = 0.0
        self._latency_min = math.inf
        self._latency_max = -math.inf
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: over the largest bound
        self._ring = np.empty(window)
        self._ring_next = 0  # where the next latency goes; the ring is full once _latency_count >= window
        self.first_sent: float | None = None
        self.last_sent: float | None = None
        self.last_done: float | None = None

    def add(self, sent: float, done: float, kind: int) -> None:
        self.answered += 1
        if sent < self.start:
            return
        self._counts[kind] += 1
        if self.first_sent is None or sent < self.first_sent:
            self.first_sent = sent
        if self.last_sent is None or sent > self.last_sent:
            self.last_sent = sent
        if self.last_done is None or done > self.last_done:
            self.last_done = done
        # On the real clock every answer takes some time, so "done > sent" cannot pick the
        # requests that spent time: the service counts those that reached its backend.
        if not self._latency_kind[kind]:
            return
        latency = done - sent
        self._latency_count += 1
        self._latency_sum += latency
        if latency < self._latency_min:
            self._latency_min = latency
        if latency > self._latency_max:
            self._latency_max = latency
        micros = min(max(round(latency * 1e6), hdr.LOWEST_US), hdr.HIGHEST_US)
        self._hist.record_value(micros)
        self._buckets[bisect_left(LATENCY_BUCKETS, latency)] += 1
        ring = self._ring
        ring[self._ring_next] = latency
        self._ring_next = (self._ring_next + 1) % ring.size

    # -- figures

    def kind_counts(self) -> dict[str, int]:
        """Measured answers by kind name (``requests.*``)."""
        return dict(zip(KIND_NAMES, self._counts))

    @property
    def sent(self) -> int:
        return sum(self._counts)

    @property
    def successes(self) -> int:
        return self._counts[SUCCESS]

    @property
    def latency_count(self) -> int:
        return self._latency_count

    @property
    def latency_sum_s(self) -> float:
        return self._latency_sum

    def latency_stats(self) -> dict:
        """``latency_ms``: HDR percentiles, exact max/min/avg (ms), count; None when empty."""
        count = self._latency_count
        if count == 0:
            return {**{f"p{p}": None for p in PERCENTILES}, "max": None, "min": None, "avg": None, "count": 0}
        values = self._hist.get_percentile_to_value_dict(list(PERCENTILES))  # one pass, stops at the largest
        figures = {f"p{p}": values[p] * 1e-3 for p in PERCENTILES}
        figures.update(max=self._latency_max * 1e3, min=self._latency_min * 1e3, avg=self._latency_sum / count * 1e3, count=count)
        return figures

    def window_latencies(self) -> np.ndarray:
        """The last ``window`` latencies (s), oldest first (a copy, at most ``window`` values)."""
        ring = self._ring
        if self._latency_count < ring.size:
            return ring[: self._latency_count].copy()
        return np.concatenate((ring[self._ring_next :], ring[: self._ring_next]))

    def window_stats(self) -> dict:
        """``latency_ms_window``: exact statistics of the last ``window`` latencies."""
        return latency_stats(self.window_latencies(), overwrite=True)

    def throughput(self) -> dict:
        """Rates from ``start`` to the last answer (the service has no "end of full
        load": every answer counts), with the keys of ``metrics.throughput``: every
        measured request was offered and answered in that span, so ``offered_rps``
        equals ``rps``; ``goodput_rps`` counts successes."""
        count = self.sent
        window = (self.last_done - self.start) if self.last_done is not None else 0.0
        rps = count / window if window > 0 else 0.0
        goodput = self.successes / window if window > 0 else 0.0
        return {
            "offered_rps": rps,
            "rps": rps,
            "rpm": rps * 60.0,
            "goodput_rps": goodput,
            "success_rps": goodput,
            "overall_rps": rps,
            "window_s": max(window, 0.0),
        }

    def failure_rate(self) -> float:
        """Failures and timeouts over requests admitted to the backend (``metrics.failure_rate``)."""
        admitted = self._latency_count
        return (admitted - self._counts[SUCCESS]) / admitted if admitted else 0.0

    def cumulative_buckets(self) -> list[tuple[float, int]]:
        """(upper bound s, latencies <= it) for each of ``LATENCY_BUCKETS``, then (inf, all)."""
        total, rows = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), self._buckets):
            total += count
            rows.append((bound, total))
        return rows
