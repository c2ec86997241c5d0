"""Routing strategies: which deployment of a gateway gets the next attempt.

A gateway (``[[deployments]]``, docs/gateway.md) holds one strategy. Like the
limiters and breakers it never reads a clock and never sees the future: it
knows only what the router told it before ``now``::

    d = strategy.pick(candidates, now)      # candidates: ascending deployment indices, non-empty
    strategy.sent(d, now, tokens)           # the attempt was forwarded to d's backend
    strategy.answered(d, done, latency, outcome)   # the router got its answer

``candidates`` are the deployments the router may use for this attempt (not
cooled down, not already tried by this request); the strategy returns one of
them. ``sent`` is called when an attempt passed the deployment's limiter and
breaker and goes to its backend; every ``sent`` owes exactly one ``answered``
(``latency``: forward to answer, ``outcome``: a code of ``simrouter.outcomes``).
An attempt that gets no answer (a cancelled hedge loser, a client gone) is
answered with ``outcome = NO_ANSWER``: it leaves the in-flight count and is no
latency sample. Randomness comes in as ``uniform()``, one U[0, 1) draw per
call; a strategy draws only when it has a choice to make at random (never for
a single candidate), so the same stream gives the same picks.

==================  =====================================================  ===================================
strategy            picks                                                  mirrors
==================  =====================================================  ===================================
``round-robin``     weighted round-robin over the candidates, shares       Envoy ``ROUND_ROBIN`` (weighted)
                    exact within one (equal weights: cyclic), no draw
``simple-shuffle``  weighted random, weights renormalised over the         LiteLLM ``simple-shuffle``; Envoy
                    candidates, one draw                                   ``RANDOM`` with equal weights
``least-busy``      fewest in-flight attempts; a tie: uniform among        LiteLLM ``least-busy``
                    the tied (one draw)
``latency-based``   lowest mean latency of the samples answered in the     LiteLLM ``latency-based-routing``
                    last ``latency_ttl`` s (none: 0); a tie: uniform
``usage-based``     lowest usage (tokens, else requests) in the current    LiteLLM ``usage-based-routing-v2``
                    minute ``floor(now / 60)``; a tie: uniform
``power-of-two``    equal weights: two distinct candidates at random,      Envoy ``LEAST_REQUEST``
                    the one with fewer in flight; unequal: weighted
                    round-robin on ``weight / (in_flight + 1) ** bias``
==================  =====================================================  ===================================

Each class's docstring gives the documented rule it follows and where this
model departs from it.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import ConfigError
from ..outcomes import SUCCESS, TIMEOUT

ROUTING_STRATEGIES = ("round-robin", "simple-shuffle", "least-busy", "latency-based", "usage-based", "power-of-two")

# ``answered(..., outcome=NO_ANSWER)``: the attempt left the backend without an
# answer (a cancelled hedge loser); not a code of simrouter.outcomes.
NO_ANSWER = -1

# LiteLLM's lowest-latency handler appends 1000 s for an attempt that timed out
# ("give 1000s penalty for failing", router_strategy/lowest_latency.py).
TIMEOUT_PENALTY = 1000.0

# LiteLLM's usage-based-routing-v2 keys its counters by the UTC minute ("%H-%M").
USAGE_WINDOW = 60.0


class RoutingStrategy:
    """The interface every strategy implements; ``name`` is its ``router.routing`` value.

    ``sent`` and ``answered`` do nothing here: a strategy that needs them
    (in-flight counts, latencies, usage) overrides them."""

    __slots__ = ()

    name = ""

    def pick(self, candidates: Sequence[int], now: float) -> int:
        """The deployment (one of ``candidates``) that gets the attempt made at ``now``."""
        raise NotImplementedError

    def sent(self, deployment: int, now: float, tokens: int = 0) -> None:
        """An attempt was forwarded to ``deployment``'s backend at ``now`` (``tokens``: its
        token cost for an LLM backend, 0 otherwise)."""

    def answered(self, deployment: int, now: float, latency: float, outcome: int) -> None:
        """The router got the answer of an attempt ``sent`` to ``deployment``, ``latency``
        seconds after it was forwarded; ``outcome``: its code, or ``NO_ANSWER``."""


# A deficit this far below the eligibility threshold still counts as reaching it
# (the deficits are sums of float shares).
_DEFICIT_TOLERANCE = 1e-9


def _chairman_shares(candidates: Sequence[int], weights: Sequence[float]) -> list[float]:
    """Each candidate's share ``w / W`` of the next pick (``W``: the candidates' total weight)."""
    total = 0.0
    for d in candidates:
        total += weights[d]
    return [weights[d] / total for d in candidates]


def _chairman_pick(candidates: Sequence[int], weights: Sequence[float], deficit: list[float], shares: Sequence[float] | None = None) -> int:
    """Weighted round-robin over ``candidates`` by Tijdeman's chairman rule.

    Each candidate's ``deficit`` (picks it is owed: its share of the picks so far
    minus its picks) grows by its share ``p = w / W`` of this pick (``W``: the
    candidates' total weight). Among those owed at least ``c = 1 / (2k - 2)``
    (``k`` candidates), the one whose deficit would reach ``1 - c`` soonest,
    ``(1 - c - deficit) / p`` picks from now, is picked (the lowest index on a
    tie) and its deficit drops by 1. Over an unchanging candidate set this keeps
    every deficit within ``1 - 1 / (2k - 2)`` after every pick (R. Tijdeman, "The
    chairman assignment problem", Discrete Math. 32, 1980): the shares are exact
    within one request at every moment. Equal weights give the cyclic order
    0, 1, ..., k - 1. A deployment that is not a candidate keeps its deficit; if
    the carried deficits leave no candidate eligible, the most owed is picked.
    ``shares``: the candidates' shares when the caller has them already
    (``_chairman_shares``)."""
    if shares is None:
        shares = _chairman_shares(candidates, weights)
    least = 1.0 / (2 * len(candidates) - 2)
    threshold = least - _DEFICIT_TOLERANCE
    reach = 1.0 - least
    best = -1
    soonest = math.inf
    for d, share in zip(candidates, shares):
        owed = deficit[d] + share
        deficit[d] = owed
        if owed >= threshold:
            wait = (reach - owed) / share
            if wait < soonest:
                soonest = wait
                best = d
    if best < 0:  # only after the candidate set changed
        best = max(candidates, key=deficit.__getitem__)
    deficit[best] -= 1.0
    return best


class RoundRobin(RoutingStrategy):
    """Envoy's ``ROUND_ROBIN``: "each available upstream host is selected in round
    robin order. If weights are assigned [...], a weighted round robin schedule is
    used, where higher weighted endpoints will appear more often in the rotation"
    (arch overview, load balancers).

    The schedule is Tijdeman's chairman rule (``_chairman_pick``): after ``n``
    picks over an unchanging candidate set, deployment ``i`` has had
    ``n * w_i / W`` picks within ``1 - 1 / (2k - 2)``, at every ``n``; equal
    weights give the plain cyclic order. Envoy builds an earliest-deadline-first
    schedule and nginx a "smooth" one (the most owed first); both give the same
    long-run shares but can stray by more than one request (about 2 and 1.005 in
    our trials with uneven weights). A deployment that is not a candidate
    (cooled down, already tried) keeps its place while the rotation goes on
    over the others. No draws."""

    __slots__ = ("_weights", "_deficit", "_all_shares")

    name = "round-robin"

    def __init__(self, weights: Sequence[float]):
        self._weights = tuple(float(w) for w in weights)
        self._deficit = [0.0] * len(self._weights)
        # Every deployment a candidate (the usual case): the shares never change.
        self._all_shares = _chairman_shares(range(len(self._weights)), self._weights)

    def pick(self, candidates: Sequence[int], now: float) -> int:
        k = len(candidates)
        if k == 1:
            return candidates[0]  # a sole candidate is owed exactly the pick it gets
        if k != len(self._weights):
            return _chairman_pick(candidates, self._weights, self._deficit)
        # Every deployment a candidate (k distinct ascending indices out of k): the shares computed once.
        return _chairman_pick(candidates, self._weights, self._deficit, self._all_shares)


class SimpleShuffle(RoutingStrategy):
    """LiteLLM's ``simple-shuffle`` (its default): "If weights are provided, it will
    return a deployment based on the weights" - ``random.choices`` over the healthy
    deployments with their weights divided by their sum
    (router_strategy/simple_shuffle.py); with equal weights, Envoy's ``RANDOM``.

    One draw ``u`` per pick among two or more candidates: the first candidate
    whose cumulative weight exceeds ``u`` times the candidates' total. LiteLLM
    also weighs by ``rpm`` or ``tpm`` when no weight is set: give those as the
    weights."""

    __slots__ = ("_weights", "_equal", "_uniform")

    name = "simple-shuffle"

    def __init__(self, weights: Sequence[float], uniform: Callable[[], float]):
        self._weights = tuple(float(w) for w in weights)
        self._equal = len(set(self._weights)) == 1
        self._uniform = uniform

    def pick(self, candidates: Sequence[int], now: float) -> int:
        k = len(candidates)
        if k == 1:
            return candidates[0]
        if self._equal:
            return candidates[int(self._uniform() * k)]
        weights = self._weights
        total = 0.0
        for d in candidates:
            total += weights[d]
        target = self._uniform() * total
        for d in candidates:
            target -= weights[d]
            if target < 0.0:
                return d
        return candidates[-1]  # rounding: u * total came out as total


def _uniform_among_tied(candidates: Sequence[int], values: Sequence[float], lowest: float, tied: int, u: float) -> int:
    """The ``int(u * tied)``-th candidate (in index order) whose value is ``lowest``."""
    rank = int(u * tied)
    for d in candidates:
        if values[d] == lowest:
            if rank == 0:
                return d
            rank -= 1
    raise AssertionError("tied count out of step with the values")


def _lowest(candidates: Sequence[int], values: Sequence[float], uniform: Callable[[], float]) -> int:
    """The candidate with the lowest value; a tie is broken uniformly (one draw)."""
    best = candidates[0]
    lowest = values[best]
    tied = 0  # other candidates at the lowest value
    for d in candidates:
        v = values[d]
        if v < lowest:
            lowest = v
            best = d
            tied = 0
        elif v == lowest and d != best:
            tied += 1
    if not tied:
        return best
    return _uniform_among_tied(candidates, values, lowest, tied + 1, uniform())


class LeastBusy(RoutingStrategy):
    """LiteLLM's ``least-busy``: it counts each deployment's requests in flight
    (incremented in ``log_pre_api_call``, decremented on success or failure) and
    picks the one with the fewest (router_strategy/least_busy.py).

    In flight here: ``sent`` and not yet ``answered``. On a tie LiteLLM keeps the
    first minimum in its cache's insertion order (the order the deployments were
    first used), an arbitrary preference; this model breaks ties uniformly at
    random instead (one draw, only when two or more candidates tie), so no index
    is favoured."""

    __slots__ = ("_in_flight", "_uniform")

    name = "least-busy"

    def __init__(self, size: int, uniform: Callable[[], float]):
        self._in_flight = [0] * size
        self._uniform = uniform

    def in_flight(self, deployment: int) -> int:
        """Attempts sent to ``deployment`` and not yet answered."""
        return self._in_flight[deployment]

    def pick(self, candidates: Sequence[int], now: float) -> int:
        if len(candidates) == 1:
            return candidates[0]
        return _lowest(candidates, self._in_flight, self._uniform)

    def sent(self, deployment: int, now: float, tokens: int = 0) -> None:
        self._in_flight[deployment] += 1

    def answered(self, deployment: int, now: float, latency: float, outcome: int) -> None:
        self._in_flight[deployment] -= 1


class LatencyBased(RoutingStrategy):
    """LiteLLM's ``latency-based-routing`` (router_strategy/lowest_latency.py):
    the deployment with the lowest average latency of its recent answers; "if
    healthy deployment not yet used" it gets latency 0, so it is tried; among
    those within ``lowest_latency_buffer`` (default 0) of the lowest, a random
    one (``random.choice``).

    Samples: a SUCCESS adds its latency; a TIMEOUT adds ``TIMEOUT_PENALTY``
    (1000 s), as LiteLLM's ``async_log_failure_event`` does for
    ``litellm.Timeout``; any other failure adds nothing ("do nothing if it's not
    a timeout error"), so a deployment that fails fast keeps the latency of its
    successes - taking it out is the breaker's (cooldown's) job. A sample
    answered at ``t`` counts while ``now - t < latency_ttl``; a deployment with
    no sample left counts as 0 again. Ties (exactly equal means, e.g. several
    at 0) are broken uniformly at random (one draw), LiteLLM's buffer of 0.

    Departures: LiteLLM keeps at most ``max_latency_list_size`` (10) samples per
    deployment and expires the whole map ``ttl`` (default 1 h) after its last
    write; this model keeps every sample younger than ``latency_ttl`` (default
    60 s), or (``max_samples``) at most that many of the latest. Either way the
    rule has no in-flight term: under load the traffic herds onto the lowest
    mean until the queue it builds shows in the answers
    (experiments/gateway_strategies.py: about 40 s mean latency at 80 % load,
    with the TTL mean and with the latest 10 samples alike). LiteLLM divides a response's time by its completion tokens when the
    response carries usage; here ``latency`` is whatever the router passes (the
    attempt's forward-to-answer time)."""

    __slots__ = ("ttl", "max_samples", "_times", "_values", "_sums", "_means", "_uniform")

    name = "latency-based"

    def __init__(self, size: int, uniform: Callable[[], float], ttl: float = 60.0, max_samples: int | None = None):
        if max_samples is not None and max_samples < 1:
            raise ValueError("max_samples must be >= 1 (None: no limit)")
        self.ttl = ttl
        self.max_samples = max_samples
        self._times = [deque() for _ in range(size)]
        self._values = [deque() for _ in range(size)]
        self._sums = [0.0] * size
        self._means = [0.0] * size  # sums / counts, kept current by answered and _expire
        self._uniform = uniform

    def mean_latency(self, deployment: int, now: float) -> float:
        """The mean of ``deployment``'s samples that still count at ``now`` (0 without any)."""
        self._expire(deployment, now - self.ttl)
        times = self._times[deployment]
        return self._sums[deployment] / len(times) if times else 0.0

    def _expire(self, d: int, horizon: float) -> None:
        times = self._times[d]
        if times and times[0] <= horizon:
            values = self._values[d]
            total = self._sums[d]
            while times and times[0] <= horizon:
                times.popleft()
                total -= values.popleft()
            if times:
                self._sums[d] = total
                self._means[d] = total / len(times)
            else:  # no drift left behind once empty
                self._sums[d] = self._means[d] = 0.0

    def pick(self, candidates: Sequence[int], now: float) -> int:
        if len(candidates) == 1:
            return candidates[0]
        horizon = now - self.ttl
        times = self._times
        means = self._means
        # One pass: expire each candidate's old samples, then ``_lowest`` on its mean.
        best = -1
        lowest = 0.0
        tied = 0  # other candidates at the lowest mean
        for d in candidates:
            samples = times[d]
            if samples and samples[0] <= horizon:
                self._expire(d, horizon)
            mean = means[d]
            if best < 0 or mean < lowest:
                lowest = mean
                best = d
                tied = 0
            elif mean == lowest:
                tied += 1
        if not tied:
            return best
        return _uniform_among_tied(candidates, means, lowest, tied + 1, self._uniform())

    def answered(self, deployment: int, now: float, latency: float, outcome: int) -> None:
        if outcome == SUCCESS:
            value = latency
        elif outcome == TIMEOUT:
            value = TIMEOUT_PENALTY
        else:
            return
        times = self._times[deployment]
        values = self._values[deployment]
        if self.max_samples is not None and len(times) >= self.max_samples:
            times.popleft()
            self._sums[deployment] -= values.popleft()
        times.append(now)
        values.append(value)
        total = self._sums[deployment] + value
        self._sums[deployment] = total
        self._means[deployment] = total / len(times)


class UsageBased(RoutingStrategy):
    """LiteLLM's ``usage-based-routing-v2`` (router_strategy/lowest_tpm_rpm_v2.py):
    counters keyed by deployment and the current UTC minute (``"%H-%M"``, expiring
    after 60 s); the deployment with the lowest tokens this minute, a random one
    among the lowest (``random.choice(potential_deployments)``).

    Usage here: each ``sent`` adds its ``tokens`` (an LLM request), or 1 when it
    carries none (requests per minute), to the deployment's count for the
    minute ``floor(now / 60)``; all counts start again at 0 when the minute
    changes. Ties are broken uniformly at random (one draw).

    Departures: LiteLLM adds a response's ``total_tokens`` when it succeeds; this
    model counts at the send (the tokens the router knows then), so attempts in
    flight already weigh - LiteLLM's v2 counts its rpm at the pre-call check for
    the same reason (its issue 2994). LiteLLM also skips deployments over their
    own ``tpm``/``rpm``; here that is each deployment's limiter's job."""

    __slots__ = ("_usage", "_window_end", "_uniform")

    name = "usage-based"

    def __init__(self, size: int, uniform: Callable[[], float]):
        self._usage = [0.0] * size
        self._window_end = USAGE_WINDOW
        self._uniform = uniform

    def usage(self, deployment: int, now: float) -> float:
        """``deployment``'s tokens (or requests) sent in the minute of ``now``."""
        self._roll(now)
        return self._usage[deployment]

    def _roll(self, now: float) -> None:
        if now >= self._window_end:
            usage = self._usage
            for d in range(len(usage)):
                usage[d] = 0.0
            self._window_end = (math.floor(now / USAGE_WINDOW) + 1) * USAGE_WINDOW

    def pick(self, candidates: Sequence[int], now: float) -> int:
        if len(candidates) == 1:
            return candidates[0]
        if now >= self._window_end:
            self._roll(now)
        return _lowest(candidates, self._usage, self._uniform)

    def sent(self, deployment: int, now: float, tokens: int = 0) -> None:
        if now >= self._window_end:
            self._roll(now)
        self._usage[deployment] += tokens if tokens > 0 else 1


class PowerOfTwo(RoutingStrategy):
    """Envoy's ``LEAST_REQUEST`` (arch overview, load balancers, "Weighted least
    request"), whose behaviour depends on the weights:

    - *all weights equal*: "selects N random available hosts [...] (2 by default)
      and picks the host which has the fewest active requests" (P2C, Mitzenmacher).
      Here: two DISTINCT candidates, the first ``int(u1 * k)``, the second
      ``int(u2 * (k - 1))`` among the others (two draws); the second replaces
      the first only with strictly fewer in flight (as Envoy's N-choices loop),
      a tie goes to the first drawn, itself uniform. Envoy draws its hosts with
      replacement, so with two hosts it compares one with itself half of the
      time; distinct draws make every pick a real comparison. One candidate: no
      draw.
    - *weights not equal*: "a weighted round robin schedule in which weights are
      dynamically adjusted [...] at the time of selection":
      ``weight / (active_requests + 1) ** active_request_bias`` (bias default
      1.0; 0.0 is plain round robin). Here: the weighted round-robin of
      ``RoundRobin`` on those weights, recomputed for every candidate at each
      pick (Envoy's EDF schedule refreshes a host's weight when it is picked).
      No draws.

    In flight: ``sent`` and not yet ``answered``."""

    __slots__ = ("active_request_bias", "_weights", "_equal", "_in_flight", "_deficit", "_effective", "_uniform")

    name = "power-of-two"

    def __init__(self, weights: Sequence[float], uniform: Callable[[], float], active_request_bias: float = 1.0):
        if not active_request_bias >= 0.0:
            raise ValueError("active_request_bias must be >= 0")
        self.active_request_bias = active_request_bias
        self._weights = tuple(float(w) for w in weights)
        self._equal = len(set(self._weights)) == 1
        self._in_flight = [0] * len(self._weights)
        self._deficit = [0.0] * len(self._weights)
        self._effective = list(self._weights)
        self._uniform = uniform

    def in_flight(self, deployment: int) -> int:
        """Attempts sent to ``deployment`` and not yet answered."""
        return self._in_flight[deployment]

    def pick(self, candidates: Sequence[int], now: float) -> int:
        k = len(candidates)
        if k == 1:
            return candidates[0]
        in_flight = self._in_flight
        if self._equal:
            uniform = self._uniform
            i = int(uniform() * k)
            j = int(uniform() * (k - 1))
            if j >= i:
                j += 1
            first = candidates[i]
            second = candidates[j]
            return second if in_flight[second] < in_flight[first] else first
        weights = self._weights
        effective = self._effective
        bias = self.active_request_bias
        for d in candidates:
            if bias == 1.0:
                effective[d] = weights[d] / (in_flight[d] + 1)
            elif bias != 0.0:
                effective[d] = weights[d] / (in_flight[d] + 1) ** bias
        return _chairman_pick(candidates, effective, self._deficit)

    def sent(self, deployment: int, now: float, tokens: int = 0) -> None:
        self._in_flight[deployment] += 1

    def answered(self, deployment: int, now: float, latency: float, outcome: int) -> None:
        self._in_flight[deployment] -= 1


def build_routing(name: str, weights: Sequence[float], uniform: Callable[[], float], latency_ttl: float = 60.0) -> RoutingStrategy:
    """The ``router.routing`` strategy ``name`` over deployments of these ``weights``
    (one per deployment, each finite and > 0); ``uniform()`` gives its U[0, 1)
    draws; ``latency_ttl`` s: how long a latency sample counts (``latency-based``)."""
    if name not in ROUTING_STRATEGIES:
        raise ConfigError("router.routing", f"expected one of {', '.join(ROUTING_STRATEGIES)}, got {name!r}")
    weights = tuple(weights)
    if not weights:
        raise ConfigError("deployments", "a gateway needs at least one deployment")
    for i, w in enumerate(weights):
        if not (isinstance(w, numbers.Real) and math.isfinite(w) and w > 0):
            raise ConfigError(f"deployments.{i}.weight", f"expected a finite number > 0, got {w!r}")
    if not (isinstance(latency_ttl, numbers.Real) and latency_ttl > 0 and not math.isnan(latency_ttl)):
        raise ConfigError("router.latency_ttl", f"expected a number of seconds > 0, got {latency_ttl!r}")
    size = len(weights)
    if name == "round-robin":
        return RoundRobin(weights)
    if name == "simple-shuffle":
        return SimpleShuffle(weights, uniform)
    if name == "least-busy":
        return LeastBusy(size, uniform)
    if name == "latency-based":
        return LatencyBased(size, uniform, float(latency_ttl))
    if name == "usage-based":
        return UsageBased(size, uniform)
    return PowerOfTwo(weights, uniform)


__all__ = [
    "NO_ANSWER",
    "ROUTING_STRATEGIES",
    "TIMEOUT_PENALTY",
    "LatencyBased",
    "LeastBusy",
    "PowerOfTwo",
    "RoundRobin",
    "RoutingStrategy",
    "SimpleShuffle",
    "UsageBased",
    "build_routing",
]
