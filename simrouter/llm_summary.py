"""The LLM figures of a run (``backend.model = "llm"``), with vLLM ``bench serve``'s definitions.

Every figure describes the measured requests (sent at or after warm-up) and,
for rates, the throughput window (end of warm-up .. end of full load) that
``throughput`` uses:

* ``ttft_ms``: first send -> first token, per successful request.
* ``tpot_ms``: per successful request of >= 2 output tokens,
  ``(e2e - ttft) / (output_tokens - 1)``.
* ``itl_ms``: every gap between consecutive tokens of a sequence, pooled over
  requests: each engine step ending after warm-up counts once per decoding
  sequence it served (the gap is the step's duration), plus the waits of
  sequences recomputed after a preemption. Percentiles of the pooled gaps are
  weighted (inverted CDF: the smallest gap at or above the fraction p of gaps).
* ``tokens``: ``prompt`` and ``output`` tokens of the successful measured
  requests; ``output_per_s``, output tokens of successes answered in the
  window per second of it.
* ``batch``: time-weighted over the window (idle time counts as 0 running):
  ``mean_running`` sequences holding a slot, ``mean_waiting`` requests queued,
  ``max_running``, ``mean_step_ms``; ``steps`` after warm-up, ``preemptions`` (whole run).
* ``goodput``: DistServe's, as vLLM's ``--goodput``: a request is good when it
  succeeded and meets every stated per-request latency target (TTFT <=
  ``targets.ttft_p95_ms``, TPOT <= ``targets.tpot_p95_ms``; a one-token answer
  has no TPOT and meets that one). ``fraction`` of the measured requests,
  ``rps`` of good answers in the window.

``llm_samples`` gives what replications pool (``simrouter.replications``): the
measured TTFT and TPOT values and the inter-token gaps with their weights
(equal gaps merged: decode-only steps of one batch size cost the same, so a run
of 440k steps keeps about one pair per request); ``weighted_percentiles`` is
the ITL percentile definition, for one run or pooled runs.

``llm_targets`` adds the pass/fail rows: ``ttft_ms.p95 < ttft_p95_ms``,
``tpot_ms.p95 < tpot_p95_ms``, ``tokens.output_per_s > min_output_tokens_per_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics
from .outcomes import SUCCESS
from .targets import TargetResult, _compare


@dataclass(eq=False)
class LLMColumns:
    """Per logical request (recording order) and per engine step."""

    first_token: np.ndarray  # seconds; NaN unless it succeeded
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray  # 0 unless it succeeded
    steps: dict  # sim.llm_backend.StepLog.columns()
    preemptions: int = 0


def weighted_percentiles(values: np.ndarray, weights: np.ndarray) -> dict[str, float] | None:
    """``pXX`` (``metrics.PERCENTILES``) of ``values`` repeated ``weights`` times, by the
    inverted CDF (the smallest value at or above the fraction p of the weight); None
    without any weight. Same unit as ``values``."""
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    count = weights.sum()
    if count == 0:
        return None
    order = np.argsort(values, kind="stable")
    ordered, cumulative = values[order], np.cumsum(weights[order])
    return {f"p{p}": float(ordered[min(np.searchsorted(cumulative, p / 100.0 * count, side="left"), ordered.size - 1)]) for p in metrics.PERCENTILES}


def weighted_stats(values_s: np.ndarray, weights: np.ndarray) -> dict:
    """``metrics.latency_stats`` fields (ms) of values repeated ``weights`` times."""
    keep = weights > 0
    values_s, weights = values_s[keep], weights[keep]
    count = int(weights.sum())
    if count == 0:
        return metrics.latency_stats(np.zeros(0))
    order = np.argsort(values_s, kind="stable")
    ms, weights = values_s[order] * 1000.0, weights[order]
    rows = weighted_percentiles(ms, weights)
    return {**rows, "max": float(ms.max()), "min": float(ms.min()), "avg": float((ms * weights).sum() / count), "count": count}


def _itl_pairs(result) -> tuple[np.ndarray, np.ndarray]:
    """(gap s, weight) of the measured part of the run: steps ending after warm-up, once
    per decoding sequence they served, and the waits of recomputed sequences."""
    steps = result.llm.steps
    after = steps["end"] >= result.scenario.warmup
    gaps = steps["gaps"]
    return np.concatenate([steps["duration"][after], gaps]), np.concatenate([steps["decoded"][after], np.ones(gaps.size, dtype=np.int64)])


def _ttft_tpot(result) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT s of the measured successes, TPOT s of those with >= 2 output tokens)."""
    llm = result.llm
    ok = result.measured & (result.kind == SUCCESS) & np.isfinite(llm.first_token)
    output = llm.output_tokens[ok]
    multi = output >= 2
    return llm.first_token[ok] - result.sent[ok], (result.done[ok][multi] - llm.first_token[ok][multi]) / (output[multi] - 1)


