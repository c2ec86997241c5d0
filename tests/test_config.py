"""Configuration: loading, overrides, and one clear message per mistake."""

import math

import pytest

from simrouter import ConfigError, Lognormal, load_scenario, scenario_from_dict
from simrouter.cli import EXIT_CONFIG, main
from simrouter.config import builtin_names


def test_builtins_load_and_round_trip():
    assert set(builtin_names()) == {"baseline", "concurrent", "rate-limit-stress", "breaker-failure", "retry-storm", "llm-chat", "llm-tpm", "failover"}
    for name in builtin_names():
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario_from_dict(scenario.to_dict()) == scenario


def test_overrides_parse_toml_values_and_index_lists():
    s = load_scenario("breaker-failure", ["backend.capacity=4", "router.timeout=inf", "faults.0.end=50",
                                          'backend.latency={ dist = "gamma", mean = 0.05, cv = 2 }',
                                          "workload.arrival=constant"])
    assert s.backend.capacity == 4
    assert math.isinf(s.router.timeout)
    assert s.faults[0].end == 50.0
    assert s.backend.latency.mean == pytest.approx(0.05)
    assert s.workload.arrival == "constant"


def test_lognormal_from_percentiles():
    d = Lognormal.from_percentiles(0.045, 0.234)
    assert d.quantile(0.5) == pytest.approx(0.045)
    assert d.quantile(0.99) == pytest.approx(0.234)


def test_empirical_from_file(tmp_path):
    samples = tmp_path / "lat.txt"
    samples.write_text("0.01\n0.02\n0.03\n")
    toml = tmp_path / "s.toml"
    toml.write_text('[backend]\nlatency = { dist = "empirical", file = "lat.txt" }\n')
    assert load_scenario(toml).backend.latency.mean == pytest.approx(0.02)


# (overrides, the field the message must name, a phrase it must contain)
MISTAKES = [
    (["backend.capacty=4"], "backend.capacty", "did you mean 'capacity'"),
    (["backend.capacity=0"], "backend.capacity", ">= 1"),
    (["backend.capacity=2.5"], "backend.capacity", "whole number"),
    (["backend.capacity=lots"], "backend.capacity", "whole number"),
    (["workload.model=batch"], "workload.model", "'closed', 'open', 'sequential'"),
    (["limiter.rate=-5"], "limiter.rate", "> 0"),
    (["backend.failures.processing=1.5"], "backend.failures.processing", "<= 1"),
    (["breaker.count_timeouts=1"], "breaker.count_timeouts", "true or false"),
    (['backend.latency={ dist = "lognormal", p50 = 0.2, p99 = 0.1 }'], "backend.latency.p99", "greater than p50"),
    (['backend.latency={ dist = "weibull" }'], "backend.latency.dist", "constant, exponential"),
    (['backend.latency={ dist = "gamma", mean = 1 }'], "backend.latency.cv", "required"),
    (["warmup=500"], "warmup", "shorter than duration"),
    (["workload.model=sequential"], "workload.users", "exactly one user"),
    (["workload.stages=[{ duration = 10, rate = 5 }]"], "workload.stages", "either workload.rate or workload.stages"),
    (["workload.model=closed"], "workload.rate", "only the open model"),
    (["breaker.success_threshold=9"], "breaker.success_threshold", "half_open_max_calls"),
    (["faults.0.end=10"], "faults.0.end", "after start"),
    (["faults.3.end=10"], "faults.3", "list index"),
    (["backend=3"], "backend", "table"),
    (["nonsense"], "--set", "section.key=value"),
]


@pytest.mark.parametrize("overrides, field, phrase", MISTAKES, ids=[m[1] + ":" + m[2] for m in MISTAKES])
def test_each_mistake_names_its_field(overrides, field, phrase):
    with pytest.raises(ConfigError) as caught:
        load_scenario("breaker-failure", overrides)
    assert caught.value.field == field
    assert phrase in str(caught.value)


@pytest.mark.parametrize("overrides, field, phrase", MISTAKES[:6], ids=[m[1] for m in MISTAKES[:6]])
def test_cli_reports_mistake_in_one_line_with_status_2(overrides, field, phrase, capsys):
    argv = ["run", "breaker-failure"]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert field in err and phrase in err


def test_cli_bad_files(tmp_path, capsys):
    broken = tmp_path / "broken.toml"
    broken.write_text("[backend\ncapacity = 3")
    assert main(["run", str(broken)]) == EXIT_CONFIG
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.toml")]) == EXIT_CONFIG
    assert "cannot read" in capsys.readouterr().err
    assert main(["run", "concurent"]) == EXIT_CONFIG
    assert "did you mean 'concurrent'" in capsys.readouterr().err
