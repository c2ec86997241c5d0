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

For a run, the series is the response time of every request admitted to the
backend, in the order sent; the warm-up is the send time of the first request
kept, so every outcome (rejections included) sent before it is excluded, just
as with a fixed ``warmup``. Each replication chooses its own truncation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .outcomes import BACKEND_KINDS

BATCH_SIZE = 5
METHOD = "mser-5"

__all__ = ["BATCH_SIZE", "Truncation", "WarmupChoice", "choose_warmup", "mser", "resolve_warmup"]


@dataclass(frozen=True)
class Truncation:
    """MSER's choice for one series: delete the first ``observations`` values."""

    observations: int
    batches: int  # batches deleted (d*)
    total_batches: int  # k
    reliable: bool  # the unrestricted minimum lies in the first half


def mser(series, batch_size: int = BATCH_SIZE) -> Truncation:
    """MSER-``batch_size`` truncation of ``series`` (incomplete last batch dropped)."""
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
    squares = np.maximum(tail_sq - tail_sum * tail_sum / kept, 0.0)
    best = int(np.argmin(squares / (kept * kept)))
    return Truncation(best * batch_size, best, k, best < half)


@dataclass(frozen=True)
class WarmupChoice:
    """The warm-up a run used: seconds, and how it was chosen."""

    seconds: float
    method: str  # "fixed" or "mser-5"
    deleted_requests: int | None = None  # admitted requests deleted (mser-5 only)
    reliable: bool | None = None

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "method": self.method, "deleted_requests": self.deleted_requests, "reliable": self.reliable}


def choose_warmup(sent: np.ndarray, done: np.ndarray, kind: np.ndarray) -> WarmupChoice:
    """MSER-5 on a run's response times of backend-admitted requests, by send time."""
    admitted = np.flatnonzero(np.isin(kind, BACKEND_KINDS))
    order = admitted[np.argsort(sent[admitted], kind="stable")]
    truncation = mser(done[order] - sent[order])
    seconds = float(sent[order[truncation.observations]]) if truncation.observations else 0.0
    # Requests sent at the same instant as the first one kept are kept too (the
    # warm-up excludes sends strictly before it), so count what is really deleted.
    deleted = int(np.searchsorted(sent[order], seconds, side="left"))
    return WarmupChoice(seconds, METHOD, deleted, truncation.reliable)


def resolve_warmup(scenario, sent: np.ndarray, done: np.ndarray, kind: np.ndarray):
    """(scenario with a numeric warm-up, the WarmupChoice) after a run."""
    if scenario.warmup != "auto":
        return scenario, WarmupChoice(float(scenario.warmup), "fixed")
    choice = choose_warmup(sent, done, kind)
    return dataclasses.replace(scenario, warmup=choice.seconds), choice
