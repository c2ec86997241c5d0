"""Issue 14's outputs: the dashboard's deployments panel, the timeline's share band and
per-deployment breaker bands, and the HTML report's deployments table.

The panel and the table are checked on a summary built here with three deployments
(one healthy, one that recovered, one dead that never recovered), so each colour
and verdict is known in advance, and on real runs of the built-in ``failover``
scenario (as it is, and with west's cooldown outlasting the run, so it never comes
back and its recovery gate fails). The plot's shares are checked against an
independent count of the run's attempt columns (a plain loop over the attempts).
"""

from __future__ import annotations

import base64
import copy
import io
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from rich.console import Console

import simrouter
from simrouter.cli import main
from simrouter.report import print_dashboard, render_dashboard, write_run_plots
from simrouter.report.dashboard import recovery_verdict
from simrouter.report.deployments_plot import deployment_shares
from simrouter.report.html_report import COLOURS, RunItem, run_section
from simrouter.report.style import BREAKER_COLOURS, png_bytes
from simrouter.report.timeline_plot import timeline_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def single():
    return simrouter.simulate("breaker-failure", seed=1)


def deployment(name, share, sent, succeeded, state, trips, recovery_s, recovered, utilisation, transitions=()):
    failures = sent - succeeded
    return {
        "name": name,
        "share": share,
        "requests": {"sent": sent, "succeeded": succeeded, "rate_limited": 0, "breaker_rejected": 0, "timeouts": 0,
                     "failures": failures, "validation_errors": 0, "queue_full": 0},
        "latency_ms": {"p50": 40.0, "p90": 80.0, "p95": 110.0 + trips, "p99": 310.0 + trips, "avg": 50.0, "max": 900.0, "min": 5.0, "count": succeeded},
        "breaker": {"preset": "litellm", "state": state, "trips": trips, "transitions": list(transitions),
                    "recovery_s": recovery_s, "recovered": recovered},
        "utilisation": utilisation,
    }


def gateway_summary(base: dict) -> dict:
    """``base`` (a real run's summary) with three deployments and fallbacks; targets:
    P95 < 150 ms, P99 < 500 ms, recovery < 60 s (breaker-failure's)."""
    summary = copy.deepcopy(base)
    summary["deployments"] = [
        deployment("east", 0.45, 4500, 4491, "closed", 0, None, None, 0.61),
        deployment("west", 0.45, 4500, 4420, "closed", 1, 3.25, True, 0.55,
                   [{"t": 30.5, "from": "closed", "to": "open"}, {"t": 33.75, "from": "open", "to": "closed"}]),
        deployment("dead", 0.10, 1000, 120, "open", 4, None, False, 0.07, [{"t": 31.0, "from": "closed", "to": "open"}]),
    ]
    summary["fallbacks"] = {"total": 987, "per_request": 0.0987, "succeeded_after_fallback": 954}
    return summary


def text_of(summary, width=160, **console) -> str:
    buffer = io.StringIO()
    print_dashboard(summary, Console(file=buffer, width=width, **console))
    return buffer.getvalue()


def line_of(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if re.search(rf"│ {name} ", line)]
    return line


# ---------------------------------------------------------------- dashboard


def test_dashboard_panel_one_row_per_deployment(single):
    summary = gateway_summary(single.summary)
    text = text_of(summary)
    assert "🌐 DEPLOYMENTS" in text
    east, west, dead = (line_of(text, name) for name in ("east", "west", "dead"))
    # share, attempts, success share of its attempts, P95/P99, utilisation, breaker state, trips
    assert re.search(r"east\s+45\.0%\s+4,500\s+99\.8%\s+110\.0\s+310\.0\s+61\.0%\s+🟢 closed\s+0\s+—", east)
    assert re.search(r"west\s+45\.0%\s+4,500\s+98\.2%\s+111\.0\s+311\.0\s+55\.0%\s+🟢 closed\s+1\s+3\.2 s ✅", west)
    assert re.search(r"dead\s+10\.0%\s+1,000\s+12\.0%\s+114\.0\s+314\.0\s+7\.0%\s+🔴 open\s+4\s+never ❌ FAIL", dead)
    assert "FAIL" not in east + west
    assert "Fallbacks: 987 (0.099 per request), 954 requests succeeded after a fallback" in text


def test_dashboard_colours_the_dead_deployment_red(single):
    text = text_of(gateway_summary(single.summary), force_terminal=True, color_system="standard")

    def colours_at(fragment: str, count: int = 1) -> list[set[str]]:  # the SGR codes where each ``fragment`` starts
        found = re.findall(rf"\x1b\[([0-9;]*)m{re.escape(fragment)}", text)
        assert len(found) == count, fragment
        return [set(codes.split(";")) for codes in found]

    assert all("31" in codes for codes in colours_at("never ❌ FAIL"))  # red
    assert all("32" in codes for codes in colours_at("3.2 s ✅"))  # green: 3.25 s against < 60 s
    assert all("31" in codes for codes in colours_at("🔴 open"))
    assert all("32" in codes for codes in colours_at("🟢 closed", count=2))


