"""Issue 15, point 3: no silent unit traps (rates as percentages, milliseconds
typed where seconds are meant, intervals of positive figures below 0)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import simrouter
from simrouter.cli import main
from simrouter.config.units import UnitWarning, unit_warnings


@pytest.mark.parametrize("field", ["failure_rate_threshold", "slow_call_rate_threshold"])
def test_a_resilience4j_rate_below_1_is_refused_as_a_percentage(field):
    with pytest.raises(simrouter.ConfigError) as caught:
        simrouter.load_scenario("baseline", ["breaker.preset=resilience4j", f"breaker.{field}=0.5"])
    message = str(caught.value)
    assert f"breaker.{field}" in message and "percentage" in message and "50" in message


def test_resilience4j_percentages_from_1_still_load():
    scenario = simrouter.load_scenario("baseline", ["breaker.preset=resilience4j", "breaker.failure_rate_threshold=1"])
    assert scenario.breaker.failure_rate_threshold == 1


def test_the_default_breaker_keeps_its_fraction():
    assert simrouter.load_scenario("baseline", ["breaker.failure_rate_threshold=0.5"]).breaker.failure_rate_threshold == 0.5


def test_a_latency_typed_in_milliseconds_warns_naming_the_field_and_seconds():
    with pytest.warns(UnitWarning) as caught:
        simrouter.load_scenario("baseline", ['backend.latency={dist="lognormal",p50=80,p99=200}'])
    (warning,) = [w for w in caught if w.category is UnitWarning]
    text = str(warning.message)
    assert text.startswith("backend.latency") and "seconds" in text and "\n" not in text


def test_a_think_time_typed_in_milliseconds_warns():
    scenario = simrouter.Scenario(workload=simrouter.WorkloadConfig(think_time=simrouter.Constant(500.0)), duration=10_000.0)
    assert [m.split(":")[0] for m in unit_warnings(scenario)] == ["workload.think_time"]


def test_a_latency_median_over_the_router_timeout_warns_below_60_s():
    overrides = ['backend.latency={dist="constant",value=8}', "router.timeout=5"]
    with pytest.warns(UnitWarning, match="router timeout"):
        simrouter.load_scenario("baseline", overrides)


def test_plausible_seconds_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitWarning)
        for name in simrouter.builtin_names():
            simrouter.load_scenario(name)
        simrouter.load_scenario("baseline", ['backend.latency={dist="lognormal",p50=0.08,p99=0.4}'])


def test_the_command_prints_one_warning_line(capsys):
    status = main(["run", "baseline", "--set", 'backend.latency={dist="constant",value=80}', "--set", "workload.requests_per_user=2", "--set", "duration=1000"])
    assert status == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("simrouter: warning: backend.latency") and "seconds" in lines[0]


def test_replicated_intervals_of_positive_figures_never_go_below_zero():
    # Rare timeouts: a count that is 0 in most replications and large in one has a
    # t-interval reaching below 0; it is clipped and listed.
    scenario = simrouter.load_scenario("concurrent", ["backend.failures.timeout=0.002", "workload.requests_per_user=20"])
    result = simrouter.replicate(scenario, replications=3)
    summary = result.summary
    lows = [interval[0] for interval in summary["ci95"].values() if interval]
    assert min(lows) >= 0.0
    clipped = summary["ci95_clipped_at_0"]
    assert clipped and all(summary["ci95"][key][0] == 0.0 for key in clipped)
    values = result.values(clipped[0])
    assert values.mean() - 4.303 * values.std(ddof=1) / math.sqrt(3) < 0  # the raw t-interval did go below 0


def test_sweep_intervals_of_positive_figures_are_clipped_and_listed():
    import pandas as pd

    from simrouter.sweepfile import sweep_from_dict

    spec = sweep_from_dict({"scenario": "baseline", "replications": 3, "metrics": ["requests.timeouts"], "grid": {"backend.capacity": [1]}})
    table = pd.DataFrame({"point": [0, 0, 0], "backend.capacity": [1, 1, 1], "requests.timeouts": [0.0, 0.0, 9.0]})
    frame = simrouter.aggregate(table, spec)
    assert frame["ci_low"].min() == 0.0 and frame.attrs["ci_low_clipped_at_0"] == ["requests.timeouts"]
    assert np.isclose(frame["half_width"].iloc[0], 4.303 * np.std([0, 0, 9], ddof=1) / math.sqrt(3), rtol=1e-3)


def test_capacity_for_p95_quick_prints_no_negative_latency_bound(tmp_path, monkeypatch, capsys):
    import importlib
    from pathlib import Path

    import pandas as pd

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "experiments"))
    module = importlib.import_module("capacity_for_p95")
    answer = module.main(["--quick", "--workers", "1", "--out", str(tmp_path)])
    assert (answer["p95_ci_low"].dropna() >= 0).all()
    sweep = pd.read_csv(tmp_path / "capacity_for_p95.sweep.csv")
    assert (sweep["ci_low"].dropna() >= 0).all()
    out = capsys.readouterr().out
    if (sweep["ci_low"] == 0).any():
        assert "clipped at 0" in out
