"""The simulator against queueing theory (simrouter.theory).

With no limiter, no breaker, no failures and no router timeout, an open Poisson
workload into ``capacity`` FIFO slots with exponential service is exactly M/M/c
(``queue_limit`` large) or M/M/c/K (``queue_limit = K - c``). Each check:

* runs R independent replications (``replication=0..R-1``: independent random
  streams), takes ONE estimate per replication (the run's mean, P95 or P99 of
  response time, or its blocking fraction), so the R estimates are i.i.d.;
* builds the two-sided 99.9 % Student-t interval across them (``scipy.stats.t``,
  R - 1 degrees of freedom);
* asserts the closed-form value lies inside, widened only by the stated
  estimator-bias allowance below.

Why the estimates are close to i.i.d. normal: each replication averages over
tens of thousands of requests, i.e. hundreds of busy cycles, so the run's
mean (or quantile, or fraction) is close to normal; across replications they are
independent by construction. The t-interval then covers the true expectation
of the estimator with probability 0.999, so a correct simulator fails a given
assertion with probability about 1e-3 for a fresh seed. Checked by resampling
groups of 20 from 400 (M/M/1) and 200 (M/M/8) replications: false-alarm rate
1.1-1.3e-3 for the means (slightly above nominal: the per-run means are a
little right-skewed), <= 6e-4 for the percentiles with the allowance below,
even with their extrapolated bias. Union bound over the 7 assertions: < 1e-2
for the whole file. The file's seed is fixed, so a run is deterministic; set
SIMROUTER_QUEUEING_SEED to sweep seeds (seeds 1-10 and 2024 were checked when
the file was written: every check and every negative control green).

Estimator bias, and the only widening used:

* The per-run mean is unbiased once the warm-up has removed the empty-start
  transient (below), so the mean checks use no widening at all.
* A sample quantile of n observations is biased by O(1/n). For i.i.d. samples
  the bias of the P99 here would be ~0.03 %; the positive correlation of
  successive response times in a queue inflates it (n is effectively smaller),
  and it is negative for a high quantile (a run's worst busy periods are under-
  represented). Measured while writing this file (grand mean of the per-run
  estimates minus theory, +/- one standard error):

      M/M/1 P99, runs 25x shorter (n ~ 1.6k):  -12.2 % +/- 0.6 %   (2000 runs)
      M/M/1 P99, runs  5x shorter (n ~ 8k):     -1.9 % +/- 0.6 %   (1000 runs)
      M/M/1 P99, the length used (n ~ 39k):     +0.3 % +/- 0.5 %   (400 runs)
      M/M/8 P99, runs 20x shorter (n ~ 2.6k):   -1.7 % +/- 0.2 %   (2000 runs)
      M/M/8 P99, about the length used:         -0.1 % +/- 0.2 %   (200 runs)
      (P95: smaller; -1.0 % +/- 0.2 % for M/M/8 20x shorter, within noise otherwise)

  The bias scales like 1/n, which extrapolates to about -0.4 % for the M/M/1
  P99 and -0.1 % for the M/M/8 P99 at the lengths used. The percentile checks
  therefore widen the interval by PERCENTILE_BIAS_TOL = 1 % of the theoretical
  value on each side: about twice the worst extrapolated bias, yet small
  against the interval half-widths (about 2 % for M/M/8, 5-11 % for M/M/1), so
  the checks keep their power (see the negative controls at the end).

Warm-up: the queue starts empty, which biases early response times low. The
transient decays like e^{-t/tau} with the relaxation time of the birth-death
chain, tau = 1 / (sqrt(lambda) - sqrt(c mu))^2 for M/M/c (89.7 s for M/M/1 at
rho 0.8, 11.2 s for M/M/8 at rho 0.8) and 1 / spectral gap = 1.7 s for the
6-state M/M/2/5 chain. Each warm-up is 11-30 tau, leaving a transient below
e^{-11} ~ 2e-5 of its initial size: negligible. Requests sent after the warm-up
are measured; the engine answers every admitted request before returning, so
the last requests' long responses are not censored.

Cost (measured on a 2-core machine, pytest --durations=0): about 2.0 s for
M/M/1, 2.6 s for M/M/8, 1.8 s for M/M/2/5 (each case is simulated once and
cached for all its checks); the file runs in about 7 s. Under pytest-xdist run
with --dist loadgroup to keep the cache in one worker (xdist_group below).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

import simrouter
from simrouter import (
    BackendConfig,
    BreakerConfig,
    Exponential,
    Failures,
    LimiterConfig,
    RouterConfig,
    Scenario,
    WorkloadConfig,
)
from simrouter import theory

SEED = int(os.environ.get("SIMROUTER_QUEUEING_SEED", "2024"))
LEVEL = 0.999  # two-sided confidence level of every interval
PERCENTILE_BIAS_TOL = 0.01  # relative allowance for sample-quantile bias (see above)
UNLIMITED_QUEUE = 10**9

pytestmark = pytest.mark.xdist_group("queueing_model")


@dataclass(frozen=True)
class Case:
    id: str  # the test id
    name: str
    lam: float  # arrivals per second
    mu: float  # services per second per slot
    c: int  # slots (backend.capacity)
    K: int | None  # places in the system (None: unlimited queue, M/M/c)
    duration: float  # seconds of arrivals per replication
    warmup: float  # seconds; requests sent earlier are not measured
    replications: int

    def scenario(self) -> Scenario:
        queue_limit = UNLIMITED_QUEUE if self.K is None else self.K - self.c
        return Scenario(
            name=self.name,
            duration=self.duration,
            warmup=self.warmup,
            workload=WorkloadConfig(model="open", rate=self.lam, arrival="poisson", users=1),
            limiter=LimiterConfig(algorithm="none"),
            breaker=BreakerConfig(preset="none"),
            backend=BackendConfig(
                capacity=self.c,
                queue_limit=queue_limit,
                latency=Exponential(1.0 / self.mu),
                failures=Failures(0, 0, 0),
            ),
            router=RouterConfig(timeout=math.inf),
        )


# Each replication measures ~36k-50k requests. R = 20 gives t(0.9995, 19) = 3.88
# (normal: 3.29) and interval half-widths of about 2 % (M/M/8 mean, P95, P99;
# M/M/2/5 blocking) and 5 %, 7 %, 11 % (M/M/1 mean, P95, P99): tight enough that
# the negative controls fall outside by a wide margin. Splitting the same budget
# into more, shorter runs buys no precision and raises the quantile bias (it
# grows like 1/n, see above); fewer, longer runs widen t fast (R = 10: 4.78).
MM1 = Case("mm1", "M/M/1 rho=0.8", lam=0.8, mu=1.0, c=1, K=None, duration=50_000.0, warmup=1_000.0, replications=20)
MM8 = Case("mm8", "M/M/8 rho=0.8", lam=6.4, mu=1.0, c=8, K=None, duration=8_000.0, warmup=200.0, replications=20)
MM2K5 = Case("mm2k5", "M/M/2/5 rho=0.9", lam=1.8, mu=1.0, c=2, K=5, duration=20_000.0, warmup=50.0, replications=20)


@functools.cache
def estimates(case: Case) -> dict[str, np.ndarray]:
    """One estimate per replication: mean, p95, p99 (seconds) and blocking."""
    rows = []
    for replication in range(case.replications):
        summary = simrouter.simulate(case.scenario(), seed=SEED, replication=replication).summary
        latency_ms, requests = summary["latency_ms"], summary["requests"]
        rows.append(
            (
                latency_ms["avg"] / 1000.0,
                latency_ms["p95"] / 1000.0,
                latency_ms["p99"] / 1000.0,
                requests["queue_full"] / requests["sent"],
            )
        )
    columns = np.array(rows).T
    return dict(zip(("mean", "p95", "p99", "blocking"), columns))


def t_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Two-sided Student-t confidence interval for the mean of i.i.d. samples."""
    n = samples.size
    half = stats.t.ppf(0.5 + level / 2.0, n - 1) * samples.std(ddof=1) / math.sqrt(n)
    centre = float(samples.mean())
    return centre - half, centre + half


