"""Closed-form queueing results, to check the simulator against.

Notation (times in seconds, rates per second)
==============================================

=============  ==============================================================
``lam``        lambda, the Poisson arrival rate
``mu``         the service rate of one server (exponential service, mean 1/mu)
``c``          the number of servers (``backend.capacity``)
``a``          the offered load in Erlangs, a = lambda / mu
``rho``        the utilisation per server, rho = a / c; a stable queue needs rho < 1
``K``          M/M/c/K: places in the system, in service plus waiting (K >= c)
``W``, ``T``   waiting time in queue, response time T = W + S (S: service time)
=============  ==============================================================

Every function takes and returns plain floats. Where a result exists only for
a stable queue, rho >= 1 raises ``ValueError`` naming the offending parameter.

Formulas
========

Erlang B and Erlang C (probability that an arrival must wait in M/M/c), by the
stable recursion (no factorials, no powers, no overflow)::

    B_0 = 1,   B_k = a B_{k-1} / (k + a B_{k-1})          (B_c = Erlang B)
    C(c, a) = c B_c / (c - a (1 - B_c))

M/M/c, FIFO (``theta = c mu - lambda``, the rate at which the queue drains)::

    P(W > t) = C e^{-theta t}
    E[W]     = C / (c mu - lambda)
    E[T]     = E[W] + 1/mu
    P(T > t) = (1 + C/(c-1-a)) e^{-mu t} - (C/(c-1-a)) e^{-theta t}   (a != c-1)
    P(T > t) = e^{-mu t} (1 + C mu t)                                  (a == c-1)

The response-time survival function is evaluated as the equivalent
``e^{-mu t} + C e^{-min(mu, theta) t} (1 - e^{-|theta - mu| t}) / |c-1-a|``: a sum
of non-negative terms, so neither cancellation near a = c-1 nor overflow for
large t. Its p-quantile is found by Brent's method; for M/M/1 (c = 1, C = rho)
it reduces to T ~ Exp(mu - lambda), quantile ``-ln(1-p) / (mu - lambda)``.

M/M/c/K (``K`` places in all, an arrival that finds K in the system is lost)::

    p_n ∝ a^n / n!                  0 <= n < c
    p_n ∝ (a^c / c!) rho^(n-c)      c <= n <= K
    blocking = p_K                  (PASTA: arrivals see time averages)

computed with logarithms, so any rho > 0 is allowed (the queue is finite). With
K = c it is Erlang B.

M/G/1, Pollaczek-Khinchine (rho = lambda E[S])::

    E[W] = lambda E[S^2] / (2 (1 - rho))
"""

from __future__ import annotations

import math

__all__ = [
    "erlang_b",
    "erlang_c",
    "mg1_wait_mean",
    "mmc_response_mean",
    "mmc_response_percentile",
    "mmc_response_sf",
    "mmc_wait_mean",
    "mmck_blocking",
]

# |c - 1 - a| below this (relative to c) counts as a == c - 1 in mmc_response_sf.
_BALANCED_TOL = 1e-9


# ---------------------------------------------------------------- validation


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}: must be a finite number > 0, got {value}")
    return value


def _servers(c: int, name: str = "c") -> int:
    if isinstance(c, bool) or int(c) != c or c < 1:
        raise ValueError(f"{name}: must be a whole number >= 1, got {c!r}")
    return int(c)


def _stable(lam: float, mu: float, c: int) -> tuple[float, float, int, float]:
    """Validated (lam, mu, c, a) of a stable M/M/c queue."""
    lam, mu, c = _positive(lam, "lam"), _positive(mu, "mu"), _servers(c)
    a = lam / mu
    if not a < c:
        raise ValueError(f"lam: the queue is unstable, rho = lam/(c*mu) = {a / c:.6g} >= 1 (lam={lam}, mu={mu}, c={c})")
    return lam, mu, c, a


# ---------------------------------------------------------------- Erlang B and C


