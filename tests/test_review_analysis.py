"""Regression tests for the review of the analysis modules (warm-up, replications,
sweep files, the HTML report's formatting)."""

from __future__ import annotations

import numpy as np
import pytest

from simrouter.replications import replicate
from simrouter.warmup import choose_warmup


def test_auto_warmup_counts_only_the_requests_it_really_deletes():
    # Ten users send their first requests at the same instant (a closed workload
    # without think time): those ten are slow, the rest fast. MSER-5 deletes the
    # first batch of 5, but a warm-up is a send time and the other 5 sent at t = 0
    # stay in the statistics; nothing sent before it means nothing deleted.
    sent = np.concatenate([np.zeros(10), 1.0 + np.arange(190) * 0.1])
    latency = np.where(np.arange(200) < 5, 1.0, 0.1) + np.random.default_rng(1).normal(0, 0.002, 200)
    kind = np.zeros(200, dtype=np.int8)  # all successes
    choice = choose_warmup(sent, sent + latency, kind)
    assert choice.seconds == 0.0
    assert choice.deleted_requests == int((sent < choice.seconds).sum()) == 0


def test_a_float_range_ends_exactly_at_its_upper_bound():
    from simrouter.sweepfile import sweep_from_dict

    # 0.19 + (1.0 - 0.19) * 5 / 5 rounds to 1.0000000000000002, which the breaker's
    # failure_rate_threshold (<= 1) refused, failing a valid sweep file.
    spec = sweep_from_dict({"scenario": "concurrent", "grid": {"breaker": {"failure_rate_threshold": {"from": 0.19, "to": 1.0, "steps": 6}}}})
    values = [point.values["breaker.failure_rate_threshold"] for point in spec.points]
    assert values[0] == 0.19 and values[-1] == 1.0
    assert values == pytest.approx(np.linspace(0.19, 1.0, 6), rel=1e-15)


@pytest.mark.parametrize("option", ["compare-configs", "--precision-metric"])
def test_a_text_figure_is_refused_as_a_metric_before_anything_runs(option):
    from simrouter import ConfigError
    from simrouter.comparison import compare_configs

    # breaker.state is a summary key but text: averaging it raised a bare ValueError
    # (a traceback from `simrouter compare-configs --metric breaker.state`).
    with pytest.raises(ConfigError) as caught:
        if option == "compare-configs":
            compare_configs("baseline", "baseline", replications=2, metrics=["breaker.state"])
        else:
            replicate("baseline", precision=0.1, precision_metrics=["breaker.state"])
    assert "breaker.state" in caught.value.message and "number" in caught.value.message
