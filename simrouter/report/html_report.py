"""A self-contained HTML report of runs, sweeps and comparisons (``simrouter report``).

One file, no external resources: plots are embedded as base64 PNG, styles are
inline, so it can be attached to a capacity review as it is. Inputs:

* a run's JSON (``simrouter run --json``): targets, the key figures, errors by
  kind, the breaker's story, a deployments table when the run has ``[[deployments]]``
  (the dashboard's 🌐 DEPLOYMENTS panel: share, attempts, success, P95/P99, utilisation,
  breaker state, trips, recovery against its target; and the fallback counts), and the
  latency and timeline plots (with deployments, the timeline has the share band and
  one breaker band per deployment). The JSON keeps
  only the summary, so the plots need the per-request data back: the run is
  simulated again from its ``config``, ``seed`` and ``replication`` (a run is
  deterministic) and used only if its figures equal the JSON's (same request
  counts and latency statistics); otherwise (another simrouter version, a live
  run) the report says so and shows the tables alone. A JSON with
  ``replications_detail`` is rebuilt from its first replication.
* a sweep table (CSV or Parquet) in the shape ``sweep_plot`` documents: the
  table, each metric against the first parameter, and a heatmap per metric when
  two parameters were swept; targets are the default ones (``Targets()``).
* a comparison (``simrouter compare --csv`` table, or its ``--json``) in the shape
  ``compare_plot`` documents.

Several runs also get a side-by-side table and their latency CDFs overlaid.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config import Targets, scenario_from_dict
from ..errors import ConfigError
from .compare_plot import COMPARE_COLUMNS, INSIDE, OUTSIDE, compare_figure, live_colour
from .dashboard import BREAKER_ROWS, LATENCY_ROWS, OVERVIEW_ROWS, STATE_MARKS, THROUGHPUT_ROWS, _colour_of, _fmt, _get, recovery_threshold, recovery_verdict, target_colour
from .latency_plot import latency_figure
from .progress import track
from .run_plots import run_figures
from .style import png_bytes, target_of
from .sweep_plot import sweep_figure, sweep_heatmap, sweep_parameters, tidy_sweep

COLOURS = {"green": "#1e7b34", "yellow": "#9a6b00", "red": "#b3261e", "dim": "#777", "": "inherit"}
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #2c5aa0; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 1.5em 1em 0; font-size: 14px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f4f8; }
.tables { display: flex; flex-wrap: wrap; align-items: flex-start; }
.badge { padding: 2px 8px; border-radius: 4px; color: white; font-size: 14px; vertical-align: middle; }
.pass { background: #1e7b34; } .fail { background: #b3261e; }
.note { color: #666; font-style: italic; }
img { max-width: 100%; margin: .5em 0; border: 1px solid #eee; }
"""


@dataclass
class RunItem:
    path: Path
    data: dict
    result: object | None = None  # the rebuilt RunResult, when it matches
    note: str | None = None


@dataclass
class TableItem:
    path: Path
    kind: str  # "sweep" or "compare"
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading inputs


