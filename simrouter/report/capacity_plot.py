"""The capacity search's plot: each checked target against the searched parameter.

``capacity_figure(data)`` reads ``CapacityResult.to_dict()`` (or the JSON
``simrouter capacity --json`` writes): one panel per target checked at some
probe, the probes' values with their 95 % intervals (error bars; a passing probe
filled, a failing one hollow), the target's threshold (dashed red) and the
answer (``max_passing`` / ``min_passing``, a vertical line, its ``ci95`` shaded).
A latency or rate can never be negative: error bars are clipped at 0.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from .style import TARGET_STYLE, axis_label, new_figure


def capacity_figure(data: dict, title: str | None = None) -> Figure:
    probes = data["probes"]
    names: list[str] = []
    for probe in probes:
        for target in probe["targets"]:
            if target["passed"] is not None and target["name"] not in names:
                names.append(target["name"])
    if not names and probes:
        names = [t["name"] for t in probes[0]["targets"][:1]]
    figure = new_figure(9.0, 2.6 * max(1, len(names)) + 0.6)
    axes_list = figure.subplots(max(1, len(names)), 1, sharex=True, squeeze=False)[:, 0]
    key = "max_passing" if "max_passing" in data else "min_passing"
    answer, interval = data.get(key), data.get("ci95")
    for axes, name in zip(axes_list, names):
        rows = [(p["value"], p["passed"], next(t for t in p["targets"] if t["name"] == name)) for p in probes]
        metric = rows[0][2]["metric"] if rows else name
        for x, passed, target in rows:
            value, ci = target["value"], target["ci95"]
            if value is None:
                continue
            low, high = (max(0.0, ci[0]), ci[1]) if ci else (value, value)  # never below 0
            axes.errorbar([x], [value], yerr=[[max(0.0, value - low)], [max(0.0, high - value)]], fmt="o",
                          color="#1f77b4", mfc="#1f77b4" if passed else "white", capsize=3)
        threshold = rows[0][2]["threshold"] if rows else None
        if threshold is not None:
            axes.axhline(threshold, **TARGET_STYLE, label=f"target {rows[0][2]['comparison']} {threshold:g}")
        if answer is not None:
            axes.axvline(answer, color="#2ca02c", linewidth=1.2, label=f"{key} = {answer:g}")
            if interval:
                axes.axvspan(interval[0], interval[1], color="#2ca02c", alpha=0.12, linewidth=0, label="ci95")
        axes.set_ylim(bottom=0)
        axes.set_ylabel(axis_label(metric))
        axes.set_title(name, fontsize=9, loc="left")
        axes.legend(fontsize=8, loc="best")
    axes_list[-1].set_xlabel(data["parameter"])
    figure.suptitle(title or f"{data.get('scenario', '')}: {key} of {data['parameter']} (filled: probe passed)")
    return figure

