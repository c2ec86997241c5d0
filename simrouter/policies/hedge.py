"""Hedged requests (Dean and Barroso, "The Tail at Scale", CACM 2013).

While a try is unanswered, a copy is sent ``delay`` seconds after it started,
and again every ``delay`` seconds, up to ``max_hedges`` copies (gRPC's
``hedgingDelay`` spacing). The first success answers the logical request; the
other copies are cancelled (``cancel_loser``: removed from the backend queue,
or their service cut short) or left to run to completion. Every copy is real
load: it passes the limiter and the breaker like any request.

The delay is fixed, or (``percentile > 0``) that percentile of the latency of
the last ``window`` tries the backend answered (from a try's first copy to its
answer; the router feeds ``observe`` only with tries answered SUCCESS, FAILURE
or TIMEOUT by a copy that reached the backend: a try the limiter or the breaker
rejected in 0 s says nothing about backend latency, and after an outage such
tries would drag the estimate to 0 and hedge every try at once),
re-estimated every ``REFRESH`` answers (never per request); until ``REFRESH``
answers are in, the fixed delay is used. A try outlasts the delay exactly when
its first copy does, so this estimate settles on the first copy's own
percentile, hedges or not; the latencies of single copies would not (cancelled
losers, the slow ones, are never answered). Nothing here reads a clock.
"""

from __future__ import annotations

import numpy as np


class HedgePolicy:
    """``[router.hedge]``: how many copies, after how long, what happens to losers."""

    __slots__ = ("max_hedges", "cancel_loser", "percentile", "_delay", "_samples", "_count")

    REFRESH = 64

    def __init__(self, config):
        self.max_hedges = config.max_hedges
        self.cancel_loser = config.cancel_loser
        self.percentile = config.percentile
        self._delay = config.delay
        self._samples = np.zeros(config.window) if config.percentile else None
        self._count = 0

    @property
    def enabled(self) -> bool:
        return self.max_hedges > 0

    def delay(self) -> float:
        """Seconds after a try starts (and between copies) before the next copy."""
        return self._delay

    @property
    def current_delay(self) -> float:
        """The delay in force now (the latest estimate with ``percentile``)."""
        return self._delay

    @property
    def observed(self) -> int:
        """How many answered tries ``observe`` has seen (every ``REFRESH``-th re-estimates)."""
        return self._count

    def observe(self, latency: float) -> None:
        """The backend answered a try after ``latency`` seconds (feeds the percentile delay)."""
        samples = self._samples
        if samples is None:
            return
        samples[self._count % samples.size] = latency
        self._count += 1
        if self._count % self.REFRESH == 0:
            filled = samples[: min(self._count, samples.size)]
            self._delay = float(np.percentile(filled, self.percentile))