def load_input(path: Path) -> RunItem | TableItem:
    """Read one input file; a file that is none of the three raises ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "no such file; expected a run JSON, a sweep CSV/Parquet or a compare CSV")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"not valid JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("rows"), list) and "live" in data:
            return TableItem(path, "compare", pd.DataFrame(data["rows"]))  # `simrouter compare --json`
        if not isinstance(data, dict) or "latency_ms" not in data or "requests" not in data:
            raise ConfigError(str(path), "not a simrouter run JSON (written by `simrouter run --json` or `simrouter compare --json`)")
        return RunItem(path, data)
    if path.suffix.lower() in (".csv", ".parquet"):
        try:
            frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except (ValueError, ImportError, OSError) as exc:
            raise ConfigError(str(path), f"cannot read the table ({exc})") from None
        if all(column in frame.columns for column in COMPARE_COLUMNS):
            return TableItem(path, "compare", frame)
        try:
            return TableItem(path, "sweep", tidy_sweep(frame))
        except ConfigError as exc:
            raise ConfigError(str(path), f"neither a sweep table nor a compare table: {exc.message}") from None
    raise ConfigError(str(path), "unknown file type; accepted: .json (run), .csv or .parquet (sweep, compare)")


def rebuild(item: RunItem) -> RunItem:
    """Simulate the run again for its per-request data, keeping it only if it matches."""
    from ..sim import simulate

    data = item.data
    detail = (data.get("replications_detail") or [data])[0]
    if "config" not in data or "seed" not in detail:
        item.note = "No configuration in this JSON (a live run?): plots need per-request data, tables only."
        return item
    try:
        scenario = scenario_from_dict(data["config"])
        result = simulate(scenario, seed=int(detail["seed"]), replication=int(detail.get("replication", 0)))
    except ConfigError as exc:
        item.note = f"Its configuration no longer loads ({exc}): tables only."
        return item
    fresh = json.loads(json.dumps(result.to_dict()))
    if all(fresh.get(key) == detail.get(key) for key in ("requests", "latency_ms")):
        item.result = result
        if detail is not data:
            item.note = f"Plots show replication {result.replication} of {len(data['replications_detail'])}."
    else:
        item.note = "Simulating this configuration again gives other figures (another simrouter version?): tables only."
    return item


# ---------------------------------------------------------------- HTML pieces


def _e(value) -> str:
    return html.escape(str(value))


def _cell(text: str, colour: str = "", bold: bool = False) -> str:
    style = f"color:{COLOURS.get(colour, colour)};" if colour else ""
    style += "font-weight:bold;" if bold else ""
    return f'<td style="{style}">{_e(text)}</td>' if style else f"<td>{_e(text)}</td>"


def _table(header: list[str], rows: list[str], caption: str | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    cap = f"<caption><b>{_e(caption)}</b></caption>" if caption else ""
    return f"<table>{cap}<tr>{head}</tr>{''.join(f'<tr>{r}</tr>' for r in rows)}</table>"


def _image(figure, alt: str) -> str:
    encoded = base64.b64encode(png_bytes(figure)).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _with_ci(summary: dict, path: str, unit: str) -> str:
    text = _fmt(_get(summary, path), unit)
    interval = (summary.get("ci95") or {}).get(path)
    if interval and None not in interval:
        text += f" [{_fmt(interval[0], unit)}, {_fmt(interval[1], unit)}]"
    return text


def _figures_table(summary: dict, rows, caption: str) -> str:
    targets = {t["metric"]: t for t in summary.get("targets", [])}
    body = []
    for label, path, unit in rows:
        target = targets.get(path)
        colour = _colour_of(target) if target else ""
        body.append(_cell(label) + _cell(_with_ci(summary, path, unit), colour, bold=label in ("P95", "P99")))
    return _table(["figure", "value"], body, caption)


def _targets_table(summary: dict) -> str:
    body = []
    for target in summary.get("targets", []):
        colour = _colour_of(target)
        limit = "—" if target["threshold"] is None else f"{target['comparison']} {_fmt(target['threshold'], target['unit'])}"
        verdict = {True: "PASS", False: "FAIL", None: "not checked"}[target["passed"]]
        body.append(_cell(target["name"]) + _cell(limit) + _cell(_fmt(target["value"], target["unit"]), colour) + _cell(verdict, colour, bold=True))
    return _table(["target", "limit", "value", "result"], body, "Targets")


def _errors_table(summary: dict) -> str:
    requests = summary["requests"]
    body = [_cell(kind.replace("_", " ")) + _cell(_fmt(requests.get(kind, 0), "count")) + _cell(f"{share:.2%}") for kind, share in summary["error_rates"].items()]
    errors = _fmt(requests["sent"] - requests["succeeded"], "count")
    body.append(_cell("all errors", bold=True) + _cell(errors, bold=True) + _cell(f"{summary['error_rate']:.2%}", bold=True))
    return _table(["kind", "count", "share of sent"], body, "Errors")


def _transition_list(transitions: list[dict], stayed: str) -> str:
    items = "".join(f"<li>{tr['t']:.2f} s: {_e(tr['from'])} → {_e(tr['to'])}</li>" for tr in transitions[:20])
    more = f"<li>… {len(transitions) - 20} more</li>" if len(transitions) > 20 else ""
    return f"<ul>{items}{more}</ul>" if items else f"<p>No transition: {stayed}.</p>"


def _breaker_story(summary: dict) -> str:
    breaker = summary["breaker"]
    transitions = _transition_list(breaker["transitions"] or [], "the breaker stayed closed")  # None: a live target that does not report its breaker
    if summary.get("deployments"):  # behind a gateway each deployment has its own breaker and log
        transitions = "".join(
            f"<p><b>{_e(d['name'])}</b> ({_e(d['breaker'].get('preset'))}), final state {_e(d['breaker'].get('state'))}:</p>"
            + _transition_list(d["breaker"].get("transitions") or [], "its breaker stayed closed")
            for d in summary["deployments"] if d.get("breaker")
        )
    if breaker["state"] is None:
        transitions = "<p>Not measured: the target does not report its breaker.</p>"
    return f"<p><b>Breaker</b> ({_e(breaker['preset'])}), final state {_e(breaker['state'])}. {_e(breaker['recommendation'])}</p>{transitions}"


def _deployments_table(summary: dict) -> str:
    """The dashboard's deployments panel as a table, and the fallback counts."""
    targets = {t["metric"]: t for t in summary.get("targets", [])}
    body = []
    for index, deployment in enumerate(summary["deployments"]):
        requests, latency, breaker = deployment["requests"], deployment.get("latency_ms") or {}, deployment.get("breaker") or {}
        cells = _cell(deployment["name"], bold=True) + _cell(_fmt(deployment.get("share"), "fraction")) + _cell(_fmt(requests["sent"], "count"))
        cells += _cell(f"{requests['succeeded'] / requests['sent']:.2%}" if requests["sent"] else "—")
        for name in ("p95", "p99"):
            target = targets.get(f"latency_ms.{name}")
            cells += _cell(_fmt(latency.get(name), "ms"), target_colour(latency.get(name), target["threshold"], "<") if target else "", bold=True)
        cells += _cell(_fmt(deployment.get("utilisation"), "fraction"))
        state = breaker.get("state")
        cells += _cell("not measured" if state is None else state.replace("_", "-"), STATE_MARKS.get(state, ("", "dim"))[1], bold=True)
        recovery, colour = recovery_verdict(breaker, recovery_threshold(targets, index))
        cells += _cell(_fmt(breaker.get("trips"), "count")) + _cell(recovery, colour)
        body.append(cells)
    header = ["deployment", "share of attempts", "attempts", "success", "P95", "P99", "utilisation", "breaker", "trips", "recovery"]
    parts = [_table(header, body, "Deployments")]
    fallbacks = summary.get("fallbacks")
    if fallbacks:
        parts.append(f"<p><b>Fallbacks</b>: {_e(_fmt(fallbacks['total'], 'count'))} ({fallbacks['per_request']:.3f} per request); "
                     f"{_e(_fmt(fallbacks['succeeded_after_fallback'], 'count'))} requests succeeded after a fallback.</p>")
    return "\n".join(parts)


