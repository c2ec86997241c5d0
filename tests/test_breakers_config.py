"""``[breaker] preset = ...``: each preset's own keys, errors, round trips, overrides."""

import math

import pytest

from simrouter import ConfigError, load_scenario, scenario_from_dict
from simrouter.cli import EXIT_CONFIG, main
from simrouter.config import BREAKER_PRESETS, BreakerConfig, HystrixBreakerConfig, PollyBreakerConfig, Resilience4jBreakerConfig
from simrouter.policies.breakers import PRESETS, build_breaker


@pytest.mark.parametrize("preset", BREAKER_PRESETS)
def test_each_preset_loads_builds_and_round_trips(preset):
    scenario = load_scenario("breaker-failure", [f"breaker.preset={preset}"])
    assert scenario.breaker.preset == preset
    assert isinstance(scenario.breaker, BREAKER_PRESETS[preset])
    assert isinstance(build_breaker(scenario.breaker), PRESETS[preset])
    assert scenario_from_dict(scenario.to_dict()) == scenario
    # and so does the Scenario itself, through replace() (to_dict -> overrides -> validate)
    assert scenario.replace([]) == scenario


def test_a_section_states_only_what_differs_from_the_library_defaults():
    s = load_scenario("breaker-failure", ["breaker.preset=resilience4j", "breaker.sliding_window_type=TIME_BASED",
                                          "breaker.exponential_max_wait_duration_in_open_state=inf"])
    assert s.breaker == Resilience4jBreakerConfig(sliding_window_type="TIME_BASED")
    assert s.breaker.wait_duration_in_open_state == 60.0 and math.isinf(s.breaker.exponential_max_wait_duration_in_open_state)


def test_default_preset_keeps_its_field_names():
    s = load_scenario("breaker-failure")
    assert isinstance(s.breaker, BreakerConfig) and s.breaker.open_duration == 30.0


def test_changing_preset_starts_from_that_presets_defaults_whatever_the_order():
    base = load_scenario("breaker-failure", ["breaker.open_duration=12"])  # default-preset keys in the data
    for overrides in (["breaker.preset=hystrix", "breaker.sleep_window=2"], ["breaker.sleep_window=2", "breaker.preset=hystrix"]):
        assert base.replace(overrides).breaker == HystrixBreakerConfig(sleep_window=2.0)
    # the same preset again keeps what was set
    polly = load_scenario("breaker-failure", ["breaker.preset=polly", "breaker.break_duration=7"])
    assert polly.replace(["breaker.preset=polly"]).breaker == PollyBreakerConfig(break_duration=7.0)


def test_a_toml_file_with_a_preset_section(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[breaker]\npreset = "polly"\nfailure_ratio = 0.25\nbreak_duration = 2.0\n')
    assert load_scenario(path).breaker == PollyBreakerConfig(failure_ratio=0.25, break_duration=2.0)


# (overrides, the field the message must name, phrases it must contain)
MISTAKES = [
    (["breaker.preset=hystrix", "breaker.sleep_windw=3"], "breaker.sleep_windw",
     ["[breaker] with preset = 'hystrix'", "did you mean 'sleep_window'", "accepted keys: preset, request_volume_threshold"]),
    (["breaker.preset=pybreaker", "breaker.open_duration=3"], "breaker.open_duration", ["fail_max, reset_timeout, success_threshold"]),
    (["breaker.preset=resilience4j", "breaker.failure_threshold=3"], "breaker.failure_threshold", ["did you mean 'failure_rate_threshold'"]),
    (["breaker.preset=hystrx"], "breaker.preset", ["'resilience4j', 'pybreaker', 'hystrix', 'polly'"]),
    (["breaker.preset=resilience4j", "breaker.failure_rate_threshold=150"], "breaker.failure_rate_threshold", ["<= 100"]),
    (["breaker.preset=resilience4j", "breaker.randomized_wait_factor=1"], "breaker.randomized_wait_factor", ["< 1"]),
    (["breaker.preset=resilience4j", "breaker.sliding_window_type=SLIDING"], "breaker.sliding_window_type", ["'COUNT_BASED', 'TIME_BASED'"]),
    (["breaker.preset=polly", "breaker.minimum_throughput=1"], "breaker.minimum_throughput", [">= 2"]),
    (["breaker.preset=hystrix", "breaker.rolling_window=0.1"], "breaker.rolling_window", ["at least one health snapshot"]),
    (["breaker.success_threshold=9"], "breaker.success_threshold", ["half_open_max_calls"]),
]


@pytest.mark.parametrize("overrides, field, phrases", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_names_its_field(overrides, field, phrases):
    with pytest.raises(ConfigError) as caught:
        load_scenario("breaker-failure", overrides)
    assert caught.value.field == field
    for phrase in phrases:
        assert phrase in str(caught.value)


def test_cli_reports_a_wrong_key_for_the_preset_in_one_line(capsys):
    assert main(["run", "breaker-failure", "--set", "breaker.preset=polly", "--set", "breaker.fail_max=3"]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "breaker.fail_max" in err and "failure_ratio" in err