@pytest.mark.parametrize(
    ("breaker", "threshold", "text", "colour"),
    [
        ({"recovered": None, "recovery_s": None}, 60.0, "—", "dim"),  # no fault found it open: not checked
        ({"recovered": False, "recovery_s": None}, 60.0, "never ❌ FAIL", "red"),  # never re-closed: fails
        ({"recovered": False, "recovery_s": None}, None, "never", "dim"),  # the target is off
        ({"recovered": True, "recovery_s": 3.25}, 60.0, "3.2 s ✅", "green"),
        ({"recovered": True, "recovery_s": 48.0}, 60.0, "48.0 s ✅", "yellow"),  # within 20 % of the limit
        ({"recovered": True, "recovery_s": 60.0}, 60.0, "60.0 s ❌ FAIL", "red"),  # strict: equal fails
        ({"recovered": True, "recovery_s": 3.25}, None, "3.2 s", "dim"),
    ],
)
def test_recovery_verdict(breaker, threshold, text, colour):
    assert recovery_verdict(breaker, threshold) == (text, colour)


def test_narrow_dashboard_splits_the_panel_without_wrapping(single):
    text = text_of(gateway_summary(single.summary), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in ("east", "west", "dead"):  # one traffic row and one breaker row each
        assert len([line for line in text.splitlines() if re.search(rf"│ {name} ", line)]) == 2
    assert "never ❌ FAIL" in text


def test_no_deployments_no_panel(single):
    text = text_of(single.summary)
    assert "🌐 DEPLOYMENTS" not in text and "Fallbacks" not in text


def test_a_target_that_reports_only_traffic_per_deployment(single):
    """A live target's deployments without latency or breaker: those cells say so, no crash."""
    summary = gateway_summary(single.summary)
    for entry in summary["deployments"]:
        del entry["latency_ms"], entry["breaker"], entry["utilisation"]
    text = text_of(summary)
    assert re.search(r"east\s+45\.0%\s+4,500\s+99\.8%\s+—\s+—\s+—\s+not measured\s+—\s+—", line_of(text, "east"))
    assert "Deployments" in run_section(RunItem(Path("live.json"), summary))


def test_render_dashboard_accepts_the_gateway_summary(single):
    assert render_dashboard(gateway_summary(single.summary), width=80) is not None


# ---------------------------------------------------------------- HTML report


def test_html_deployments_table(single):
    summary = gateway_summary(single.to_dict())
    text = run_section(RunItem(Path("gateway.json"), summary))
    assert "<caption><b>Deployments</b></caption>" in text
    for name in ("east", "west", "dead"):
        assert f'<td style="font-weight:bold;">{name}</td>' in text
    assert f'<td style="color:{COLOURS["red"]};">never ❌ FAIL</td>' in text
    assert f'<td style="color:{COLOURS["green"]};">3.2 s ✅</td>' in text
    assert "<b>Fallbacks</b>: 987 (0.099 per request); 954 requests succeeded after a fallback." in text
    assert "Deployments" not in run_section(RunItem(Path("single.json"), single.to_dict()))


# ---------------------------------------------------------------- real gateway runs

# west's own LiteLLM cooldown outlasts the run: cooled down in its fault (30-90 s), it never comes back
DEAD_TO_THE_END = ("deployments.1.breaker.preset=litellm", "deployments.1.breaker.allowed_fails=3", "deployments.1.breaker.cooldown_time=1000")


@pytest.fixture(scope="module")
def failover():
    return simrouter.simulate("failover", seed=1)


@pytest.fixture(scope="module")
def dead_west():
    return simrouter.simulate("failover", seed=1, overrides=DEAD_TO_THE_END)


def test_real_run_dashboard_shows_a_never_recovered_deployment_red(dead_west):
    summary = dead_west.summary
    assert [d["name"] for d in summary["deployments"]] == ["east", "west", "central"]
    text = text_of(summary)
    west = line_of(text, "west")
    assert "🔴 open" in west and "never ❌ FAIL" in west
    assert "FAIL" not in line_of(text, "east") + line_of(text, "central")
    (gate,) = [t for t in summary["targets"] if t["name"] == "recovery:west"]
    assert gate["passed"] is False  # the panel's verdict is the gate's
    # the overall breaker panel is no healthier than the worst deployment
    assert "🔴 UNHEALTHY" in text and "not recovered" in text
    assert "One breaker per deployment" in text
    coloured = text_of(summary, force_terminal=True, color_system="standard")
    assert "31" in re.search(r"\x1b\[([0-9;]*)mnever ❌ FAIL", coloured).group(1).split(";")
    fallbacks = summary["fallbacks"]
    assert f"Fallbacks: {fallbacks['total']:,} ({fallbacks['per_request']:.3f} per request)" in text


def test_real_run_dashboard_recovered_deployment(failover):
    text = text_of(failover.summary)
    west = failover.summary["deployments"][1]
    assert west["breaker"]["recovered"] is True
    assert f"{west['breaker']['recovery_s']:,.1f} s ✅" in line_of(text, "west")
    assert f"{west['share']:.1%}" in line_of(text, "west")


def independent_shares(deployment, sent, interval, k):
    """{interval start: [share of each deployment]} by counting attempts one by one."""
    counts = {}
    for index, t in zip(deployment.tolist(), sent.tolist()):
        if index < 0:
            continue
        row = counts.setdefault(np.floor(t / interval) * interval, [0] * k)
        row[index] += 1
    return {start: [c / sum(row) for c in row] for start, row in counts.items()}


@pytest.mark.parametrize("interval", [1.0, 5.0])
def test_deployment_shares_match_an_independent_count(failover, interval):
    shares = deployment_shares(failover, interval)
    assert list(shares.columns) == ["east", "west", "central"]
    log = failover.attempt_log
    expected = independent_shares(log.deployment, log.sent, interval, 3)
    assert sorted(shares.index) == sorted(expected)
    for start, row in expected.items():
        assert shares.loc[start].to_list() == pytest.approx(row, abs=1e-12)
    assert shares.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-12)


