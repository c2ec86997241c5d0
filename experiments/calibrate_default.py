"""Calibrate the latency model of simrouter's embedded default backend.

Goal
----
Pick a backend (``c`` parallel slots, unbounded FIFO queue, i.i.d. service
times) whose response-time distribution reproduces the original system's
dashboard when driven the way that dashboard was produced: a closed loop of
``N_USERS = 10`` users with zero think time, each sending requests back to
back.  Targets (``TARGET``): P50 45.2 ms, P90 89.3 ms, P95 125.7 ms,
P99 234.1 ms, mean 67.8 ms, throughput ~150 rps (the dashboard showed 156.3,
but by Little's law a closed loop with zero think time has
mean response = N / throughput, so a 67.8 ms mean implies ~147.5 rps; the
throughput is therefore not fitted, only checked to lie in 140-160 rps).

Simulation
----------
With ``c < N`` every slot is always busy, so the departure process is the
superposition of ``c`` independent renewal processes.  Drawing each slot's
service times as its own i.i.d. sequence is distributionally identical to
drawing one per request, and it makes the whole run vectorisable:

* departure times ``D`` = sorted cumulative sums of every slot's sequence;
* the j-th request (in FIFO order) starts at ``D[j - c]`` (0 for j < c) and
  arrives at ``D[j - N]`` (0 for j < N): a user re-enters the queue the
  instant its previous request completes;
* response = start - arrival + service.

For ``c >= N`` nobody ever waits, so response = service and every
``c`` in 10..16 gives the same result (shown as one row).  ``reference_run``
is a plain heapq event loop over the same per-slot draws; the script checks
once that both give identical response times.  Only requests completed before
the first slot runs out of draws are kept, and the first ``WARMUP`` requests
are discarded.

Fitting
-------
The system is scale-equivariant: multiplying every service time by ``k``
multiplies every response time by ``k`` (and divides throughput by ``k``).
So for each family only the *shape* parameters are searched; for a given
shape the run is simulated at unit scale and the scale is profiled out in
closed form (the least-squares log-scale is the mean log-ratio of target to
simulated figure).  The objective is the sum of squared log-ratios of the five
figures (P50, P90, P95, P99, mean) after that rescaling.  Common random
numbers (fixed standard-normal / uniform draws, transformed by the shape
parameters) make the objective deterministic.  One-shape families use a
bounded scalar search; the mixture uses multi-start Nelder-Mead.

Families (all in seconds):

* ``lognormal(p50, p99)``: sigma = ln(p99 / p50) / 2.3263 (the config schema's
  ``latency = { dist = "lognormal", p50 = ..., p99 = ... }``);
* ``gamma(mean, cv)``;
* ``mixture``: with probability ``w`` a "slow" lognormal, otherwise a "body"
  lognormal; both share one sigma (the slow mode is the body scaled by a
  factor), so each is a plain ``p50``/``p99`` lognormal with the same
  p99/p50 ratio.  Only tried because the simple families cannot reach the
  targets.  (Freeing the slow sigma buys almost nothing: it is barely
  identified by five figures and it makes the fit chase sampling noise.)

The P99 of the mixture is very sensitive to ``w`` (w is just under 1 %), so
the fitting draws choose the slow requests by stratification (exactly
``round(w * n)`` of them) rather than by independent coin flips, which would
let the optimiser tune ``w`` to one realisation's count.

Every best fit is then re-simulated with independent validation seeds, and
the reported figures come from that re-simulation.  Acceptance: all five
figures within 10 % of target and throughput in 140-160 rps.  The chosen
model is the simplest passing one: simplest family first (lognormal, then
gamma, then mixture), then the simplest system, i.e. the largest ``c``
(``c >= 10``: no queueing, response = service).  Fit quality is not used to
rank passing fits: when the whole calibration is repeated with other seeds,
the worst error of one ``c`` moves by up to ~2 percentage points, which is
as large as the differences between slot counts.  For a no-queueing choice
the figures are also computed exactly from the service distribution
(``EXACT``), free of simulation noise.

Outcome (as committed)
----------------------
No lognormal or gamma fit, for any ``c`` in 4..16, gets all five figures
within 10 %: the best is lognormal with c=4 (P90 +12 %, mean -13 %,
~170 rps).  The dashboard's body is narrow (P90/P50 = 1.98) while its tail is
long (P99/P50 = 5.2), and its mean is well above what those quantiles imply
for a light tail: in the fitted mixtures 0.5-0.8 % of requests average about
2 s.  The shared-sigma mixture gets every figure within 5-7 % for every
``c`` from 6 up (4 seed sets tried), at ~148 rps; P90 (~+5 %) and P95
(~-5 %) are the residual misfit.  The five figures do not pin ``c`` down
(see the table), so the no-queueing mixture (``c >= 10``) is chosen.

Run: ``python experiments/calibrate_default.py`` (about a minute on 2 idle
cores; the (family, c) fits run in ``--workers`` processes, default 2, and give
the same results however many there are). ``--quick`` (what the tests run, a
few seconds) shrinks everything (``QUICK``): 3 slot counts, ~20k requests per
fit, one validation seed, short searches; its figures are noisy and only show
that the pipeline works, not the calibration.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special

N_USERS = 10
C_VALUES = range(4, 17)
WARMUP = 1000                      # requests discarded at the start of a run
Z99 = 2.3263478740408408           # standard-normal 0.99 quantile

FIGURES = ("p50", "p90", "p95", "p99", "mean")
TARGET = np.array([45.2, 89.3, 125.7, 234.1, 67.8]) / 1000.0   # seconds
DASHBOARD_RPS = 156.3
RPS_RANGE = (140.0, 160.0)
TOLERANCE = 0.10

# 2520 = lcm(1..10): every slot count gets equally long per-slot sequences.
N_FIT = 2520 * 96                  # ~242k requests per fitting run
N_VALIDATE = 2520 * 160            # ~403k requests per validation seed
FIT_SEED = 20240601
VALIDATION_SEEDS = (101, 202, 303)
WORKERS = 2                        # processes for the (family, c) fits
MAXFEV = 250                       # Nelder-Mead evaluations per start (mixture)


@dataclass(frozen=True)
class Sizes:
    """How much work one calibration does (``FULL``, or ``QUICK`` for tests)."""
    c_values: tuple
    n_fit: int
    n_validate: int
    validation_seeds: tuple
    maxfev: int
    starts: int | None = None      # mixture starts used (None: all)


FULL = Sizes(tuple(C_VALUES), N_FIT, N_VALIDATE, VALIDATION_SEEDS, MAXFEV)
QUICK = Sizes((4, 7, N_USERS), 2520 * 8, 2520 * 16, VALIDATION_SEEDS[:1], 40, starts=1)


# --------------------------------------------------------------------------
# Simulation of the closed loop
# --------------------------------------------------------------------------

def simulate(service: np.ndarray, c: int, n_users: int = N_USERS):
    """Closed loop, ``n_users`` users, zero think time, ``c`` FIFO slots.

    ``service`` is a flat array of i.i.d. service times, split into one
    sequence per slot.  Returns (start, completion, response) times, one entry
    per request in FIFO order, and the horizon (the time the first slot runs
    out of draws; later completions are incomplete and must be ignored).
    """
    c = min(c, n_users)                      # extra slots are never used
    per_slot = service[: service.size // c * c].reshape(c, -1)
    finish = np.cumsum(per_slot, axis=1)
    horizon = finish[:, -1].min()

    # Every completion except a slot's last one starts that slot's next job.
    done = finish[:, :-1].ravel()
    order = np.argsort(done, kind="stable")
    departures = done[order]
    next_service = per_slot[:, 1:].ravel()[order]

    start = np.concatenate([np.zeros(c), departures])
    svc = np.concatenate([per_slot[:, 0], next_service])
    arrival = np.zeros_like(start)
    arrival[n_users:] = departures[: start.size - n_users]
    completion = start + svc
    return start, completion, completion - arrival, horizon


def reference_run(service: np.ndarray, c: int, n_users: int = N_USERS):
    """Event-by-event heapq version of ``simulate`` (same per-slot draws)."""
    c = min(c, n_users)
    per_slot = service[: service.size // c * c].reshape(c, -1)
    next_idx = [0] * c
    free = [(0.0, s) for s in range(c)]           # (time slot frees, slot)
    waiting = [0.0] * n_users                     # FIFO of arrival times
    head = 0
    responses = []
    while True:
        t, s = heapq.heappop(free)
        if next_idx[s] == per_slot.shape[1]:
            break
        arrived = waiting[head]
        head += 1
        begin = max(t, arrived)
        end = begin + per_slot[s, next_idx[s]]
        next_idx[s] += 1
        responses.append(end - arrived)
        heapq.heappush(free, (end, s))
        # The user re-queues at ``end``; keep the FIFO sorted by arrival.
        # Completions are not generated in time order, so insert in place.
        i = len(waiting)
        waiting.append(end)
        while i > head and waiting[i - 1] > end:
            waiting[i], i = waiting[i - 1], i - 1
        waiting[i] = end
    return np.array(responses)


def dashboard(resp: np.ndarray) -> np.ndarray:
    """The five dashboard figures (P50, P90, P95, P99, mean) of responses."""
    return np.r_[np.percentile(resp, [50, 90, 95, 99]), resp.mean()]


def measure(service: np.ndarray, c: int):
    """One run: kept response times, completions counted, time span.

    Kept = requests after the warm-up that completed before the horizon;
    throughput = completions in (warm-up start, horizon] / that span.
    """
    start, completion, resp, horizon = simulate(service, c)
    t_warm = start[WARMUP]
    keep = completion <= horizon
    keep[:WARMUP] = False
    done = np.count_nonzero((completion > t_warm) & (completion <= horizon))
    return resp[keep], done, horizon - t_warm


def measure_pooled(services, c):
    """Figures and throughput from several independent runs pooled."""
    runs = [measure(svc, c) for svc in services]
    resp = np.concatenate([r[0] for r in runs])
    rps = sum(r[1] for r in runs) / sum(r[2] for r in runs)
    return dashboard(resp), rps


# --------------------------------------------------------------------------
# Service-time families (unit scale; the scale is profiled out)
# --------------------------------------------------------------------------

@dataclass
class Draws:
    """Common random numbers shared by every parameter value."""
    z: np.ndarray       # standard normals (lognormal components)
    u: np.ndarray       # uniforms (gamma quantiles)
    pick: np.ndarray    # uniforms (mixture component choice)

    @classmethod
    def make(cls, n: int, seed: int, stratified: bool = False) -> "Draws":
        """``stratified``: ``pick`` is a shuffled grid (exact mixture shares)."""
        rng = np.random.default_rng(seed)
        z, u = rng.standard_normal(n), rng.random(n)
        pick = (rng.permutation(n) + 0.5) / n if stratified else rng.random(n)
        return cls(z, u, pick)


@dataclass
class Family:
    name: str
    unit_sample: Callable[[np.ndarray, Draws], np.ndarray]
    describe: Callable[[np.ndarray, float], str]
    bounds: tuple | None = None           # 1 shape parameter: bounded search
    starts: tuple = ()                    # >1 shape parameters: Nelder-Mead


def _lognormal(theta, d):
    return np.exp(theta[0] * d.z)


def _describe_lognormal(theta, scale):
    return f"p50={scale:.4g} p99={scale * np.exp(Z99 * theta[0]):.4g}"


def _gamma(theta, d):
    k = 1.0 / theta[0] ** 2
    return special.gammaincinv(k, d.u) / k            # mean 1


def _describe_gamma(theta, scale):
    return f"mean={scale:.4g} cv={theta[0]:.4g}"


def _mixture(theta, d):
    sigma, logit_w, log_ratio = theta
    slow = d.pick < special.expit(logit_w)
    return np.exp(sigma * d.z + np.where(slow, log_ratio, 0.0))


def _describe_mixture(theta, scale):
    sigma, logit_w, log_ratio = theta
    slow = scale * np.exp(log_ratio)
    spread = np.exp(Z99 * sigma)
    return (f"w_slow={special.expit(logit_w):.4g} "
            f"body(p50={scale:.4g} p99={scale * spread:.4g}) "
            f"slow(p50={slow:.4g} p99={slow * spread:.4g})")


FAMILIES = (
    Family("lognormal", _lognormal, _describe_lognormal, bounds=(0.05, 2.5)),
    Family("gamma", _gamma, _describe_gamma, bounds=(0.1, 3.0)),
    # theta = (sigma, logit w_slow, ln(slow p50 / body p50))
    Family("mixture", _mixture, _describe_mixture,
           starts=((0.6, -4.8, 3.5), (0.9, -4.8, 3.5), (1.2, -4.5, 3.0))),
)


def _exact_mixture(theta, scale):
    """Exact figures of the mixture service distribution (= response, c >= N)."""
    sigma, logit_w, log_ratio = theta
    w, mu = special.expit(logit_w), np.log(scale)

    def cdf(x):
        z = (np.log(x) - mu) / sigma
        return (1 - w) * special.ndtr(z) + w * special.ndtr(z - log_ratio / sigma)

    quantiles = [optimize.brentq(lambda x: cdf(x) - q, 1e-9, 1e6, xtol=1e-12)
                 for q in (0.5, 0.9, 0.95, 0.99)]
    mean = scale * np.exp(sigma ** 2 / 2) * (1 - w + w * np.exp(log_ratio))
    return np.r_[quantiles, mean]


def _exact_lognormal(theta, scale):
    return _exact_mixture((theta[0], -np.inf, 0.0), scale)


# Closed-form figures for the no-queueing case, where response = service.
EXACT = {"lognormal": _exact_lognormal, "mixture": _exact_mixture}


# --------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------

def profiled(figs: np.ndarray):
    """Best log-scale for unit-scale figures, and the remaining loss."""
    log_ratio = np.log(TARGET / figs)
    log_scale = log_ratio.mean()
    return np.exp(log_scale), float(np.sum((log_ratio - log_scale) ** 2))


def fit(family: Family, c: int, draws: Draws, maxfev: int = MAXFEV, starts: int | None = None):
    """Best (shape, scale) of ``family`` for ``c`` slots on fixed draws
    (``starts``: how many of the mixture's starting points; None: all)."""
    def loss(theta):
        resp, *_ = measure(family.unit_sample(np.atleast_1d(theta), draws), c)
        return profiled(dashboard(resp))[1]

    if family.bounds is not None:
        res = optimize.minimize_scalar(loss, bounds=family.bounds,
                                       method="bounded",
                                       options={"xatol": 1e-4})
        theta = np.atleast_1d(res.x)
    else:
        runs = [optimize.minimize(loss, x0, method="Nelder-Mead",
                                  options={"maxfev": maxfev, "xatol": 1e-3,
                                           "fatol": 1e-7})
                for x0 in family.starts[:starts]]
        theta = min(runs, key=lambda r: r.fun).x
    resp, *_ = measure(family.unit_sample(theta, draws), c)
    scale, _ = profiled(dashboard(resp))
    return theta, scale


@functools.lru_cache(maxsize=None)
def fitting_draws(stratified: bool, n: int = N_FIT) -> Draws:
    """The fitting draws, built once per worker process."""
    return Draws.make(n, FIT_SEED + int(stratified), stratified)


def fit_case(family_name: str, c: int, sizes: Sizes = FULL):
    """One (family, c) fit; a top-level function so worker processes can run it."""
    family = next(f for f in FAMILIES if f.name == family_name)
    # Multi-shape searches use stratified mixture picks (see module docstring).
    draws = fitting_draws(stratified=bool(family.starts), n=sizes.n_fit)
    return fit(family, c, draws, sizes.maxfev, sizes.starts)


@dataclass
class Result:
    family: str
    c: int
    c_label: str
    params: str
    figs: np.ndarray
    rps: float

    @property
    def rel_err(self):
        return self.figs / TARGET - 1.0

    @property
    def worst(self):
        return float(np.max(np.abs(self.rel_err)))

    @property
    def passes(self):
        return self.worst <= TOLERANCE and RPS_RANGE[0] <= self.rps <= RPS_RANGE[1]


def validate(family, theta, scale, c, validation_draws, label):
    services = [scale * family.unit_sample(theta, d) for d in validation_draws]
    figs, rps = measure_pooled(services, c)
    return Result(family.name, c, label, family.describe(theta, scale),
                  figs, rps)


def print_table(results):
    head = " ".join(f"{f:>14s}" for f in FIGURES)
    print(f"{'family':<10s}{'c':>6s} {head} {'rps':>7s} {'worst':>7s}  ok  params (s)")
    for r in results:
        cells = " ".join(f"{1e3 * v:7.1f}({100 * e:+5.1f}%)"
                         for v, e in zip(r.figs, r.rel_err))
        ok = "yes" if r.passes else " no"
        print(f"{r.family:<10s}{r.c_label:>6s} {cells} {r.rps:7.1f} "
              f"{100 * r.worst:6.1f}% {ok}  {r.params}")


def format_figures(label, figs):
    return f"  {label:>9s}: " + ", ".join(
        f"{f} {1e3 * v:.2f} ms ({100 * e:+.2f}%)"
        for f, v, e in zip(FIGURES, figs, figs / TARGET - 1.0))


def self_check():
    """The vectorised simulator equals the event loop on the same draws."""
    rng = np.random.default_rng(7)
    service = rng.lognormal(np.log(0.03), 1.0, size=2520 * 4)
    for c in (4, 7, 10, 12):
        fast = simulate(service, c)[2]
        slow = reference_run(service, c)       # stops at the first exhausted slot
        assert slow.size > 0.8 * service.size
        assert np.allclose(fast[: slow.size], slow), f"simulator mismatch, c={c}"


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description="Calibrate the embedded default backend's latency model.")
    parser.add_argument("--quick", action="store_true", help="a tiny calibration (seconds; used by the tests), not the real one")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"worker processes for the fits (default {WORKERS})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    self_check()
    validation_draws = [Draws.make(sizes.n_validate, s) for s in sizes.validation_seeds]

    # c >= N_USERS never queues, so those c values share one fit.
    cases = [(c, str(c)) for c in sizes.c_values if c < N_USERS]
    cases.append((N_USERS, f"{N_USERS}-{max(C_VALUES)}"))

    results, fitted = [], {}
    stages = (FAMILIES[:2], FAMILIES[2:])     # simple families, then mixture
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for stage in stages:
            if any(r.passes for r in results):
                break                         # a simpler family already fits
            jobs = [(family, c, label) for family in stage for c, label in cases]
            fits = pool.map(fit_case, [f.name for f, _, _ in jobs],
                            [c for _, c, _ in jobs], [sizes] * len(jobs))
            for (family, c, label), (theta, scale) in zip(jobs, fits):
                fitted[family.name, c] = theta, scale
                results.append(validate(family, theta, scale, c,
                                        validation_draws, label))

    print("Targets: " + ", ".join(f"{f} {1e3 * t:.1f} ms"
                                   for f, t in zip(FIGURES, TARGET))
          + f"; throughput {RPS_RANGE[0]:.0f}-{RPS_RANGE[1]:.0f} rps "
          f"(dashboard {DASHBOARD_RPS}, Little's law {N_USERS / TARGET[-1]:.1f})")
    print(f"Figures: ms (relative error vs target), pooled over "
          f"{len(sizes.validation_seeds)} validation seeds x {sizes.n_validate} requests"
          + (" (--quick: not the calibration)" if args.quick else "") + "\n")
    print_table(results)

    simple = [r for r in results if r.family != "mixture"]
    best_simple = min(simple, key=lambda r: r.worst)
    print(f"\nBest simple fit: {best_simple.family} c={best_simple.c_label}, "
          f"worst error {100 * best_simple.worst:.1f}%")

    rank = [f.name for f in FAMILIES]
    passing = [r for r in results if r.passes]
    if not passing:
        print("\nNo model meets the 10% / 140-160 rps criteria.")
    else:
        chosen = min(passing, key=lambda r: (rank.index(r.family), -r.c))
        print(f"\nChosen: {chosen.family}, c={chosen.c_label}: {chosen.params}")
        print(format_figures("simulated", chosen.figs)
              + f", throughput {chosen.rps:.1f} rps")
        if chosen.c >= N_USERS and chosen.family in EXACT:
            figs = EXACT[chosen.family](*fitted[chosen.family, chosen.c])
            print(format_figures("exact", figs)
                  + f", throughput {N_USERS / figs[-1]:.1f} rps")
    print(f"\nRuntime {time.perf_counter() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
