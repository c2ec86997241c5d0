"""Scenario configuration: typed, validated, loaded from TOML or built in Python.

A ``Scenario`` is a tree of frozen dataclasses (``sections``); ``schema``
validates plain data into such dataclasses (every key, type and value, raising
``ConfigError`` naming the dotted field and what it accepts) and back;
``loader`` reads TOML files, built-in scenarios and ``--set`` overrides with it.
Imports go one way: ``loader`` -> ``sections`` -> ``schema``.
"""

from ..errors import ConfigError
from .loader import (
    apply_overrides,
    builtin_names,
    load_scenario,
    parse_override,
    scenario_from_dict,
    to_dict,
)
from .sections import (
    BREAKER_PRESETS,
    DEFAULT_LATENCY,
    LIMITER_DEFAULTS,
    MAX_REQUESTS,
    MAX_USERS,
    BackendConfig,
    BreakerConfig,
    Failures,
    FaultWindow,
    HedgeConfig,
    HystrixBreakerConfig,
    LimiterConfig,
    MetricsConfig,
    OneOf,
    PollyBreakerConfig,
    PybreakerBreakerConfig,
    RequestConfig,
    Resilience4jBreakerConfig,
    RetryConfig,
    RouterConfig,
    Scenario,
    Stage,
    Targets,
    Warmup,
    WorkloadConfig,
)

__all__ = [
    "BREAKER_PRESETS",
    "DEFAULT_LATENCY",
    "LIMITER_DEFAULTS",
    "MAX_REQUESTS",
    "MAX_USERS",
    "BackendConfig",
    "BreakerConfig",
    "ConfigError",
    "Failures",
    "FaultWindow",
    "HedgeConfig",
    "HystrixBreakerConfig",
    "LimiterConfig",
    "MetricsConfig",
    "OneOf",
    "PollyBreakerConfig",
    "PybreakerBreakerConfig",
    "RequestConfig",
    "Resilience4jBreakerConfig",
    "RetryConfig",
    "RouterConfig",
    "Scenario",
    "Stage",
    "Targets",
    "Warmup",
    "WorkloadConfig",
    "apply_overrides",
    "builtin_names",
    "load_scenario",
    "parse_override",
    "scenario_from_dict",
    "to_dict",
]