def llm_samples(result) -> dict:
    """What replications pool (module docstring), in ms: ``ttft``, ``tpot`` (values) and
    ``itl`` ((distinct gaps, weights))."""
    ttft, tpot = _ttft_tpot(result)
    gaps, weights = _itl_pairs(result)
    distinct, inverse = np.unique(gaps, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=weights, minlength=distinct.size).astype(np.int64)
    return {"ttft": ttft * 1000.0, "tpot": tpot * 1000.0, "itl": (distinct * 1000.0, merged)}


def llm_summary(result) -> dict:
    """The LLM keys of ``RunResult.summary`` (module docstring)."""
    s, llm = result.scenario, result.llm
    measured = result.measured
    ok = measured & (result.kind == SUCCESS) & np.isfinite(llm.first_token)
    ttft, tpot = _ttft_tpot(result)
    output = llm.output_tokens[ok]
    t0, t1 = metrics.throughput_window(result.done, s.warmup, result.full_load_end_s)
    window = t1 - t0
    in_window = (result.done >= t0) & (result.done <= t1)
    per_s = (lambda x: float(x) / window) if window > 0 else (lambda x: 0.0)
    steps = llm.steps
    step_end, duration = steps["end"], steps["duration"]
    step_mask = (step_end >= t0) & (step_end <= t1) if window > 0 else step_end >= t0
    after = step_end >= s.warmup
    itl = weighted_stats(*_itl_pairs(result))
    # goodput: every stated per-request latency target met
    all_ok = (result.kind == SUCCESS) & np.isfinite(llm.first_token)
    good = all_ok.copy()
    t = s.targets
    if t.ttft_p95_ms is not None:
        good &= (llm.first_token - result.sent) * 1000.0 <= t.ttft_p95_ms
    if t.tpot_p95_ms is not None:
        out = llm.output_tokens
        with np.errstate(divide="ignore", invalid="ignore"):
            per_token = np.where(out >= 2, (result.done - llm.first_token) / np.maximum(out - 1, 1), 0.0)
        good &= per_token * 1000.0 <= t.tpot_p95_ms
    sent = int(measured.sum())
    succeeded_in_window = all_ok & in_window
    return {
        "ttft_ms": metrics.latency_stats(ttft),
        "tpot_ms": metrics.latency_stats(tpot),
        "itl_ms": itl,
        "tokens": {
            "prompt": int(llm.prompt_tokens[ok].sum()),
            "output": int(output.sum()),
            "output_per_s": per_s(llm.output_tokens[succeeded_in_window].sum()),
        },
        "batch": {
            "mean_running": per_s((duration[step_mask] * steps["running"][step_mask]).sum()),
            "mean_waiting": per_s((duration[step_mask] * steps["waiting"][step_mask]).sum()),
            "max_running": int(steps["running"].max()) if steps["running"].size else 0,
            "steps": int(after.sum()),
            "mean_step_ms": float(duration[step_mask].mean() * 1000.0) if step_mask.any() else None,
            "preemptions": int(llm.preemptions),
        },
        "goodput": {
            "fraction": float((good & measured).sum()) / sent if sent else 0.0,
            "rps": per_s((good & in_window).sum()),
        },
    }


def llm_targets(summary: dict, targets) -> list[TargetResult]:
    """The token targets that are set (module docstring)."""
    rows = [
        ("ttft_p95", "ttft_ms.p95", "<", targets.ttft_p95_ms, summary["ttft_ms"]["p95"], "ms"),
        ("tpot_p95", "tpot_ms.p95", "<", targets.tpot_p95_ms, summary["tpot_ms"]["p95"], "ms"),
        ("output_tokens_per_s", "tokens.output_per_s", ">", targets.min_output_tokens_per_s, summary["tokens"]["output_per_s"], "tokens/s"),
    ]
    return [TargetResult(n, m, c, th, v, _compare(v, th, c), u) for n, m, c, th, v, u in rows if th is not None]

