"""Warm-up deletion by MSER-5: ``warmup = "auto"``.

A simulated router starts empty and idle, so its first answers are faster than
in steady state. MSER-5 (White 1997; Hoad, Robinson & Davies 2011) picks how
much of the start to delete from the output series itself:

1. batch the series, in order, into means of 5: ``Z_1 .. Z_k``;
2. for each truncation ``d`` (batches deleted) compute the marginal standard
   error of what is left, ``MSER(d) = sum_{i>d} (Z_i - mean(Z_{d+1..k}))^2 / (k-d)^2``;
3. delete ``d*`` = the ``d`` that minimises it, searching ``d <= k/2`` only.

A minimum on the boundary ``d* = k/2`` means the statistic was still falling:
the run is too short to show where the transient ends, and the choice is
reported as *not reliable* (make the run longer). The search stops at ``k/2``
rather than ``k - 2`` because MSER(d) collapses spuriously when only a few
batches remain.

**Never into a fault or a stage change.** MSER sees a fault window or a change
of the workload's rate as "transient" and would happily delete it (and with it
the very thing the run is about). The cut is therefore capped at
``warmup_cap(scenario)``: the first fault's start or the first boundary between
workload stages, whichever is earlier. When MSER's unrestricted minimum lies
beyond the cap, the cut stops at the cap, the record says so in ``capped_by``
(e.g. ``"fault 0 at 5 s"``) and the choice is not reliable.

**One run** (``simulate``): the series is the response time of every request in
the latency population (``metrics.latency_population``), in the order sent; the
warm-up is the send time of the first request kept, so every outcome
(rejections included) sent before it is excluded, as with a fixed ``warmup``.

**Replications** (``replicate``, and both sides of ``compare_configs``) share
ONE truncation point: each replication's response times are averaged per bin of
send time on a common grid (``send_time_grid``: ``GRID_BINS`` bins over
``[0, duration]``), the bins are averaged across replications (Welch's
averaging), and MSER-5 runs on that averaged series; the warm-up is the start of
the first bin kept (``choose_shared_warmup``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import latency_population

BATCH_SIZE = 5
METHOD = "mser-5"
GRID_BINS = 1000

__all__ = [
    "BATCH_SIZE",
    "GRID_BINS",
    "BinnedSeries",
    "Truncation",
    "WarmupChoice",
    "binned_response_times",
    "choose_shared_warmup",
    "choose_warmup",
    "mser",
    "resolve_warmup",
    "send_time_grid",
    "warmup_cap",
]


@dataclass(frozen=True)
class Truncation:
    """MSER's choice for one series: delete the first ``observations`` values."""

    observations: int
    batches: int  # batches deleted (d*)
    total_batches: int  # k
    reliable: bool  # the minimum lies in the first half and was not capped
    capped: bool = False  # the unrestricted minimum lay beyond ``max_observations``


