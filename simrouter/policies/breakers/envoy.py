"""The ``envoy`` preset: Envoy's outlier detection (consecutive 5xx), clock-free.

Sources: ``source/common/upstream/outlier_detection_impl.cc`` (putHttpResponseCode,
onConsecutiveErrorWorker, ejectHost, checkHostForUneject, onIntervalTimer) and
``api/envoy/config/cluster/v3/outlier_detection.proto``; docs
https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier.

Each breaker is one host (deployment) of a cluster (the gateway); the hosts
share an ``EjectionPool``, which counts the ejections in force. Sweeps run every
``interval`` from t = 0 (the detector's interval timer)::

    counting   a failure (5xx; a timeout is a 504) adds one to the host's
               consecutive count, a success resets it. Reaching exactly
               consecutive_5xx is a detection; it is ignored while the host is
               ejected (and the count is then not reset).
    detection  the host is ejected if 100 * (ejected + 1) / hosts <=
               max_ejection_percent, or, with always_eject_one_host, if none is
               ejected; then only with probability enforcing_consecutive_5xx %.
               Whether ejected or not, the consecutive count restarts from 0.
    ejection   OPEN: every call is rejected. The multiplier (ejectTimeBackoff)
               grows by one (while multiplier x base_ejection_time <
               max_ejection_time + base_ejection_time) and the host returns at the
               first sweep at least min(base_ejection_time x multiplier,
               max_ejection_time) after the ejection: CLOSED directly (no
               half-open), logged at that sweep's time, the count reset.
    healthy    at every sweep at least one interval after its return, a host that
               is not ejected has its multiplier decreased by one (down to 0).

"At least one host regardless": the proto still says max_ejection_percent
"will eject at least one host regardless of the value", but Envoy dropped that
in 2023 (PR 27909: the percentage is the true limit) and brought it back as the
opt-in ``always_eject_one_host`` (PR 34796, default false). So, as Envoy today,
the default 10 % ejects nobody in a pool of fewer than 10 hosts.

Epochs are not honoured, as in Envoy: the response of a call admitted before
an ejection still counts. ``count_timeouts = false`` ignores timeouts (neither
counted nor resetting). A cancelled call (``release``) reports nothing. Not
modelled: success-rate and failure-percentage detection, consecutive gateway
failures and local-origin splitting, ejection jitter, active health checks, and
the load balancer's panic threshold (which routes to ejected hosts once too few
are healthy: here routing always leaves them out).
"""

from __future__ import annotations

import math

import numpy as np

from .core import BreakerBase, BreakerState

CLOSED, OPEN = BreakerState.CLOSED, BreakerState.OPEN


class EjectionPool:
    """The ``hosts`` deployments of one gateway, as Envoy's detector counts them:
    which members are ejected, and until when (``breakers.build_breaker(...,
    pool=)``; pass the same pool to every deployment's breaker)."""

    __slots__ = ("hosts", "_members", "_returns_at")

    def __init__(self, hosts: int):
        if hosts < 1:
            raise ValueError(f"an ejection pool needs at least one host, got {hosts}")
        self.hosts = hosts
        self._members = 0
        self._returns_at: dict[int, float] = {}

    def join(self) -> int:
        """A new member's number (one per envoy breaker)."""
        if self._members >= self.hosts:
            raise ValueError(f"this pool has {self.hosts} hosts: no room for another envoy breaker")
        self._members += 1
        return self._members - 1

    def ejected(self, now: float) -> int:
        """How many members are ejected at ``now`` (one returning at ``now`` is back)."""
        return sum(1 for returns_at in self._returns_at.values() if returns_at > now)

    def admits_ejection(self, now: float, max_ejection_percent: float, always_eject_one_host: bool) -> bool:
        """Envoy's ejectHost check: one more ejection keeps the ejected share within
        max_ejection_percent (or none is ejected and always_eject_one_host is set)."""
        active = self.ejected(now)
        return 100.0 * (active + 1) / self.hosts <= max_ejection_percent or (always_eject_one_host and active == 0)

    def eject(self, member: int, returns_at: float) -> None:
        self._returns_at[member] = returns_at


