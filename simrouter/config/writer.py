"""Writing scenarios as TOML: ``simrouter config NAME --toml`` and ``simrouter init``.

``scenario_toml(scenario)`` is the scenario's every field (defaults filled in,
``to_dict``) as a TOML document that ``load_scenario`` reads back into an equal
scenario; writing that scenario again gives the same bytes (the writer is
deterministic: tomli-w, keys in schema order, a fixed header).

``template()`` is the commented starting file ``simrouter init`` writes: every
section of the default scenario with its keys and defaults, each section headed
by its dataclass's docstring as comments (what the keys mean, in which unit),
commented-out examples of the other breaker presets (every name of
``BREAKER_PRESETS``, the schema's list) and of the list sections (``[[faults]]``,
``[[workload.stages]]``, ``[[deployments]]``). It loads as the default scenario,
named ``my-router``.
"""

from __future__ import annotations

import inspect

import tomli_w  # the TOML writer (tomllib only reads)

from .schema import to_dict
from .sections import BREAKER_PRESETS, Scenario

HEADER = "# A simrouter scenario: every field, defaults filled in. Times in seconds, rates per second.\n"
SECTIONS = ("workload", "limiter", "breaker", "backend", "router", "targets", "metrics", "request")
TOP_LEVEL = ("name", "description", "duration", "warmup")


def scenario_toml(scenario: Scenario) -> str:
    return HEADER + tomli_w.dumps(to_dict(scenario))


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


EXAMPLES = {
    "workload": """Stages instead of one rate (open model only; omit workload.rate then):
[[workload.stages]]
duration = 30.0
rate = 50.0""",
    "breaker": """Presets: """ + " | ".join(f'"{name}"' for name in BREAKER_PRESETS) + """
(each with its own library's keys and defaults, docs/policies.md). For example:
preset = "resilience4j"   # rates in PERCENT: failure_rate_threshold = 50
preset = "hystrix"        # request_volume_threshold = 20, sleep_window = 5.0
preset = "litellm"        # LiteLLM cooldowns: allowed_fails = 3, cooldown_time = 5.0
preset = "envoy"          # outlier ejection: consecutive_5xx = 5, max_ejection_percent = 50.0""",
    "limiter": """Other algorithms: "none", "gcra", "leaky_bucket", "sliding_window_log",
"sliding_window_counter", "fixed_window", "concurrency" (each its own keys).""",
    "faults": """[[faults]]: between start and end (s), calls fail with probability error_rate
and take latency_factor times as long. For example:
[[faults]]
start = 30.0
end = 45.0
error_rate = 1.0
latency_factor = 1.0""",
    "deployments": """[[deployments]]: several deployments behind one router (docs/gateway.md); none:
the single [backend]. Each takes any [backend] keys (the unset ones from [backend]),
its own limiter, breaker and faults; [router] routing / max_fallbacks / fallback_on
decide where attempts go. For example:
[[deployments]]
name = "east"
weight = 2.0
backend = { capacity = 8 }
breaker = { preset = "litellm", cooldown_time = 5.0 }
[[deployments]]
name = "west"
faults = [{ start = 30.0, end = 90.0, error_rate = 1.0 }]""",
}


def template(name: str = "my-router") -> str:
    default = Scenario(name=name, description="What this router is and what the run should show.")
    data = to_dict(default)
    lines = [
        "# A simrouter scenario (simrouter init): every section with its defaults.",
        "# Delete what you do not change: a file states only what differs from the defaults.",
        "# Times are seconds (80 ms is 0.08), rates per second, probabilities fractions.",
        "# Run it: simrouter run THIS_FILE; check it: simrouter config THIS_FILE --toml",
        "",
    ]
    lines += tomli_w.dumps({key: data[key] for key in TOP_LEVEL}).splitlines()
    for section in SECTIONS:
        lines += ["", *_comment(inspect.getdoc(type(getattr(default, section))) or section)]
        if section in EXAMPLES:
            lines += _comment(EXAMPLES[section])
        lines += tomli_w.dumps({section: data[section]}).splitlines()
    lines += ["", *_comment(EXAMPLES["faults"])]
    lines += ["", *_comment(EXAMPLES["deployments"])]
    return "\n".join(lines) + "\n"
