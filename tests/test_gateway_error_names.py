"""Every error inside a deployment names its full dotted path (``deployments.N....``).

A section's own checks (``__post_init__``) name their fields as if the section
stood at its usual place (``limiter.burst``); ``config.schema.placed`` renames
them to where the section is: the field and the fields the message mentions.
"""

from __future__ import annotations

import pytest

import simrouter
from simrouter.errors import ConfigError

CASES = [
    # the deployment's limiter: its own checks, its algorithm's keys, a token limit
    ('deployments.1.limiter={algorithm="token_bucket", rate=10.0, burst=0}', "deployments.1.limiter.burst", None),
    ('deployments.1.limiter={algorithm="leaky_bucket", rate=10.0, burst=5, nodelay=true, delay=2}', "deployments.1.limiter.delay", None),
    ('deployments.1.limiter={algorithm="token_bucket", rate=10.0, window=5}', "deployments.1.limiter.window", "[deployments.1.limiter]"),
    ('deployments.1.limiter={algorithm="token_bucket", rate=10.0, tokens_burst=5}', "deployments.1.limiter.tokens_burst", None),
    ('deployments.1.limiter={algorithm="token_bucket", rate=-1.0}', "deployments.1.limiter.rate", None),
    # the deployment's breaker: every preset's own cross-field checks
    ('deployments.2.breaker={preset="default", window_size=5, minimum_calls=10}', "deployments.2.breaker.minimum_calls", "deployments.2.breaker.window_size"),
    ('deployments.2.breaker={preset="envoy", base_ejection_time=30, max_ejection_time=10}', "deployments.2.breaker.max_ejection_time", "deployments.2.breaker.base_ejection_time"),
    ('deployments.2.breaker={preset="hystrix", rolling_window=0.1}', "deployments.2.breaker.rolling_window", None),
    ('deployments.2.breaker={preset="resilience4j", failure_rate_threshold=0.5}', "deployments.2.breaker.failure_rate_threshold", None),
    ('deployments.2.breaker={preset="litellm", cooldown_time=0}', "deployments.2.breaker.cooldown_time", None),
    # the deployment's own fault windows
    ("deployments.1.faults=[{start=0.0, end=1.0, error_rate=0.7, hang_rate=0.5}]", "deployments.1.faults.0.error_rate", None),
    ("deployments.1.faults=[{start=5.0, end=1.0, error_rate=1.0}]", "deployments.1.faults.0.end", None),
    ("deployments.1.faults=[{start=1.0, end=2.0}]", "deployments.1.faults.0", None),
    # the deployment's backend keys (checked once laid over [backend])
    ("deployments.0.backend.capacity=0", "deployments.0.backend.capacity", None),
    ("deployments.0.backend.failures={processing=0.7, timeout=0.5}", "deployments.0.backend.failures", None),
    ('deployments.0.backend.latency={dist="lognormal", median=-1}', "deployments.0.backend.latency.median", None),
    ("deployments.0.weight=0", "deployments.0.weight", None),
]


@pytest.mark.parametrize(("override", "field", "mentioned"), CASES, ids=[case[1] for case in CASES])
def test_an_error_inside_a_deployment_names_its_full_path(override, field, mentioned):
    with pytest.raises(ConfigError) as caught:
        simrouter.load_scenario("failover", [override])
    assert caught.value.field == field, str(caught.value)
    if mentioned is not None:
        assert mentioned in caught.value.message


def test_the_top_level_sections_keep_their_names():
    for override, field in [
        ("limiter.burst=0", "limiter.burst"),
        ('breaker={preset="envoy", base_ejection_time=30, max_ejection_time=10}', "breaker.max_ejection_time"),
        ("faults=[{start=0.0, end=1.0, error_rate=0.7, hang_rate=0.5}]", "faults.0.error_rate"),  # the window's index, too
        ("limiter.tokens_burst=5", "limiter.tokens_burst"),  # a token limit without the LLM backend was accepted silently
    ]:
        with pytest.raises(ConfigError) as caught:
            simrouter.load_scenario("failover", [override])
        assert caught.value.field == field, str(caught.value)
        assert "deployments" not in caught.value.message
