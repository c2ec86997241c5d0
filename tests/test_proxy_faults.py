"""Fault windows (``[[faults]]`` with the proxy's fields) and the clock-free fault decisions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simrouter.config import FaultWindow, scenario_from_dict
from simrouter.errors import ConfigError
from simrouter.faults import KINDS, NO_FAULT, Timeline, active_window, decide, error_body, retry_after


def faults(**fields):
    return scenario_from_dict({"faults": [{"start": 1.0, "end": 2.0, **fields}]}).faults[0]


def test_new_fields_parse_with_defaults():
    w = faults(error_rate=0.2, status=429, added_latency=0.5, per_chunk_latency=0.01, hang_rate=0.1, reset_rate=0.1, cut_stream_rate=0.1)
    assert (w.status, w.added_latency, w.per_chunk_latency, w.hang_rate, w.reset_rate, w.cut_stream_rate) == (429, 0.5, 0.01, 0.1, 0.1, 0.1)
    plain = faults(error_rate=1.0)
    assert (plain.status, plain.added_latency, plain.hang_rate) == (500, 0.0, 0.0)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"error_rate": 0.5, "status": 404}, "faults.0.status"),
        ({"hang_rate": 1.5}, "faults.0.hang_rate"),
        ({"reset_rate": -0.1}, "faults.0.reset_rate"),
        ({"added_latency": -1.0}, "faults.0.added_latency"),
        ({"error_rate": 0.6, "hang_rate": 0.3, "reset_rate": 0.2}, "faults.0.error_rate"),
        ({"status": 503}, "faults.0"),  # changes nothing: a mistake
    ],
)
def test_bad_fields_are_one_config_error_naming_the_field(fields, field):
    with pytest.raises(ConfigError) as caught:
        faults(**fields)
    assert caught.value.args[0].startswith(field) or field in str(caught.value)


def test_hang_only_window_is_valid():
    assert faults(hang_rate=0.5).hang_rate == 0.5
    assert faults(added_latency=0.2).added_latency == 0.2


def test_decide_splits_the_draw_into_exclusive_shares_in_order():
    w = FaultWindow(start=0, end=1, error_rate=0.1, hang_rate=0.2, reset_rate=0.3, cut_stream_rate=0.15, status=503, latency_factor=2.0)
    grid = (np.arange(100_000) + 0.5) / 100_000  # an exact quadrature of the uniform
    counts = dict.fromkeys(KINDS, 0)
    for u in grid:
        counts[decide(w, u).kind] += 1
    assert counts == {"error": 10_000, "hang": 20_000, "reset": 30_000, "cut_stream": 15_000, "none": 25_000}
    assert decide(w, 0.05).status == 503
    assert decide(w, 0.95).latency_factor == 2.0 and decide(w, 0.95).forwarded


def test_decide_matches_the_simulation_for_error_only_windows():
    # The simulated backend fails a call when u < error_rate: the same split.
    w = FaultWindow(start=0, end=1, error_rate=0.37)
    rng = np.random.default_rng(5)
    for u in rng.random(2000):
        assert (decide(w, u).kind == "error") == (u < 0.37)


def test_first_byte_delay():
    w = FaultWindow(start=0, end=1, latency_factor=3.0, added_latency=0.25)
    d = decide(w, 0.5)
    assert d.first_byte_delay(0.1) == pytest.approx(0.2 + 0.25)
    assert FaultWindow(start=0, end=1, latency_factor=0.5).latency_factor == 0.5
    assert decide(FaultWindow(start=0, end=1, latency_factor=0.5), 0.5).first_byte_delay(1.0) == 0.0  # cannot speed up a backend


def test_timeline_covers_start_inclusive_end_exclusive_and_draws_only_inside():
    windows = [FaultWindow(start=1.0, end=2.0, error_rate=1.0), FaultWindow(start=3.0, end=4.0, hang_rate=1.0)]
    line = Timeline(windows)
    draws = []

    def draw():
        draws.append(1)
        return 0.5

    assert line.decision(0.999, draw) is NO_FAULT
    assert line.decision(1.0, draw).kind == "error"
    assert line.decision(1.999, draw).kind == "error"
    assert line.decision(2.0, draw) is NO_FAULT
    assert line.decision(3.5, draw).kind == "hang"
    assert line.decision(4.0, draw) is NO_FAULT
    assert len(draws) == 3
    assert active_window(windows, 3.2) is windows[1] and active_window(windows, 2.5) is None


@pytest.mark.parametrize("status, code", [(500, "internal_error"), (429, "rate_limit_exceeded"), (503, "service_unavailable")])
def test_error_body_is_openai_shaped(status, code):
    body = json.loads(error_body(status))
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}
    assert body["error"]["code"] == code


def test_retry_after_counts_whole_seconds_to_the_window_end():
    assert retry_after(10.0, 7.2) == "3"
    assert retry_after(10.0, 9.99) == "1"
    assert retry_after(10.0, 12.0) == "1"