def erlang_b(c: int, a: float) -> float:
    """Erlang B: the loss probability of M/M/c/c with offered load ``a`` Erlangs."""
    c, a = _servers(c), _positive(a, "a")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability that an M/M/c arrival waits (load ``a`` < ``c``)."""
    c, a = _servers(c), _positive(a, "a")
    if not a < c:
        raise ValueError(f"a: the queue is unstable, rho = a/c = {a / c:.6g} >= 1 (a={a}, c={c})")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


# ---------------------------------------------------------------- M/M/c


def mmc_wait_mean(lam: float, mu: float, c: int) -> float:
    """E[W], the mean time in queue of M/M/c: C / (c mu - lam)."""
    lam, mu, c, a = _stable(lam, mu, c)
    return erlang_c(c, a) / (c * mu - lam)


def mmc_response_mean(lam: float, mu: float, c: int) -> float:
    """E[T] = E[W] + 1/mu, the mean response time of M/M/c."""
    return mmc_wait_mean(lam, mu, c) + 1.0 / mu


def _response_sf(t: float, mu: float, c: int, a: float, C: float) -> float:
    if t <= 0:
        return 1.0
    theta = mu * (c - a)
    d = c - 1.0 - a
    if abs(d) <= _BALANCED_TOL * c:
        # theta == mu: W + S given W > 0 is Erlang(2, mu).
        return math.exp(-mu * t) * (1.0 + C * mu * t)
    # (e^{-mu t} - e^{-theta t}) / d, written without cancellation or overflow.
    tail = math.exp(-min(mu, theta) * t) * -math.expm1(-abs(theta - mu) * t) / abs(d)
    return math.exp(-mu * t) + C * tail


def mmc_response_sf(t: float, lam: float, mu: float, c: int) -> float:
    """P(T > t), the survival function of the M/M/c (FIFO) response time."""
    lam, mu, c, a = _stable(lam, mu, c)
    return _response_sf(float(t), mu, c, a, erlang_c(c, a))


def mmc_response_percentile(p: float, lam: float, mu: float, c: int) -> float:
    """The p-quantile (0 < p < 1) of the M/M/c response time, in seconds."""
    from scipy.optimize import brentq

    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: must be strictly between 0 and 1, got {p}")
    lam, mu, c, a = _stable(lam, mu, c)
    C = erlang_c(c, a)
    target = 1.0 - p

    def excess(t: float) -> float:
        return _response_sf(t, mu, c, a, C) - target

    # T is stochastically below Exp(mu) + Exp(theta), so this mean scale brackets
    # quickly; double until the survival function drops below the target.
    hi = 1.0 / mu + 1.0 / (c * mu - lam)
    while excess(hi) > 0:
        hi *= 2.0
    return brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-15, maxiter=500)


# ---------------------------------------------------------------- M/M/c/K


def mmck_blocking(lam: float, mu: float, c: int, K: int) -> float:
    """P(an arrival is lost) in M/M/c/K, K = places in service plus waiting.

    Any rho > 0: the state space is finite, so no stability condition."""
    lam, mu, c = _positive(lam, "lam"), _positive(mu, "mu"), _servers(c)
    K = _servers(K, "K")
    if K < c:
        raise ValueError(f"K: must be >= c ({c}): it counts the places in service plus waiting, got {K}")
    a = lam / mu
    log_a, log_rho = math.log(a), math.log(a / c)
    log_p = [n * log_a - math.lgamma(n + 1) for n in range(c)]
    head = c * log_a - math.lgamma(c + 1)
    log_p += [head + (n - c) * log_rho for n in range(c, K + 1)]
    top = max(log_p)
    total = math.fsum(math.exp(x - top) for x in log_p)
    return math.exp(log_p[K] - top) / total


# ---------------------------------------------------------------- M/G/1


def mg1_wait_mean(lam: float, mean_s: float, second_moment_s: float) -> float:
    """Pollaczek-Khinchine: E[W] = lam E[S^2] / (2 (1 - rho)), rho = lam E[S]."""
    lam, mean_s = _positive(lam, "lam"), _positive(mean_s, "mean_s")
    second_moment_s = _positive(second_moment_s, "second_moment_s")
    if second_moment_s < mean_s * mean_s * (1 - 1e-12):
        raise ValueError(f"second_moment_s: must be >= mean_s**2 ({mean_s * mean_s}), got {second_moment_s}")
    rho = lam * mean_s
    if not rho < 1:
        raise ValueError(f"lam: the queue is unstable, rho = lam*mean_s = {rho:.6g} >= 1 (lam={lam}, mean_s={mean_s})")
    return lam * second_moment_s / (2.0 * (1.0 - rho))
