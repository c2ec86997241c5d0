"""What every limiter offers, and the base class of those that only admit or reject.

A per-key limit (one bucket, one window, one counter) has three methods, all
taking the current time and never reading a clock:

``try_acquire(now) -> bool``
    admit (True) or reject (False) a request at ``now``. This is the whole
    interface for limiters that decide at once (the common case, and the hot path).
``acquire(now) -> float | None``
    the same decision for engines that honour delays: ``None`` rejects, a number
    is how many seconds to hold the request before forwarding it (``0.0``: at
    once). Only ``delays = True`` limiters (nginx's leaky bucket without
    ``nodelay``) ever return a positive delay.
``release(now)``
    an admitted request has been answered. Only ``holds = True`` limiters (the
    concurrency cap) care; for the others it does nothing.

An engine may therefore call ``try_acquire`` alone when neither ``delays`` nor
``holds`` is set, and must use ``acquire``/``release`` otherwise.
"""

from __future__ import annotations


class RateLimit:
    """Base of the limits that decide at once and hold nothing (subclasses
    define ``try_acquire``)."""

    __slots__ = ()

    delays = False
    holds = False

    def try_acquire(self, now: float) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def acquire(self, now: float) -> float | None:
        return 0.0 if self.try_acquire(now) else None

    def release(self, now: float) -> None:
        pass
