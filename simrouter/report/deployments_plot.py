"""Who got the traffic, over time, in a run with ``[[deployments]]``; and each deployment's breaker.

``deployment_shares(result, interval)`` is the share of the routed attempts that
went to each deployment, per interval of *send* time (the instant the router
chose the deployment, which is what routing decides; the timeline's other panels
bin by answer time): one row per interval that saw at least one routed attempt,
indexed by the interval's start ``t_s``, one column per deployment name, each
row summing to 1. Every attempt the router forwarded to a deployment counts,
fallbacks included and warm-up included (the timeline shows the whole run),
whatever its outcome (a deployment's own limiter or breaker rejecting it is
still traffic routed there). An attempt no deployment could take (``pick`` found
no candidate: deployment index < 0) is routed nowhere and is not counted. The
summary's ``deployments[i].share`` is the same ratio over the measured window.

``share_band(axes, result, interval, end)`` draws those shares as a stacked band
(0..1, one step per interval; an interval with no routed attempt stays empty),
with dotted lines at the cumulative weight fractions: where the boundaries sit
when each deployment gets its weight's share. ``deployment_transitions`` gives one
deployment's breaker transitions at their exact times (``RunResult.deployment_runs``,
the same log as ``summary["deployments"][i]["breaker"]["transitions"]``), which the timeline draws
as the single breaker's band (``timeline_plot.breaker_band``);
``deployment_faults`` the windows that hit it (top-level and its own) and
``all_faults`` every window of the run, for the shared panels.

``has_deployments(result)`` says whether a run went through a gateway and kept its
attempts (``RunResult.attempt_log``); otherwise nothing here is drawn and the
timeline stays as it was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..policies.breakers import Transition
from .style import deployment_colour


def has_deployments(result) -> bool:
    """Whether ``result`` ran behind a gateway and kept its attempts (a live run keeps none)."""
    return getattr(result, "attempt_log", None) is not None and getattr(result, "deployment_runs", None) is not None


def deployment_names(result) -> list[str]:
    return [run.name for run in result.deployment_runs]


def routed_attempts(result) -> tuple[np.ndarray, np.ndarray]:
    """(deployment index, send time) of every attempt forwarded to a deployment
    (``RunResult.attempt_log``, ``metrics.AttemptColumns``)."""
    attempts = result.attempt_log
    routed = attempts.deployment >= 0
    return attempts.deployment[routed].astype(np.int64), attempts.sent[routed]


def deployment_shares(result, interval: float | None = None) -> pd.DataFrame:
    """Share of the routed attempts per deployment, per interval of send time (rows sum to 1)."""
    interval = interval or result.scenario.metrics.interval
    names = deployment_names(result)
    deployment, sent = routed_attempts(result)
    k = len(names)
    bins = np.floor(sent / interval).astype(np.int64)
    counts = np.bincount(bins * k + deployment, minlength=k * (int(bins.max()) + 1 if bins.size else 0)).reshape(-1, k)
    seen = counts.sum(axis=1) > 0
    shares = counts[seen] / counts[seen].sum(axis=1, keepdims=True)
    return pd.DataFrame(shares, columns=names, index=pd.Index(np.flatnonzero(seen) * interval, name="t_s"))


def share_band(axes, result, interval: float, end: float) -> None:
    """The stacked share band of ``deployment_shares``, with the weights' boundaries dotted."""
    shares = deployment_shares(result, interval)
    names = deployment_names(result)
    steps = int(np.ceil(end / interval)) + 1
    layers = np.zeros((len(names), steps + 1))
    index = np.rint(shares.index.to_numpy() / interval).astype(np.int64)
    layers[:, index] = shares.to_numpy().T
    layers[:, -1] = layers[:, -2]  # the last step's right edge
    edges = np.arange(steps + 1) * interval
    axes.stackplot(edges, layers, labels=names, colors=[deployment_colour(i) for i in range(len(names))], alpha=0.85, step="post")
    weights = np.array([deployment.weight for deployment in result.scenario.deployments], dtype=float)
    for boundary in np.cumsum(weights / weights.sum())[:-1]:
        axes.axhline(boundary, color="black", linestyle=":", linewidth=0.9, alpha=0.6)
    axes.set_ylim(0, 1)
    axes.set_yticks([0, 0.5, 1])
    axes.set_ylabel("share of attempts")


def deployment_transitions(result, index: int) -> list[Transition]:
    """Deployment ``index``'s breaker transitions, at their exact times."""
    return result.deployment_runs[index].transitions


def deployment_faults(result, index: int) -> list:
    """The fault windows that hit deployment ``index``: the top-level ones and its own."""
    return list(result.deployment_runs[index].faults)


def all_faults(result) -> list:
    """Every fault window of the run, top-level and per deployment (each window once)."""
    faults = list(result.scenario.faults)
    for run in result.deployment_runs:
        faults += [fault for fault in run.faults if fault not in faults]
    return faults