def _diagnosis(summary: dict) -> str:
    """The run's ``diagnosis`` list (``simrouter.diagnosis``), one item per code."""
    items = summary.get("diagnosis") or []
    if not items:
        return '<p class="diagnosis"><b>Diagnosis</b>: nothing found.</p>'
    rows = "".join(f"<li><code>{_e(item['code'])}</code>: {_e(item['message'])}</li>" for item in items)
    return f'<div class="diagnosis"><b>Diagnosis</b><ul>{rows}</ul></div>'


def _verdict(summary: dict) -> str:
    passed = all(t["passed"] is not False for t in summary.get("targets", []))
    return '<span class="badge pass">ALL TARGETS MET</span>' if passed else '<span class="badge fail">TARGETS MISSED</span>'


def _run_title(item: RunItem) -> str:
    data = item.data
    name = f"{data['scenario']} [{data['label']}]" if data.get("label") else data["scenario"]  # run --label
    if data.get("replications_detail"):
        return f"{name} (seed {data.get('seed', '—')}, mean of {len(data['replications_detail'])} replications)"
    return f"{name} (seed {data.get('seed', '—')}, replication {data.get('replication', 0)})"


def run_section(item: RunItem) -> str:
    summary = item.data
    parts = [f"<h2>{_e(_run_title(item))} {_verdict(summary)}</h2>", f"<p class=note>from {_e(item.path.name)}</p>"]
    tables = [
        _targets_table(summary),
        _figures_table(summary, LATENCY_ROWS, "Latency"),
        _figures_table(summary, THROUGHPUT_ROWS + BREAKER_ROWS, "Throughput and breaker"),
        _errors_table(summary),
        _figures_table(summary, OVERVIEW_ROWS, "System"),
    ]
    parts.append(f'<div class="tables">{"".join(tables)}</div>')
    if summary.get("deployments"):
        parts.append(_deployments_table(summary))
    parts.append(_breaker_story(summary))
    parts.append(_diagnosis(summary))
    if item.note:
        parts.append(f"<p class=note>{_e(item.note)}</p>")
    if item.result is not None:
        parts += [_image(figure, f"{name} plot") for name, figure in run_figures(item.result).items()]
    return "\n".join(parts)


# The figures with targets, and trips: picked from the dashboard's rows.
SIDE_BY_SIDE = (
    *(row for row in LATENCY_ROWS if row[0] in ("P50", "P95", "P99")),
    *(row for row in THROUGHPUT_ROWS if row[1] in ("throughput.offered_rps", "throughput.rps", "throughput.goodput_rps")),
    ("Error rate", "error_rate", "fraction"),
    *(row for row in BREAKER_ROWS if row[0] in ("Trips", "Recovery time")),
)


