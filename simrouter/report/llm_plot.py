"""The LLM backend's figures of one run (``backend.model = "llm"``): three panels.

Left: TTFT of the successful measured requests (histogram, log-spaced bins, ms)
with its P50/P95 and the ``ttft_p95_ms`` target (dashed). Middle: the pooled
inter-token latencies (each step's duration weighted by the sequences it
served, as ``itl_ms``). Right: batch size over time, the running sequences and
the waiting requests at each engine step, with ``max_num_seqs`` dashed. The
figures are those of ``simrouter.llm_summary``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..outcomes import SUCCESS
from .style import PERCENTILE_COLOURS, TARGET_STYLE, new_figure, no_data

MAX_POINTS = 20_000  # steps drawn in the batch panel (evenly thinned beyond)


def _log_bins(values: np.ndarray, bins: int) -> np.ndarray:
    low, high = max(values.min(), 1e-3), max(values.max(), 1e-3)
    return np.geomspace(low, high * 1.0001 if high > low else low * 10, bins + 1)


def llm_figure(result, *, bins: int = 50) -> Figure:
    """TTFT and ITL distributions and batch size over time of an LLM run."""
    figure = new_figure(15.0, 4.5)
    ttft_axes, itl_axes, batch_axes = figure.subplots(1, 3)
    figure.suptitle(f"LLM serving: {result.scenario.name}")
    llm, summary = result.llm, result.summary
    ok = result.measured & (result.kind == SUCCESS) & np.isfinite(llm.first_token)
    ttft = (llm.first_token[ok] - result.sent[ok]) * 1000.0
    ttft_axes.set_xlabel("time to first token (ms, log scale)")
    ttft_axes.set_ylabel("requests per bin (count)")
    if ttft.size:
        ttft_axes.hist(ttft, bins=_log_bins(ttft, bins), color="#1f77b4", alpha=0.75)
        ttft_axes.set_xscale("log")
        for name in ("p50", "p95"):
            ttft_axes.axvline(summary["ttft_ms"][name], color=PERCENTILE_COLOURS[name], linewidth=1.2, label=f"{name.upper()} {summary['ttft_ms'][name]:,.0f} ms")
        if result.scenario.targets.ttft_p95_ms is not None:
            ttft_axes.axvline(result.scenario.targets.ttft_p95_ms, **TARGET_STYLE, label="P95 target")
        ttft_axes.legend(fontsize=8)
    else:
        no_data(ttft_axes, "no successful request")
    steps = llm.steps
    after = steps["end"] >= result.scenario.warmup
    gaps = np.concatenate([steps["duration"][after], steps["gaps"]]) * 1000.0
    weights = np.concatenate([steps["decoded"][after], np.ones(steps["gaps"].size)])
    itl_axes.set_xlabel("inter-token latency (ms, log scale)")
    itl_axes.set_ylabel("tokens per bin (count)")
    if weights.sum() > 0:
        keep = weights > 0
        itl_axes.hist(gaps[keep], bins=_log_bins(gaps[keep], bins), weights=weights[keep], color="#2ca02c", alpha=0.75)
        itl_axes.set_xscale("log")
    else:
        no_data(itl_axes, "no decoding step")
    batch_axes.set_xlabel("simulated time (s)")
    batch_axes.set_ylabel("sequences (count)")
    if steps["end"].size:
        take = np.linspace(0, steps["end"].size - 1, min(MAX_POINTS, steps["end"].size)).astype(int)
        batch_axes.step(steps["end"][take], steps["running"][take], where="pre", label="running", color="#1f77b4", linewidth=0.8)
        batch_axes.step(steps["end"][take], steps["waiting"][take], where="pre", label="waiting", color="#ff7f0e", linewidth=0.8)
        batch_axes.axhline(result.scenario.backend.max_num_seqs, **{**TARGET_STYLE, "color": "0.4"}, label="max_num_seqs")
        batch_axes.legend(fontsize=8)
    else:
        no_data(batch_axes, "no engine step")
    return figure
