"""The figures of one simulated run, and writing them as PNG files (``--plot DIR``).

``run_figures(result)`` maps a short name to each figure: ``latency`` (histogram
and CDF) and ``timeline`` (percentiles, throughput and breaker state over time; with
``[[deployments]]``, the share of attempts per deployment and one breaker band per
deployment instead of the single breaker), and ``llm`` (TTFT, ITL, batch size over
time) for an LLM backend run.
``write_run_plots(result, directory, label)`` saves them as
``<scenario>[-<label>]-<name>.png`` and returns the paths.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure

from .latency_plot import latency_figure
from .style import save_png
from .timeline_plot import timeline_figure


def run_figures(result) -> dict[str, Figure]:
    figures = {"latency": latency_figure(result), "timeline": timeline_figure(result)}
    if getattr(result, "llm", None) is not None:  # backend.model = "llm": TTFT, ITL, batch size over time
        from .llm_plot import llm_figure

        figures["llm"] = llm_figure(result)
    return figures


def file_stem(name: str) -> str:
    """``name`` reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def write_run_plots(result, directory: Path, label: str = "") -> list[Path]:
    """Save ``run_figures(result)`` as PNGs in ``directory`` (created if needed);
    ``label`` (``--label``, or a digest of the overrides) names the variant in the
    file names (``<scenario>-<label>-<name>.png``) and the figures' titles, so
    variants of one scenario do not overwrite each other."""
    stem = file_stem(f"{result.scenario.name}-{label}" if label else result.scenario.name)
    written = []
    for name, figure in run_figures(result).items():
        if label:
            figure.suptitle(f"[{label}] {figure.get_suptitle()}".strip())
        written.append(save_png(figure, Path(directory) / f"{stem}-{name}.png"))
    return written