def mser(series, batch_size: int = BATCH_SIZE, max_observations: int | None = None) -> Truncation:
    """MSER-``batch_size`` truncation of ``series`` (incomplete last batch dropped),
    deleting at most ``max_observations`` values (None: no cap)."""
    x = np.asarray(series, dtype=float)
    k = x.size // batch_size
    if k < 4:
        return Truncation(0, 0, k, False)
    z = x[: k * batch_size].reshape(k, batch_size).mean(axis=1)
    half = k // 2
    # Tail sums of Z and Z^2 for every d = 0 .. k/2 at once.
    tail_sum = np.cumsum(z[::-1])[::-1][: half + 1]
    tail_sq = np.cumsum((z * z)[::-1])[::-1][: half + 1]
    kept = k - np.arange(half + 1, dtype=float)
    statistic = np.maximum(tail_sq - tail_sum * tail_sum / kept, 0.0) / (kept * kept)
    best = int(np.argmin(statistic))
    limit = half if max_observations is None else min(half, max_observations // batch_size)
    if best <= limit:
        return Truncation(best * batch_size, best, k, best < half)
    capped = int(np.argmin(statistic[: limit + 1]))
    return Truncation(capped * batch_size, capped, k, False, capped=True)


def warmup_cap(scenario) -> tuple[float, str] | None:
    """(seconds, why) a warm-up must not reach past: the first fault's start or the
    first boundary between workload stages, whichever is earlier; None if neither."""
    caps = [(float(fault.start), f"fault {index} at {fault.start:g} s") for index, fault in enumerate(scenario.faults)]
    w = scenario.workload
    if w.model == "open" and len(w.stages) > 1:
        end = float(w.stages[0].duration)
        if end < scenario.duration:
            caps.append((end, f"workload stage 1 starting at {end:g} s"))
    return min(caps, default=None)


@dataclass(frozen=True)
class WarmupChoice:
    """The warm-up a run used: seconds, and how it was chosen."""

    seconds: float
    method: str  # "fixed" or "mser-5"
    deleted_requests: int | float | None = None  # latency-population requests deleted (mser-5 only)
    reliable: bool | None = None
    capped_by: str | None = None  # MSER wanted to cut further: the fault / stage change that stopped it
    replications: int | None = None  # chosen on the series averaged over this many replications

    def to_dict(self) -> dict:
        return {
            "seconds": self.seconds,
            "method": self.method,
            "deleted_requests": self.deleted_requests,
            "reliable": self.reliable,
            "capped_by": self.capped_by,
            "replications": self.replications,
        }


def choose_warmup(sent: np.ndarray, done: np.ndarray, kind: np.ndarray, cap: tuple[float, str] | None = None) -> WarmupChoice:
    """MSER-5 on one run's response times of the latency population, by send time,
    never deleting past ``cap`` = (seconds, why) (``warmup_cap``)."""
    population = np.flatnonzero(latency_population(sent, done, kind))
    order = population[np.argsort(sent[population], kind="stable")]
    ordered_sent = sent[order]
    limit = None if cap is None else int(np.searchsorted(ordered_sent, cap[0], side="left"))
    truncation = mser(done[order] - ordered_sent, max_observations=limit)
    seconds = float(ordered_sent[truncation.observations]) if truncation.observations else 0.0
    if cap is not None:
        seconds = min(seconds, cap[0])
    # Requests sent at the same instant as the first one kept are kept too (the
    # warm-up excludes sends strictly before it), so count what is really deleted.
    deleted = int(np.searchsorted(ordered_sent, seconds, side="left"))
    return WarmupChoice(seconds, METHOD, deleted, truncation.reliable, cap[1] if truncation.capped else None)


def resolve_warmup(scenario, sent: np.ndarray, done: np.ndarray, kind: np.ndarray):
    """(scenario with a numeric warm-up, the WarmupChoice) after a run."""
    if scenario.warmup != "auto":
        return scenario, WarmupChoice(float(scenario.warmup), "fixed")
    choice = choose_warmup(sent, done, kind, warmup_cap(scenario))
    return dataclasses.replace(scenario, warmup=choice.seconds), choice


# ---------------------------------------------------------------- one truncation for many runs


@dataclass(frozen=True)
class BinnedSeries:
    """One run's response times on the common grid: per bin of send time, their sum and count."""

    sums: np.ndarray
    counts: np.ndarray


def send_time_grid(scenario) -> np.ndarray:
    """Bin edges: ``GRID_BINS`` equal bins of send time over ``[0, duration]``."""
    return np.linspace(0.0, float(scenario.duration), GRID_BINS + 1)


def binned_response_times(sent: np.ndarray, done: np.ndarray, kind: np.ndarray, edges: np.ndarray) -> BinnedSeries:
    """Response times of the latency population summed and counted per bin of send time."""
    population = latency_population(sent, done, kind)
    bins = np.clip(np.searchsorted(edges, sent[population], side="right") - 1, 0, edges.size - 2)
    size = edges.size - 1
    sums = np.bincount(bins, weights=done[population] - sent[population], minlength=size)
    return BinnedSeries(sums, np.bincount(bins, minlength=size).astype(float))


def choose_shared_warmup(series: Sequence[BinnedSeries], edges: np.ndarray, cap: tuple[float, str] | None = None) -> WarmupChoice:
    """One MSER-5 warm-up for all the runs of ``series``: on the bin means averaged
    across runs (each run's bin mean weighs the same), never past ``cap``."""
    sums = np.array([s.sums for s in series])
    counts = np.array([s.counts for s in series])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
    runs_with_data = (counts > 0).sum(axis=0)
    present = runs_with_data > 0
    averaged = np.nansum(np.where(np.isnan(means), 0.0, means), axis=0)[present] / runs_with_data[present]
    starts, ends = edges[:-1][present], edges[1:][present]
    limit = None if cap is None else int(np.count_nonzero(ends <= cap[0]))
    truncation = mser(averaged, max_observations=limit)
    seconds = float(starts[truncation.observations]) if truncation.observations else 0.0
    if cap is not None:
        seconds = min(seconds, cap[0])
    return WarmupChoice(seconds, METHOD, None, truncation.reliable, cap[1] if truncation.capped else None, len(series))
