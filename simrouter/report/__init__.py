"""Seeing results: the terminal dashboards, plots, the HTML report, progress bars.

=================================  ===============================================
``print_dashboard(result)``        the terminal dashboard of a run (``dashboard``)
``watch(target)``                  a live target's ``/metrics``, redrawn (``live_dashboard``)
``latency_figure(results)``        histogram and CDF of latencies (``latency_plot``)
``timeline_figure(result)``        percentiles, throughput, breaker over time (``timeline_plot``)
``sweep_figure``, ``sweep_heatmap``  a sweep table's metric vs parameters (``sweep_plot``)
``compare_figure(table)``          simulated against live (``compare_plot``)
``capacity_figure(data)``          each target against the searched parameter (``capacity_plot``)
``write_run_plots(result, dir)``   a run's plots as PNGs (``run_plots``; ``--plot DIR``)
``write_report(paths, out)``       one self-contained HTML file (``html_report``)
``progress_bar``, ``track``        transient progress bars (``progress``)
``deployment_shares(result)``      behind a gateway: each deployment's share of the routed
                                   attempts per interval (``deployments_plot``)
=================================  ===============================================

Every name is imported on first use: commands that only print a dashboard do
not pay for importing matplotlib, and code that only needs a progress bar (or
nothing here) does not import rich's dashboard either.
"""

from importlib import import_module

_LAZY = {
    "print_dashboard": "dashboard",
    "render_dashboard": "dashboard",
    "target_colour": "dashboard",
    "progress_bar": "progress",
    "track": "progress",
    "watch": "live_dashboard",
    "latency_figure": "latency_plot",
    "timeline_figure": "timeline_plot",
    "sweep_figure": "sweep_plot",
    "sweep_heatmap": "sweep_plot",
    "tidy_sweep": "sweep_plot",
    "compare_figure": "compare_plot",
    "capacity_figure": "capacity_plot",
    "run_figures": "run_plots",
    "write_run_plots": "run_plots",
    "build_report": "html_report",
    "write_report": "html_report",
    "deployment_shares": "deployments_plot",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