def upper_edge(layer: PolyCollection) -> np.ndarray:
    """The y values of a stackplot layer's upper edge (fill_between's polygon: lower edge forward, then upper edge back)."""
    vertices = layer.get_paths()[0].vertices
    return np.round(vertices[len(vertices) // 2 :, 1], 9)


def test_timeline_with_deployments_has_share_band_and_a_breaker_band_each(failover):
    figure = timeline_figure(failover)
    axes = figure.axes
    assert len(axes) == 3 + 3  # latency, answers, shares, one breaker band per deployment
    share_axes, bands = axes[2], axes[3:]
    # the stacked share band: the top layer's outline is 1 on every interval with routed attempts
    layers = [c for c in share_axes.collections if isinstance(c, PolyCollection)]
    assert len(layers) == 3
    assert set(upper_edge(layers[-1])) <= {0.0, 1.0} and 1.0 in upper_edge(layers[-1])  # 0: no routed attempt
    shares = deployment_shares(failover)
    assert set(np.round(shares["east"], 9)) | {0.0} >= set(upper_edge(layers[0])) - {0.0}
    assert set(np.round(shares["east"], 9)) <= set(upper_edge(layers[0]))  # east's layer: its share per interval
    assert share_axes.get_ylim() == (0.0, 1.0)
    assert [text.get_text() for text in share_axes.get_legend().get_texts()][:3] == ["east", "west", "central"]
    # each band is its deployment's breaker, one bar per state span, from the summary's transition log
    for band, entry in zip(bands, failover.summary["deployments"]):
        assert band.get_ylabel() == entry["name"]
        logged = entry["breaker"]["transitions"]
        expected = [(0.0, "closed")] + [(tr["t"], tr["to"]) for tr in logged]
        drawn = [(bar.get_paths()[0].vertices[:, 0].min(), to_hex(bar.get_facecolor()[0])) for bar in band.collections]
        assert drawn == [(pytest.approx(t, abs=1e-9), BREAKER_COLOURS[state]) for t, state in expected]
    assert len(bands[1].collections) == 1 + len(failover.summary["deployments"][1]["breaker"]["transitions"]) > 3
    assert bands[-1].get_xlabel() == "simulated time (s)"

    def shaded(ax):
        return {(round(p.get_x(), 6), round(p.get_width(), 6)) for p in ax.patches}

    # west's own fault (30-90 s): on the shared panels and west's band, not on the others' bands
    for ax in (axes[0], axes[1], share_axes, bands[1]):
        assert (30.0, 60.0) in shaded(ax)
    assert (30.0, 60.0) not in shaded(bands[0]) | shaded(bands[2])
    assert png_bytes(figure).startswith(PNG_MAGIC)


def test_timeline_without_deployments_keeps_its_three_panels(single):
    figure = timeline_figure(single)
    assert len(figure.axes) == 3 and figure.axes[2].get_ylabel() == "breaker"


def test_write_run_plots_writes_real_pngs(failover, tmp_path):
    written = write_run_plots(failover, tmp_path)
    assert [path.name for path in written] == ["failover-latency.png", "failover-timeline.png"]
    for path in written:
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 10_000


def test_cli_report_of_a_gateway_run(tmp_path):
    run_json, html_out = tmp_path / "dead.json", tmp_path / "report.html"
    overrides = [arg for override in DEAD_TO_THE_END for arg in ("--set", override)]
    assert main(["run", "failover", "--seed", "2", *overrides, "--check", "--json", str(run_json)]) == 1  # the recovery gate fails
    assert main(["report", str(run_json), "-o", str(html_out)]) == 0
    text = html_out.read_text()
    assert "<caption><b>Deployments</b></caption>" in text
    assert f'<td style="color:{COLOURS["red"]};">never ❌ FAIL</td>' in text
    # the breaker story is each deployment's, not a "stayed closed" of the empty overall log
    assert "<p><b>west</b> (litellm), final state open:</p><ul><li>" in text
    assert "the breaker stayed closed" not in text
    images = dict(re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', text))
    assert set(images) == {"latency plot", "timeline plot"}  # rebuilt: the run's figures matched
    assert base64.b64decode(images["timeline plot"]).startswith(PNG_MAGIC)
