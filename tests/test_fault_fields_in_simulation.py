"""A fault field the simulation does not apply is said, not silently ignored."""

import subprocess
import sys
import warnings

import pytest

import simrouter
from simrouter.errors import ScenarioWarning
from simrouter.faults import proxy_only_fields


def test_proxy_only_fields_are_named_with_their_window():
    scenario = simrouter.load_scenario("breaker-failure", ["faults=[{start=30, end=45, error_rate=0.5}, {start=50, end=55, hang_rate=0.2, status=503}]"])
    assert proxy_only_fields(scenario.faults) == ["faults.1.status", "faults.1.hang_rate"]


def test_simulating_them_warns_once_naming_the_field():
    with pytest.warns(ScenarioWarning, match=r"faults\.0\.reset_rate: applied by `simrouter proxy` only"):
        simrouter.simulate("baseline", overrides=["faults=[{start=0.1, end=0.5, reset_rate=0.5}]"])


def test_a_scenario_the_simulation_applies_fully_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScenarioWarning)
        simrouter.simulate("baseline", overrides=["faults=[{start=0.1, end=0.5, error_rate=0.5, latency_factor=2}]"])


def test_the_command_prints_one_warning_line():
    done = subprocess.run(
        [sys.executable, "-m", "simrouter", "run", "baseline", "--set", "faults=[{start=0.1, end=0.5, added_latency=0.1}]"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0
    lines = [line for line in done.stderr.splitlines() if "warning" in line]
    assert lines == ["simrouter: warning: faults.0.added_latency: applied by `simrouter proxy` only; the simulation applies error_rate and latency_factor"]
