"""Scopes: one limit per key (``per_user``) or one for everyone (``global``).

A scoped limiter takes the key with the time: ``try_acquire(key, now)``,
``acquire(key, now)``, ``release(key, now)`` (see ``protocol``), and carries
its limit's ``delays`` and ``holds`` flags so an engine can pick its path once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from .protocol import RateLimit


class KeyedLimiter:
    """One limit per key, created on first use by ``factory(now)``."""

    __slots__ = ("_factory", "_limits", "delays", "holds")

    def __init__(self, factory: Callable[[float], RateLimit]):
        self._factory = factory
        self._limits: dict[Hashable, RateLimit] = {}
        sample = factory(0.0)
        self.delays = sample.delays
        self.holds = sample.holds

    def _limit(self, key: Hashable, now: float) -> RateLimit:
        limit = self._limits.get(key)
        if limit is None:
            limit = self._limits[key] = self._factory(now)
        return limit

    def try_acquire(self, key: Hashable, now: float) -> bool:
        limit = self._limits.get(key)
        if limit is None:
            limit = self._limits[key] = self._factory(now)
        return limit.try_acquire(now)

    def acquire(self, key: Hashable, now: float) -> float | None:
        return self._limit(key, now).acquire(now)

    def release(self, key: Hashable, now: float) -> None:
        self._limits[key].release(now)


class GlobalLimiter:
    """One limit shared by every key."""

    __slots__ = ("limit", "delays", "holds")

    def __init__(self, limit: RateLimit):
        self.limit = limit
        self.delays = limit.delays
        self.holds = limit.holds

    def try_acquire(self, key: Hashable, now: float) -> bool:
        return self.limit.try_acquire(now)

    def acquire(self, key: Hashable, now: float) -> float | None:
        return self.limit.acquire(now)

    def release(self, key: Hashable, now: float) -> None:
        self.limit.release(now)


class NoLimiter:
    """Admits everything (``algorithm = "none"``)."""

    __slots__ = ()

    delays = False
    holds = False

    def try_acquire(self, key: Hashable, now: float) -> bool:
        return True

    def acquire(self, key: Hashable, now: float) -> float | None:
        return 0.0

    def release(self, key: Hashable, now: float) -> None:
        pass
