"""Fault decisions: given a fault window and one uniform draw, what happens to a request.

Clock-free, like the policies: the caller finds the window active at its own
time (``active_window(windows, now)``; a window covers ``start <= now < end``)
and draws ``u`` uniform on [0, 1) from its own ``numpy.random.Generator``, one
draw per request that arrives inside a window. ``decide(window, u)`` splits
[0, 1) into exclusive shares, in this order:

====================  =========================  ====================================
share                 ``FaultDecision.kind``     what the request gets
====================  =========================  ====================================
``error_rate``        ``"error"``                ``status`` (500, 429, 503) with an
                                                 OpenAI-shaped body (``error_body``);
                                                 never reaches the backend
``hang_rate``         ``"hang"``                 accepted, never answered
``reset_rate``        ``"reset"``                forwarded; the connection is closed
                                                 mid-answer (after half the body or
                                                 the first chunk)
``cut_stream_rate``   ``"cut_stream"``           forwarded; an SSE stream ends cleanly
                                                 after ``CUT_AFTER_EVENTS`` events,
                                                 without ``[DONE]`` (other answers:
                                                 passed through)
the rest              ``"none"``                 forwarded
====================  =========================  ====================================

Latency applies to every forwarded request of the window (and ``added_latency``
to injected errors too): the answer's first byte waits ``(latency_factor - 1) x``
the backend's time to its first byte, plus ``added_latency`` seconds; each later
chunk of a streamed answer waits ``per_chunk_latency`` seconds more. A request
outside every window is ``NO_FAULT``. The simulated backend's own reading of a
window (``simrouter.sim.backend``: ``u < error_rate`` fails, service x
``latency_factor``) is the first row and the latency factor of this table.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass

CUT_AFTER_EVENTS = 2  # SSE events forwarded before a cut stream ends
KINDS = ("none", "error", "hang", "reset", "cut_stream")
# OpenAI's error ``type`` and ``code`` for each injectable status.
ERROR_SHAPES = {
    500: ("server_error", "internal_error", "The server had an error while processing your request (injected by simrouter proxy)."),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached (injected by simrouter proxy)."),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet (injected by simrouter proxy)."),
}


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: ``kind`` (``KINDS``), the injected ``status``
    (errors only), and the latency to add (see the module docstring)."""

    kind: str = "none"
    status: int | None = None
    latency_factor: float = 1.0
    added_latency: float = 0.0
    per_chunk_latency: float = 0.0
    window: int | None = None  # index of the deciding window in the list given to ``decision``

    @property
    def delays(self) -> bool:
        return self.latency_factor != 1.0 or self.added_latency > 0 or self.per_chunk_latency > 0

    @property
    def forwarded(self) -> bool:
        """True when the request goes on to the backend."""
        return self.kind in ("none", "reset", "cut_stream")

    def first_byte_delay(self, upstream_s: float) -> float:
        """Seconds to wait before the first byte, given the backend took ``upstream_s`` to it."""
        return max(0.0, (self.latency_factor - 1.0) * upstream_s) + self.added_latency


NO_FAULT = FaultDecision()


def decide(window, u: float, index: int | None = None) -> FaultDecision:
    """The decision for a request inside ``window`` (a ``FaultWindow``) with draw ``u`` in [0, 1)."""
    delay = {"latency_factor": window.latency_factor, "added_latency": window.added_latency, "per_chunk_latency": window.per_chunk_latency, "window": index}
    edge = window.error_rate
    if u < edge:
        return FaultDecision("error", int(window.status), 1.0, window.added_latency, 0.0, index)
    for kind, share in (("hang", window.hang_rate), ("reset", window.reset_rate), ("cut_stream", window.cut_stream_rate)):
        edge += share
        if u < edge:
            return FaultDecision(kind, **delay)
    return FaultDecision("none", **delay)


class Timeline:
    """Fault windows on one clock (non-overlapping, as a scenario's), found by time."""

    def __init__(self, windows=()):
        self.windows = sorted(windows, key=lambda w: w.start)
        self._starts = [w.start for w in self.windows]

    def active(self, now: float) -> tuple[int, object] | None:
        """(index, window) of the window covering ``now``, or None."""
        i = bisect.bisect_right(self._starts, now) - 1
        if i >= 0 and now < self.windows[i].end:
            return i, self.windows[i]
        return None

    def decision(self, now: float, draw) -> FaultDecision:
        """The decision for a request at ``now``; ``draw()`` gives a uniform, called only inside a window."""
        found = self.active(now)
        if found is None:
            return NO_FAULT
        index, window = found
        return decide(window, draw(), index)


def active_window(windows, now: float):
    """The window of ``windows`` covering ``now`` (``start <= now < end``), or None."""
    found = Timeline(windows).active(now)
    return None if found is None else found[1]


def error_body(status: int) -> bytes:
    """The OpenAI-shaped JSON error body ``{"error": {"message", "type", "code"}}`` for an injected ``status``."""
    kind, code, message = ERROR_SHAPES.get(status, ERROR_SHAPES[500])
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


def retry_after(window_end: float, now: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) of an injected 429: until the window ends."""
    return str(max(1, math.ceil(window_end - now)))


# Fault fields that only the proxy applies (the simulated backend and ``serve`` apply
# ``error_rate`` and ``latency_factor``), with the value that means "not used".
PROXY_ONLY_FIELDS = {"status": 500, "added_latency": 0.0, "per_chunk_latency": 0.0, "hang_rate": 0.0, "reset_rate": 0.0, "cut_stream_rate": 0.0}


def proxy_only_fields(faults) -> list[str]:
    """Dotted names (``faults.1.hang_rate``) of the proxy-only fields ``faults`` set."""
    return [f"faults.{i}.{name}" for i, window in enumerate(faults) for name, unused in PROXY_ONLY_FIELDS.items() if getattr(window, name) != unused]

