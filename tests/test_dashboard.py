"""The rich terminal dashboard: the colour rule and rendering of real and edge-case summaries."""

from __future__ import annotations

import copy
import io
import math

import pytest
from rich.console import Console

import simrouter
from simrouter.report import print_dashboard, render_dashboard, target_colour

SECTIONS = (
    "📊 LATENCY METRICS",
    "🚀 THROUGHPUT METRICS",
    "🛡️ CIRCUIT BREAKER STATUS",
    "⚠️ ERROR TRACKING",
    "📈 SYSTEM OVERVIEW",
    "🎯 PERFORMANCE TARGETS",
)


@pytest.mark.parametrize(
    ("value", "threshold", "comparison", "colour"),
    [
        # "<" target of 150 ms: yellow band [120, 150), failing from 150 (strict comparison)
        (100.0, 150.0, "<", "green"),
        (119.9, 150.0, "<", "green"),
        (120.0, 150.0, "<", "yellow"),
        (149.9, 150.0, "<", "yellow"),
        (150.0, 150.0, "<", "red"),
        (400.0, 150.0, "<", "red"),
        (0.0, 0.01, "<", "green"),
        # ">" target of 100 rps: failing up to 100, yellow band (100, 120]
        (150.0, 100.0, ">", "green"),
        (120.1, 100.0, ">", "green"),
        (120.0, 100.0, ">", "yellow"),
        (100.1, 100.0, ">", "yellow"),
        (100.0, 100.0, ">", "red"),
        (10.0, 100.0, ">", "red"),
        # not checked
        (None, 150.0, "<", "dim"),
        (120.0, None, "<", "dim"),
        (None, None, ">", "dim"),
        (120.0, math.inf, "<", "dim"),
        (120.0, 0.0, ">", "dim"),  # a minimum of 0 disables the target
    ],
)
def test_target_colour(value, threshold, comparison, colour):
    assert target_colour(value, threshold, comparison) == colour


@pytest.fixture(scope="module")
def result():
    return simrouter.simulate("concurrent", seed=1)


def text_of(summary, width=100, **kwargs) -> str:
    buffer = io.StringIO()
    print_dashboard(summary, Console(file=buffer, width=width), **kwargs)
    return buffer.getvalue()


def test_real_run_shows_every_section_and_p95(result):
    summary = result.summary
    text = text_of(summary)
    for title in SECTIONS:
        assert title in text
    assert f"{summary['latency_ms']['p95']:.1f} ms" in text
    assert f"{summary['throughput']['rps']:.1f} req/s" in text
    assert "🟢 HEALTHY" in text
    assert "\x1b[" not in text  # a file is not a terminal: plain text
    for target in summary["targets"]:
        assert target["name"] in text


def test_full_dict_shows_workload_and_wall_time(result):
    text = text_of(result.to_dict(), width=160, wall_time_s=1.5)
    assert "closed, 10 users × 100 req" in text
    assert "Wall time" in text and "1.5 s" in text
    assert "250.0 ms" in text_of(result.to_dict(), width=160, wall_time_s=0.25)
    assert "Wall time" not in text_of(result.summary)
    assert "Wall time" in text_of(result)  # a RunResult brings its own


def test_accepts_a_run_result_and_narrow_consoles(result):
    for width in (60, 80, 160):
        assert "📊 LATENCY METRICS" in text_of(result, width=width)
    assert render_dashboard(result.summary) is not None


def test_colours_follow_the_targets_on_a_terminal(result):
    summary = copy.deepcopy(result.summary)
    summary["latency_ms"]["p95"] = summary["targets"][0]["value"] = 131.5  # within 20 % of < 150
    buffer = io.StringIO()
    print_dashboard(summary, Console(file=buffer, width=120, force_terminal=True, color_system="standard"))
    text = buffer.getvalue()
    start = text.index("131.5 ms")
    assert "33m" in text[start - 12 : start]  # yellow


def test_empty_summary_renders_not_checked(result):
    summary = copy.deepcopy(result.summary)
    summary["latency_ms"] = {key: None for key in summary["latency_ms"]} | {"count": 0}
    summary["latency_ms_window"] = dict(summary["latency_ms"])
    summary["breaker"]["avg_response_ms"] = None
    for target in summary["targets"]:
        if target["metric"].startswith("latency_ms"):
            target["value"] = target["passed"] = None
    summary["targets"][-1]["threshold"] = None  # a disabled target
    text = text_of(summary)
    assert "not checked" in text
    assert "—" in text
    for title in SECTIONS:
        assert title in text


def test_tripped_breaker_shows_recovery_and_transitions(result):
    summary = copy.deepcopy(result.summary)
    transitions = [
        {"t": 10.0, "from": "closed", "to": "open"},
        {"t": 40.0, "from": "open", "to": "half_open"},
        {"t": 40.5, "from": "half_open", "to": "open"},
        {"t": 70.5, "from": "open", "to": "half_open"},
        {"t": 71.0, "from": "half_open", "to": "closed"},
    ]
    recovery = {"fault": 0, "fault_end": 20.0, "closed_at": 71.0, "recovery_s": 51.0}
    summary["breaker"].update(trips=2, transitions=transitions, recovery_s=51.0, recovered=True, recoveries=[recovery])
    summary["targets"][-1].update(value=51.0, passed=True)
    text = text_of(summary)
    assert "51.0 s" in text
    assert "half_open → closed" in text
    assert "closed → open" not in text  # only the last three transitions
    assert "✅ PASS" in text

    summary["breaker"].update(state="open", healthy=False, recovery_s=None, recovered=False)
    summary["targets"][-1].update(value=None, passed=False)
    text = text_of(summary)
    assert "🔴 UNHEALTHY" in text
    assert "OPEN" in text
    assert "not recovered" in text
    assert "❌ FAIL" in text
    assert "TARGETS MISSED" in text
