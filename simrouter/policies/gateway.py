"""The gateway: one router in front of several deployments, clock-free.

An AI gateway (LiteLLM's Router, Envoy AI Gateway) spreads one model's traffic
over deployments, each with its own quota and its own breaker ("cooldown",
"outlier ejection"), and falls back to another deployment when one rejects or
fails a call. This object holds what the gateway decides; the engines
(``simrouter.sim.fast``, ``simrouter.sim.client``) and, later, the live service
drive it, passing the current time to every call (no clock, no SimPy here).

One *try* of a logical request (docs/gateway.md):

1. the router-wide chain (the top-level ``[limiter]`` and validation, drawn once
   per logical request; no breaker: with deployments the breaker is per
   deployment) admits it or answers at once; the engines run that chain;
2. ``pick(now, tried)``: the routing strategy (``simrouter.policies.routing``)
   chooses among ``candidates(now, tried)``, the deployments this try has not
   tried whose breaker is ``available(now)`` (LiteLLM filters cooled-down
   deployments before routing; Envoy takes ejected hosts out of the
   load-balancing set). None left: the attempt is answered
   ``BREAKER_REJECTED`` ("no deployment available");
3. the deployment's own ``AdmissionChain`` (``chain``: its limiter, its
   breaker, no validation) admits the attempt or rejects it at once; a
   deployment limiter's rejection tells its breaker (``throttled``: LiteLLM
   cools a deployment down on a 429 when other deployments exist);
4. the deployment's backend answers it (``sent`` / ``answered`` feed the
   routing strategy's in-flight counts, latencies and usage);
5. ``falls_back(kind, fallbacks)``: an attempt whose kind is in
   ``fallback_on``, with fallbacks left (``max_fallbacks`` per try), is followed
   AT ONCE (at the time it was answered) by a fallback attempt to another
   candidate, a real attempt (counted, subject to that deployment's limiter and
   breaker). The try's answer is its last attempt's.

``FALLBACK_KINDS`` maps the config names to outcome codes: ``failures``
covers ``FAILURE`` and ``QUEUE_FULL`` (a deployment that refuses the call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, TIMEOUT
from .chain import AdmissionChain
from .routing import RoutingStrategy, build_routing

FALLBACK_KINDS: dict[str, tuple[int, ...]] = {
    "breaker_rejected": (BREAKER_REJECTED,),
    "rate_limited": (RATE_LIMITED,),
    "failures": (FAILURE, QUEUE_FULL),
    "timeouts": (TIMEOUT,),
}

NO_DEPLOYMENT = -1  # the deployment index of an attempt no deployment could take


def _never(_now: float) -> None:
    """``throttled`` of a breaker that has none: nothing to do."""


class Gateway:
    """The deployments' admission chains and the routing strategy of one gateway.

    ``chains``: one ``AdmissionChain`` per deployment (its limiter and breaker,
    ``p_validation`` 0); ``routing``: a ``RoutingStrategy`` (``pick`` /
    ``sent`` / ``answered``); ``max_fallbacks``: fallback attempts per try;
    ``fallback_on``: config names of the kinds that fall back (``FALLBACK_KINDS``)."""

    __slots__ = ("chains", "routing", "max_fallbacks", "size", "routing_tracks_sent", "routing_tracks_answers", "routing_tracks_attempts", "_fallback_codes", "_available", "_throttled", "_all")

    def __init__(self, chains: Sequence[AdmissionChain], routing, max_fallbacks: int, fallback_on: Sequence[str]):
        if not chains:
            raise ValueError("a gateway needs at least one deployment")
        self.chains = list(chains)
        self.routing = routing
        self.max_fallbacks = max_fallbacks
        self.size = len(self.chains)
        self._fallback_codes = frozenset(code for name in fallback_on for code in FALLBACK_KINDS[name])
        self._available = [chain.breaker.available for chain in self.chains]
        # LiteLLM cools a deployment down at once on a 429 only "when other deployments exist".
        self._throttled = [chain.breaker.throttled if self.size > 1 else _never for chain in self.chains]
        self._all = tuple(range(self.size))
        # Whether ``sent`` / ``answered`` matter to the strategy (in-flight counts, latencies,
        # usage); a hot loop may skip a call that does nothing.
        self.routing_tracks_sent = type(routing).sent is not RoutingStrategy.sent
        self.routing_tracks_answers = type(routing).answered is not RoutingStrategy.answered
        self.routing_tracks_attempts = self.routing_tracks_sent or self.routing_tracks_answers

    @property
    def breakers(self) -> list:
        """Each deployment's breaker, by deployment index."""
        return [chain.breaker for chain in self.chains]

    def candidates(self, now: float, tried: Sequence[int] = ()) -> list[int]:
        """Deployments (ascending) this try has not tried whose breaker is available at ``now``."""
        available = self._available
        return [d for d in self._all if d not in tried and available[d](now)]

    def pick(self, now: float, tried: Sequence[int] = ()) -> int | None:
        """The deployment of the next attempt, or None when no candidate is left
        (the attempt is then ``BREAKER_REJECTED``: no deployment available)."""
        candidates = self.candidates(now, tried)
        if not candidates:
            return None
        return self.routing.pick(candidates, now)

    def falls_back(self, kind: int, fallbacks: int) -> bool:
        """Whether an attempt answered ``kind``, after ``fallbacks`` fallbacks in
        this try, is followed by a fallback (if a candidate is left: ``pick``)."""
        return fallbacks < self.max_fallbacks and kind in self._fallback_codes

    def rate_limited(self, deployment: int, now: float) -> None:
        """The deployment's own limiter rejected an attempt at ``now`` (a 429):
        its breaker hears of it (``throttled``; LiteLLM's immediate cooldown)."""
        self._throttled[deployment](now)

    def sent(self, deployment: int, now: float, tokens: int = 0) -> None:
        """An attempt was forwarded to ``deployment``'s backend at ``now``."""
        self.routing.sent(deployment, now, tokens)

    def answered(self, deployment: int, now: float, latency: float, outcome: int) -> None:
        """The router answered an attempt ``deployment``'s backend had (``latency``
        s after it was forwarded); call it after the deployment chain's settle."""
        self.routing.answered(deployment, now, latency, outcome)


def build_gateway(chains: Sequence[AdmissionChain], router_config, weights: Sequence[float], uniform: Callable[[], float]) -> Gateway:
    """The gateway of a scenario's ``[router]`` (routing, fallbacks, latency TTL)
    over ``chains``; ``uniform`` feeds the routing strategy's random draws."""
    routing = build_routing(router_config.routing, weights, uniform, latency_ttl=router_config.latency_ttl)
    return Gateway(chains, routing, router_config.max_fallbacks, router_config.fallback_on)