class EnvoyBreaker(BreakerBase):
    """One host's outlier detection; ``rng`` draws enforcing_consecutive_5xx,
    ``pool`` the gateway's hosts (none: a pool of one host)."""

    __slots__ = ("_pool", "_member", "_rng", "_consecutive", "_backoff", "_returns_at", "_return_sweep")

    def __init__(self, config, rng: np.random.Generator | None = None, pool: EjectionPool | None = None):
        super().__init__(config)
        self._pool = pool if pool is not None else EjectionPool(1)
        self._member = self._pool.join()
        self._rng = rng if rng is not None else np.random.default_rng()
        self._consecutive = 0
        self._backoff = 0  # ejectTimeBackoff as of the last ejection
        self._returns_at = 0.0
        self._return_sweep: int | None = None  # the sweep that ends (or ended) the last ejection

    @property
    def pool(self) -> EjectionPool:
        return self._pool

    @property
    def ejected_until(self) -> float | None:
        """The sweep that ends the current ejection (None: not ejected, as of the last call)."""
        return self._returns_at if self.state is OPEN else None

    def allow(self, now: float) -> bool:
        if self.state is OPEN:
            self.advance(now)
        return self.state is CLOSED

    def available(self, now: float) -> bool:
        return self.state is CLOSED or now >= self._returns_at

    def advance(self, now: float) -> None:
        if self.state is OPEN and now >= self._returns_at:
            self._move(CLOSED, self._returns_at)
            self._consecutive = 0

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        self.advance(now)
        failed = self.counted_failure(outcome)
        if failed is None:
            return
        if not failed:
            self._consecutive = 0
            return
        self._consecutive += 1
        if self._consecutive != self.config.consecutive_5xx or self.state is OPEN:
            return
        self._detected(now)
        self._consecutive = 0

    def release(self, epoch: int, now: float) -> None:
        """A cancelled call: Envoy reports no response for it."""

    def multiplier(self, now: float) -> int:
        """ejectTimeBackoff at ``now``: one less per sweep the host spent back in
        service, from the second sweep after its return."""
        if self.state is OPEN or self._return_sweep is None:
            return self._backoff
        interval = self.config.interval
        sweep = math.floor(now / interval)
        while (sweep + 1) * interval <= now:
            sweep += 1
        while sweep * interval > now:
            sweep -= 1
        return max(0, self._backoff - max(0, sweep - self._return_sweep))

    def _detected(self, now: float) -> None:
        c = self.config
        if not self._pool.admits_ejection(now, c.max_ejection_percent, c.always_eject_one_host):
            return
        if not self._enforced():
            return
        cap = c.ejection_time_cap
        backoff = self.multiplier(now)
        if backoff * c.base_ejection_time < cap + c.base_ejection_time:
            backoff += 1
        self._backoff = backoff
        self._return_sweep = self._first_sweep_after(now, min(c.base_ejection_time * backoff, cap))
        self._returns_at = self._return_sweep * c.interval
        self._pool.eject(self._member, self._returns_at)
        self._move(OPEN, now)

    def _enforced(self) -> bool:
        percent = self.config.enforcing_consecutive_5xx
        if percent >= 100:
            return True
        return percent > 0 and self._rng.random() * 100.0 < percent

    def _first_sweep_after(self, ejected_at: float, ejection_time: float) -> int:
        """The first sweep whose check ``ejection_time <= sweep - ejected_at`` holds."""
        interval = self.config.interval
        sweep = math.ceil((ejected_at + ejection_time) / interval)
        while sweep * interval - ejected_at < ejection_time:
            sweep += 1
        while sweep > 0 and (sweep - 1) * interval - ejected_at >= ejection_time:
            sweep -= 1
        return sweep
