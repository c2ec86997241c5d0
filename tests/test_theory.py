"""Closed-form queueing results (simrouter.theory) against worked values,
naive formulas and each other."""

from __future__ import annotations

import math

import pytest
from scipy.integrate import quad

from simrouter import theory


def naive_erlang_c(c: int, a: float) -> float:
    """The textbook formula, with factorials and powers (fine for small c)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def naive_erlang_b(c: int, a: float) -> float:
    return (a**c / math.factorial(c)) / sum(a**k / math.factorial(k) for k in range(c + 1))


def naive_mmck_blocking(lam: float, mu: float, c: int, K: int) -> float:
    a, rho = lam / mu, lam / (c * mu)
    weights = [a**n / math.factorial(n) if n < c else a**c / math.factorial(c) * rho ** (n - c) for n in range(K + 1)]
    return weights[K] / sum(weights)


# ---------------------------------------------------------------- worked values


@pytest.mark.parametrize(
    "lam, mu, c, p95, p99",
    [
        (3.5, 1.0, 4, 6.748, 9.984),
        (0.8, 1.0, 1, 14.979, 23.026),
    ],
)
def test_response_percentiles_worked_values(lam, mu, c, p95, p99):
    assert theory.mmc_response_percentile(0.95, lam, mu, c) == pytest.approx(p95, abs=5e-4)
    assert theory.mmc_response_percentile(0.99, lam, mu, c) == pytest.approx(p99, abs=5e-4)


def test_worked_means():
    # M/M/1: E[T] = 1/(mu - lam); M/M/4 at a = 3.5: C = 0.7378610940...
    assert theory.mmc_response_mean(0.8, 1.0, 1) == pytest.approx(5.0, rel=1e-12)
    assert theory.mmc_wait_mean(0.8, 1.0, 1) == pytest.approx(4.0, rel=1e-12)
    assert theory.erlang_c(4, 3.5) == pytest.approx(0.737861094038107, rel=1e-12)
    assert theory.mmc_response_mean(3.5, 1.0, 4) == pytest.approx(1.0 + 0.737861094038107 / 0.5, rel=1e-12)


@pytest.mark.parametrize("lam, mu", [(0.8, 1.0), (0.1, 1.0), (0.99, 1.0), (3.0, 7.0), (1e-3, 2e-3 + 1e-9)])
@pytest.mark.parametrize("p", [0.01, 0.5, 0.9, 0.95, 0.99, 0.999999])
def test_mm1_percentile_is_closed_form(lam, mu, p):
    # M/M/1 response time is Exp(mu - lam): quantile -ln(1-p) / (mu - lam).
    expected = -math.log1p(-p) / (mu - lam)
    assert theory.mmc_response_percentile(p, lam, mu, 1) == pytest.approx(expected, rel=1e-10)
    assert theory.mmc_response_sf(expected, lam, mu, 1) == pytest.approx(1 - p, rel=1e-9)


@pytest.mark.parametrize("p", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("lam, mu, c", [(3.5, 1.0, 4), (6.4, 1.0, 8), (12.0, 5.0, 3)])
def test_percentile_inverts_sf(p, lam, mu, c):
    t = theory.mmc_response_percentile(p, lam, mu, c)
    assert theory.mmc_response_sf(t, lam, mu, c) == pytest.approx(1 - p, rel=1e-10)


def test_scaling_in_time():
    # Doubling every rate halves every time.
    assert theory.mmc_response_percentile(0.95, 7.0, 2.0, 4) == pytest.approx(theory.mmc_response_percentile(0.95, 3.5, 1.0, 4) / 2, rel=1e-10)
    assert theory.mmc_response_mean(7.0, 2.0, 4) == pytest.approx(theory.mmc_response_mean(3.5, 1.0, 4) / 2, rel=1e-12)


# ---------------------------------------------------------------- Erlang B and C


@pytest.mark.parametrize("c", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("rho", [0.05, 0.3, 0.5, 0.8, 0.95, 0.999])
def test_erlang_c_matches_naive_formula(c, rho):
    a = rho * c
    assert theory.erlang_c(c, a) == pytest.approx(naive_erlang_c(c, a), rel=1e-11)


@pytest.mark.parametrize("c", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("a", [0.1, 1.0, 4.0, 11.5, 30.0])
def test_erlang_b_matches_naive_formula(c, a):
    assert theory.erlang_b(c, a) == pytest.approx(naive_erlang_b(c, a), rel=1e-11)


def test_erlang_c_m_m_1_is_rho():
    for rho in (0.1, 0.5, 0.9):
        assert theory.erlang_c(1, rho) == pytest.approx(rho, rel=1e-14)


def test_erlang_c_large_c_is_stable():
    # The naive formula overflows (a**c, c!) long before this; the recursion does not.
    value = theory.erlang_c(2000, 1950.0)
    assert 0.0 < value < 1.0 and math.isfinite(value)
    with pytest.raises(OverflowError):
        naive_erlang_c(2000, 1950.0)
    # Halfin-Whitt: at a = c - beta sqrt(c), C tends to a fixed value as c grows.
    c1, c2 = theory.erlang_c(400, 400 - 10.0), theory.erlang_c(1600, 1600 - 20.0)
    assert c1 == pytest.approx(c2, rel=0.02)


# ---------------------------------------------------------------- the a == c-1 branch


@pytest.mark.parametrize("c", [2, 4, 8])
@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 5.0, 40.0])
def test_sf_balanced_branch_is_continuous(c, t):
    mu = 1.0
    lam_balanced = (c - 1) * mu  # a == c - 1: theta == mu
    at = theory.mmc_response_sf(t, lam_balanced, mu, c)
    C = theory.erlang_c(c, c - 1.0)
    assert at == pytest.approx(math.exp(-mu * t) * (1 + C * mu * t), rel=1e-14)
    for eps in (1e-3, 1e-6, 1e-8, 1e-11):
        for lam in (lam_balanced * (1 - eps), lam_balanced * (1 + eps)):
            near = theory.mmc_response_sf(t, lam, mu, c)
            # |d sf / d lam| is O(1 + t^2) here; allow that times eps.
            assert near == pytest.approx(at, rel=10 * eps * (1 + t * t), abs=1e-300)


def test_sf_general_form_matches_brief_formula():
    # Away from a == c-1 the stable evaluation equals the textbook expression.
    for lam, mu, c in [(3.5, 1.0, 4), (6.4, 1.0, 8), (0.8, 1.0, 1), (1.0, 1.0, 4)]:
        a, C = lam / mu, theory.erlang_c(c, lam / mu)
        theta = c * mu - lam
        k = C / (c - 1 - a)
        for t in (0.0, 0.5, 2.0, 10.0):
            expected = (1 + k) * math.exp(-mu * t) - k * math.exp(-theta * t)
            assert theory.mmc_response_sf(t, lam, mu, c) == pytest.approx(expected, rel=1e-12)


def test_sf_far_tail_does_not_vanish_early():
    # rho -> 1: T ~ C Exp(theta) with theta tiny; e^{-mu t} alone underflows at t ~ 745.
    lam, mu, c = 3.999, 1.0, 4
    C, theta = theory.erlang_c(c, lam / mu), c * mu - lam
    t = 2000.0
    expected = C * math.exp(-theta * t) / (1 - theta / mu)  # the e^{-mu t} term is 0
    assert theory.mmc_response_sf(t, lam, mu, c) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- sf integrates to the mean


@pytest.mark.parametrize("lam, mu, c", [(0.8, 1.0, 1), (3.5, 1.0, 4), (3.0, 1.0, 4), (6.4, 1.0, 8), (12.0, 5.0, 3), (0.5, 2.0, 2)])
def test_sf_integrates_to_mean(lam, mu, c):
    # E[T] = integral_0^inf P(T > t) dt.
    area, error = quad(lambda t: theory.mmc_response_sf(t, lam, mu, c), 0.0, math.inf, epsabs=1e-12, epsrel=1e-11, limit=200)
    assert area == pytest.approx(theory.mmc_response_mean(lam, mu, c), rel=1e-8)


def test_sf_endpoints_and_monotone():
    lam, mu, c = 3.5, 1.0, 4
    assert theory.mmc_response_sf(0.0, lam, mu, c) == 1.0
    values = [theory.mmc_response_sf(t / 10, lam, mu, c) for t in range(0, 500)]
    assert all(b < a for a, b in zip(values, values[1:]))
    assert theory.mmc_response_sf(1e4, lam, mu, c) < 1e-100


# ---------------------------------------------------------------- M/M/c/K


@pytest.mark.parametrize("c", [1, 2, 5, 10])
@pytest.mark.parametrize("a", [0.3, 1.8, 9.0, 25.0])
def test_mmck_with_k_equal_c_is_erlang_b(c, a):
    expected = naive_erlang_b(c, a)
    assert theory.mmck_blocking(a, 1.0, c, c) == pytest.approx(expected, rel=1e-11)
    assert theory.mmck_blocking(a, 1.0, c, c) == pytest.approx(theory.erlang_b(c, a), rel=1e-11)


@pytest.mark.parametrize("lam, mu, c, K", [(1.8, 1.0, 2, 5), (0.8, 1.0, 1, 10), (5.0, 1.0, 3, 8), (1.0, 1.0, 1, 4), (2.0, 1.0, 2, 6)])
def test_mmck_matches_naive(lam, mu, c, K):
    assert theory.mmck_blocking(lam, mu, c, K) == pytest.approx(naive_mmck_blocking(lam, mu, c, K), rel=1e-11)


def test_mmck_special_cases():
    # M/M/1/K at rho = 1: every state equally likely, blocking 1/(K+1).
    assert theory.mmck_blocking(1.0, 1.0, 1, 4) == pytest.approx(1 / 5, rel=1e-13)
    # M/M/1/K: (1 - rho) rho^K / (1 - rho^(K+1)).
    rho, K = 0.8, 10
    assert theory.mmck_blocking(rho, 1.0, 1, K) == pytest.approx((1 - rho) * rho**K / (1 - rho ** (K + 1)), rel=1e-12)
    # Overload: blocking tends to 1 - 1/rho as K grows.
    assert theory.mmck_blocking(20.0, 1.0, 10, 5000) == pytest.approx(1 - 1 / 2.0, rel=1e-9)
    # Large K below saturation: blocking -> 0 and stays finite (no overflow).
    value = theory.mmck_blocking(1.8, 1.0, 2, 100_000)
    assert 0.0 <= value < 1e-300


def test_mmck_large_c_stable():
    value = theory.mmck_blocking(900.0, 1.0, 1000, 1200)
    assert 0.0 <= value < 1e-6
    # Erlang B at a = c: about sqrt(2 / (pi c)) for large c.
    assert theory.mmck_blocking(1000.0, 1.0, 1000, 1000) == pytest.approx(math.sqrt(2 / (math.pi * 1000)), rel=0.03)


# ---------------------------------------------------------------- M/G/1


def test_pollaczek_khinchine():
    lam, mean = 0.8, 1.0
    # Exponential service: E[S^2] = 2/mu^2, equals the M/M/1 wait.
    assert theory.mg1_wait_mean(lam, mean, 2 * mean**2) == pytest.approx(theory.mmc_wait_mean(lam, 1 / mean, 1), rel=1e-12)
    # Deterministic service (M/D/1): half the M/M/1 wait.
    assert theory.mg1_wait_mean(lam, mean, mean**2) == pytest.approx(theory.mmc_wait_mean(lam, 1 / mean, 1) / 2, rel=1e-12)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: theory.erlang_c(4, 4.0), "a"),
        (lambda: theory.erlang_c(4, 5.0), "a"),
        (lambda: theory.mmc_wait_mean(1.0, 1.0, 1), "lam"),
        (lambda: theory.mmc_response_mean(8.5, 1.0, 8), "lam"),
        (lambda: theory.mmc_response_sf(1.0, 4.0, 1.0, 4), "lam"),
        (lambda: theory.mmc_response_percentile(0.95, 4.1, 1.0, 4), "lam"),
        (lambda: theory.mg1_wait_mean(1.0, 1.0, 2.0), "lam"),
        (lambda: theory.mmc_wait_mean(0.5, 0.0, 1), "mu"),
        (lambda: theory.mmc_wait_mean(0.5, 1.0, 0), "c"),
        (lambda: theory.mmc_wait_mean(0.5, 1.0, 1.5), "c"),
        (lambda: theory.mmck_blocking(1.0, 1.0, 3, 2), "K"),
        (lambda: theory.mmc_response_percentile(1.0, 0.5, 1.0, 1), "p"),
        (lambda: theory.mmc_response_percentile(0.0, 0.5, 1.0, 1), "p"),
        (lambda: theory.mg1_wait_mean(0.5, 1.0, 0.5), "second_moment_s"),
    ],
)
def test_invalid_parameters_name_the_parameter(call, name):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(f"{name}: ")
