"""``[[deployments]]`` and the gateway keys of ``[router]`` (docs/gateway.md).

A deployment's ``backend`` keeps what the user wrote (unset keys come from the
top-level ``[backend]`` when used), so ``to_dict`` round-trips and a
top-level override still reaches the deployments that did not set the key;
errors name the field, as every config error does.
"""

import pytest

import simrouter
from simrouter.config import load_scenario
from simrouter.config.loader import scenario_from_dict
from simrouter.config.writer import scenario_toml
from simrouter.errors import ConfigError

TWO = (
    'deployments=[{ name = "a" }, { name = "b", weight = 2.0, backend = { capacity = 4, failures = { processing = 0.5 } }, '
    'breaker = { preset = "pybreaker" }, limiter = { algorithm = "token_bucket", rate = 5.0, burst = 5 }, '
    "faults = [{ start = 1.0, end = 2.0, error_rate = 1.0 }] }]"
)


def test_deployments_keep_what_was_written_and_inherit_the_rest():
    s = load_scenario("baseline", [TWO])
    a, b = s.deployments
    assert s.to_dict()["deployments"][0] == {"name": "a", "weight": 1.0, "backend": {}, "faults": []}
    assert s.to_dict()["deployments"][1]["backend"] == {"capacity": 4, "failures": {"processing": 0.5}}
    backend = b.backend_of(s.backend)
    assert backend.capacity == 4 and backend.failures.processing == 0.5
    assert backend.failures.validation == s.backend.failures.validation and backend.latency == s.backend.latency
    assert a.backend_of(s.backend) == s.backend
    assert a.breaker_of(s.breaker) is s.breaker and b.breaker_of(s.breaker).preset == "pybreaker"
    assert b.limiter.scope == "global"  # a deployment's quota is the whole deployment's by default
    assert a.faults_of(s.faults) == s.faults and b.faults_of(s.faults)[-1].end == 2.0


def test_round_trips_through_dict_and_toml():
    s = load_scenario("baseline", [TWO])
    assert scenario_from_dict(s.to_dict()) == s
    import tomllib

    assert scenario_from_dict(tomllib.loads(scenario_toml(s))) == s


def test_overrides_reach_deployments_by_index_and_from_the_top_level():
    s = load_scenario("baseline", [TWO]).replace(["backend.capacity=3", "deployments.1.backend.queue_limit=7", "deployments.1.breaker.preset=hystrix"])
    a, b = s.deployments
    assert a.backend_of(s.backend).capacity == 3  # did not set capacity: the top-level one
    assert b.backend_of(s.backend).capacity == 4 and b.backend_of(s.backend).queue_limit == 7
    assert b.breaker.preset == "hystrix"  # a preset change starts the section afresh, as for [breaker]


def test_router_gateway_keys_and_defaults():
    r = load_scenario("baseline").router
    assert (r.routing, r.max_fallbacks, r.latency_ttl) == ("simple-shuffle", 2, 60.0)
    assert r.fallback_on == ["breaker_rejected", "rate_limited", "failures", "timeouts"]
    assert load_scenario("baseline").deployments == []


@pytest.mark.parametrize(
    "override, field, words",
    [
        ('deployments=[{ name = "" }]', "deployments.0.name", "non-empty"),
        ('deployments=[{ name = "a" }, { name = "a" }]', "deployments.1.name", "unique"),
        ("deployments=[{ weight = 1.0 }]", "deployments.0.name", "required"),
        ('deployments=[{ name = "a", weight = 0.0 }]', "deployments.0.weight", "> 0"),
        ('router.routing="fastest"', "router.routing", "least-busy"),
        ('router.fallback_on=["errors"]', "router.fallback_on.0", "breaker_rejected"),
        ("router.max_fallbacks=-1", "router.max_fallbacks", ">= 0"),
        ("router.latency_ttl=0", "router.latency_ttl", "> 0"),
        ('deployments=[{ name = "a", backend = { capacity = 0 } }]', "deployments.0.backend.capacity", ">= 1"),
        ('deployments=[{ name = "a", backend = { colour = 1 } }]', "deployments.0.backend.colour", "unknown key"),
        ('deployments=[{ name = "a", backend = { failures = { processing = 0.9, timeout = 0.2 } } }]', "deployments.0.backend.failures", "at most 1"),
        ('deployments=[{ name = "a", backend = { failures = { validation = 0.1 } } }]', "deployments.0.backend.failures.validation", "once per logical request"),
        ('deployments=[{ name = "a", backend = { model = "llm" } }]', "deployments.0.backend.model", "top-level backend.model"),
        ('deployments=[{ name = "a", faults = [{ start = 0.0, end = 1.0 }] }]', "deployments.0.faults.0", "needs error_rate"),
        ('deployments=[{ name = "a", faults = [{ start = 5.0, end = 4.0, error_rate = 1.0 }] }]', "deployments.0.faults.0.end", "after start"),
        ('deployments=[{ name = "a", breaker = { preset = "nope" } }]', "deployments.0.breaker.preset", "litellm"),
        ('deployments=[{ name = "a", limiter = { algorithm = "gcra", size = 1.0 } }]', "deployments.0.limiter.size", "unknown key"),
        ('deployments=[{ name = "a", limiter = { tokens_per_minute = 1000.0 } }]', "deployments.0.limiter.tokens_per_minute", "llm"),
    ],
)
def test_errors_name_the_field(override, field, words):
    with pytest.raises(ConfigError) as caught:
        load_scenario("baseline", [override])
    assert caught.value.field == field, caught.value
    assert words in caught.value.message


def test_a_deployment_fault_may_not_overlap_a_top_level_one():
    with pytest.raises(ConfigError) as caught:
        load_scenario("breaker-failure", ['deployments=[{ name = "a", faults = [{ start = 40.0, end = 50.0, error_rate = 1.0 }] }]'])
    assert caught.value.field == "deployments.0.faults.0.start" and "fault window 0" in caught.value.message


def test_llm_deployments_take_the_top_level_model():
    # LLM deployments run (tests/test_llm_gateway.py); a deployment cannot switch the model.
    assert load_scenario("llm-chat", ['deployments=[{ name = "a", backend = { max_num_seqs = 8 } }]']).deployments[0].backend_of(load_scenario("llm-chat").backend).max_num_seqs == 8
    with pytest.raises(ConfigError) as caught:
        load_scenario("llm-chat", ['deployments=[{ name = "a", backend = { model = "delay" } }]'])
    assert caught.value.field == "deployments.0.backend.model" and "top-level backend.model" in caught.value.message


def test_no_deployments_runs_the_single_backend():
    result = simrouter.simulate("baseline", seed=1)
    assert result.deployment_runs is None and "deployments" not in result.summary and "fallbacks" not in result.summary
    assert "deployment" not in result.to_frame().columns