def runs_overview(items: list[RunItem]) -> str:
    header = ["figure"] + [_run_title(item) for item in items]
    rows = []
    for label, path, unit in SIDE_BY_SIDE:
        cells = _cell(label)
        for item in items:
            target = {t["metric"]: t for t in item.data.get("targets", [])}.get(path)
            cells += _cell(_with_ci(item.data, path, unit), _colour_of(target) if target else "")
        rows.append(cells)
    rows.append(_cell("Targets", bold=True) + "".join(f"<td>{_verdict(item.data)}</td>" for item in items))
    parts = ["<h2>Runs side by side</h2>", _table(header, rows)]
    results = [item.result for item in items if item.result is not None]
    if len(results) > 1:
        labels = [_run_title(item) for item in items if item.result is not None]
        parts.append(_image(latency_figure(results, labels), "latency distributions overlaid"))
    return "\n".join(parts)


def _number(value) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:,.4g}"
    return str(value)


def sweep_section(item: TableItem) -> str:
    frame = item.frame
    parameters = sweep_parameters(frame)
    metrics = list(dict.fromkeys(frame["metric"]))
    rows = []
    for _, row in frame.iterrows():
        interval = f"[{_number(row['ci_low'])}, {_number(row['ci_high'])}]"
        rows.append("".join(_cell(_number(row[p])) for p in parameters) + _cell(row["metric"]) + _cell(_number(row["mean"])) + _cell(interval))
    parts = [f"<h2>Sweep: {_e(item.path.name)}</h2>", f"<p class=note>Targets drawn are the defaults ({_e(Targets())}).</p>"]
    parts.append(_table([*parameters, "metric", "mean", "95 % CI"], rows))
    if not parameters:
        return "\n".join(parts)
    for metric in metrics:
        target = target_of(metric, Targets())
        parts.append(_image(sweep_figure(frame, parameters[0], metric, target=target), f"{metric} sweep"))
        if len(parameters) == 2:
            parts.append(_image(sweep_heatmap(frame, parameters[0], parameters[1], metric, target=target), f"{metric} heatmap"))
    return "\n".join(parts)


def compare_section(item: TableItem) -> str:
    frame = item.frame
    has_pi = {"pi_low", "pi_high"} <= set(frame.columns)
    rows = []
    for _, row in frame.iterrows():
        verdict = {INSIDE: ("inside", "green"), OUTSIDE: ("outside", "red")}.get(live_colour(row), ("—", "dim"))
        cells = _cell(row["metric"]) + _cell(_number(row["sim_mean"])) + _cell(f"[{_number(row['ci_low'])}, {_number(row['ci_high'])}]")
        if has_pi:
            cells += _cell(f"[{_number(row['pi_low'])}, {_number(row['pi_high'])}]")
        rows.append(cells + _cell(_number(row["live"])) + _cell(verdict[0], verdict[1]))
    header = ["metric", "simulated mean", "95 % CI of the mean", *(["95 % prediction interval (one run)"] if has_pi else []), "live", "live inside?"]
    return "\n".join([f"<h2>Simulated against live: {_e(item.path.name)}</h2>", _table(header, rows), _image(compare_figure(frame), "simulated against live")])


# ---------------------------------------------------------------- the document


def build_report(paths: list[Path], title: str = "simrouter report", *, progress: bool = True) -> str:
    """The HTML text of a report on ``paths`` (run JSONs, sweep or compare tables)."""
    if not paths:
        raise ConfigError("inputs", "give at least one run JSON, sweep table or compare table")
    items = [load_input(Path(p)) for p in paths]
    runs = [item for item in items if isinstance(item, RunItem)]
    for item in track(runs, "re-simulating runs for their plots", enabled=progress):
        rebuild(item)
    body = [f"<h1>{_e(title)}</h1>"]
    if len(runs) > 1:
        body.append(runs_overview(runs))
    for item in items:
        if isinstance(item, RunItem):
            body.append(run_section(item))
        elif item.kind == "sweep":
            body.append(sweep_section(item))
        else:
            body.append(compare_section(item))
    sources = ", ".join(_e(Path(p).name) for p in paths)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + f"\n<p class=note>Inputs: {sources}.</p></body></html>\n"
    )


def write_report(paths: list[Path], out: Path, title: str = "simrouter report", *, progress: bool = True) -> Path:
    out = Path(out)
    text = build_report(paths, title, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