def theory_value(case: Case, statistic: str, lam: float | None = None, K: int | None = None) -> float:
    lam = case.lam if lam is None else lam
    if statistic == "mean":
        return theory.mmc_response_mean(lam, case.mu, case.c)
    if statistic in ("p95", "p99"):
        return theory.mmc_response_percentile(int(statistic[1:]) / 100.0, lam, case.mu, case.c)
    if statistic == "blocking":
        return theory.mmck_blocking(lam, case.mu, case.c, case.K if K is None else K)
    raise ValueError(statistic)


def widening(statistic: str, expected: float) -> float:
    """Absolute allowance for a known estimator bias (means and fractions: none)."""
    return PERCENTILE_BIAS_TOL * expected if statistic in ("p95", "p99") else 0.0


def covers(case: Case, statistic: str, expected: float) -> tuple[bool, str]:
    low, high = t_interval(estimates(case)[statistic])
    slack = widening(statistic, expected)
    inside = low - slack <= expected <= high + slack
    message = (
        f"{case.name} {statistic}: theory {expected:.5g} vs {LEVEL:.1%} CI [{low:.5g}, {high:.5g}] "
        f"(+/- {slack:.3g} bias allowance) over {case.replications} replications, seed {SEED}"
    )
    return inside, message


# ---------------------------------------------------------------- the checks


@pytest.mark.parametrize(
    "case, statistic",
    [
        (MM1, "mean"),
        (MM1, "p95"),
        (MM1, "p99"),
        (MM8, "mean"),
        (MM8, "p95"),
        (MM8, "p99"),
        (MM2K5, "blocking"),
    ],
    ids=lambda v: v.id if isinstance(v, Case) else v,
)
def test_simulation_matches_theory(case, statistic):
    inside, message = covers(case, statistic, theory_value(case, statistic))
    assert inside, message


def test_mm1_is_not_blocked_and_mmck_is():
    # The M/M/c cases really have an unlimited queue; the M/M/c/K one really blocks.
    assert not estimates(MM1)["blocking"].any() and not estimates(MM8)["blocking"].any()
    assert estimates(MM2K5)["blocking"].min() > 0.1


# ---------------------------------------------------------------- negative controls: the checks have power


@pytest.mark.parametrize(
    "case, statistic, wrong",
    [
        (MM1, "mean", {"lam": MM1.lam * 1.1}),  # E[T] 8.33 instead of 5
        (MM1, "p99", {"lam": MM1.lam * 1.1}),  # 38.4 instead of 23.0
        (MM8, "mean", {"lam": MM8.lam * 1.05}),  # 1.428 instead of 1.286
        (MM8, "p99", {"lam": MM8.lam * 1.05}),  # 5.54 instead of 5.15
        (MM2K5, "blocking", {"K": MM2K5.K - 1}),  # an off-by-one in queue_limit: 0.182
        (MM2K5, "blocking", {"K": MM2K5.K + 1}),  # the other way: 0.113 instead of 0.141
    ],
    ids=lambda v: v.id if isinstance(v, Case) else (v if isinstance(v, str) else "-".join(f"{k}={x:g}" for k, x in v.items())),
)
def test_wrong_theory_is_rejected(case, statistic, wrong):
    inside, message = covers(case, statistic, theory_value(case, statistic, **wrong))
    assert not inside, f"the check cannot tell a wrong model ({wrong}) apart: {message}"
