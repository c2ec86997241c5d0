"""Bad input never escapes as anything but ``ConfigError`` (CLI: one line, exit status 2).

Hypothesis drives the loaders with random and mutated input:

* ``scenario_from_dict`` on random nested dicts and on valid scenarios with
  random leaves replaced, keys deleted or added;
* ``load_scenario`` on TOML text written from such dicts, then randomly corrupted;
* ``parse_override`` / ``apply_overrides`` on random ``--set`` items (known dotted
  paths and random ones, random values and random raw text);
* ``sweep_from_dict`` on random sweep dicts.

Every input must either load or raise ``ConfigError`` whose ``field`` is a string;
any other exception fails the test. A few fuzzed cases go through ``simrouter.cli.main``
in-process: exit status 2 and exactly one line on standard error. The table of
hand-written mistakes checks that each message names its field and what it accepts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simrouter import ConfigError, load_scenario, scenario_from_dict
from simrouter import config as config_module
from simrouter.cli import EXIT_CONFIG, main
from simrouter.config import LIMITER_DEFAULTS, apply_overrides, builtin_names, parse_override
from simrouter.sweepfile import load_sweep, sweep_from_dict, toml_value

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field_names() -> list[str]:
    names: set[str] = set()
    for item in vars(config_module).values():
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            names.update(f.name for f in dataclasses.fields(item))
    for keys in LIMITER_DEFAULTS.values():
        names.update(keys)
    names.update(["dist", "value", "mean", "p50", "p99", "median", "sigma", "cv", "file", "values", "components", "weight"])
    return sorted(names)


FIELD_NAMES = _field_names()
WORDS = ["auto", "inf", "-inf", "nan", "open", "closed", "sequential", "none", "default", "hystrix", "polly", "pybreaker",
         "resilience4j", "gcra", "token_bucket", "leaky_bucket", "concurrency", "fixed_window", "lognormal", "constant",
         "empirical", "mixture", "gamma", "exponential", "poisson", "clock", "full", "COUNT_BASED", "TIME_BASED", ""]

keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
scalars = (
    st.booleans()
    | st.integers(min_value=-5, max_value=50)
    | st.integers()
    | st.integers(min_value=2**60, max_value=2**1100)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1.0, max_value=100.0)
    | st.sampled_from(WORDS)
    | st.text(max_size=10)
    | st.dates()
    | st.none()
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=20)


def assert_loads_or_config_error(load, *args):
    """``load(*args)`` returns or raises ConfigError; anything else propagates and fails."""
    try:
        return load(*args)
    except ConfigError as error:
        assert isinstance(error.field, str) and error.message
        return None


# ---------------------------------------------------------------- dicts


@FUZZ
@given(st.dictionaries(keys, values, max_size=8))
def test_random_dicts_load_or_raise_config_error(data):
    assert_loads_or_config_error(scenario_from_dict, data)


def _paths(node, prefix=()):
    """Every path (tuple of keys / indices) into a nested dict or list."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _set(node, path, value):
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _delete(node, path):
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


@st.composite
def mutated_scenarios(draw):
    """A built-in scenario's dict with a few leaves replaced, keys deleted or keys added."""
    import copy

    data = copy.deepcopy(load_scenario(draw(st.sampled_from(builtin_names()))).to_dict())
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            _set(data, path, draw(values))
        elif action == "delete":
            _delete(data, path)
        else:
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            if isinstance(parent, dict):
                parent[draw(keys)] = draw(values)
    return data


@FUZZ
@given(mutated_scenarios())
@example({"workload": {"model": "open", "rate": 2**1100}})
@example({"backend": {"latency": {"dist": "empirical", "values": [2**1100]}}})
@example({"workload": {"model": "open", "rate": 0.0, "stages": [{"duration": 1, "rate": 0}]}})
def test_mutated_scenarios_load_or_raise_config_error(data):
    assert_loads_or_config_error(scenario_from_dict, data)


# ---------------------------------------------------------------- TOML text


def _toml_text(data: dict) -> str | None:
    try:
        return "\n".join(f"{json_key(key)} = {toml_value(value)}" for key, value in data.items()) + "\n"
    except (ConfigError, TypeError):
        return None  # None or a date: values toml_value does not write


def json_key(key: str) -> str:
    import json

    return json.dumps(key)


@pytest.fixture(scope="module")
def toml_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzzed-toml")


@FUZZ
@given(data=mutated_scenarios(), corruptions=st.lists(st.tuples(st.integers(0, 10_000), st.text(max_size=3)), max_size=3))
def test_toml_files_load_or_raise_config_error(toml_dir, data, corruptions):
    text = _toml_text(data)
    if text is None:
        return
    for position, insert in corruptions:
        position %= len(text) + 1
        text = text[:position] + insert + text[position:]
    path = toml_dir / "fuzzed.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_loads_or_config_error(load_scenario, path)


@FUZZ
@given(content=st.text(max_size=300).map(str.encode) | st.binary(max_size=300))
@example(b'name = "x\xff"\n')
def test_random_files_load_or_raise_config_error(toml_dir, content):
    path = toml_dir / "random.toml"
    path.write_bytes(content)
    assert_loads_or_config_error(load_scenario, path)
    assert_loads_or_config_error(load_sweep, path)


# ---------------------------------------------------------------- --set


KNOWN_PATHS = sorted({".".join(map(str, p)) for name in builtin_names() for p in _paths(load_scenario(name).to_dict()) if p})
dotted_keys = st.sampled_from(KNOWN_PATHS) | st.lists(st.sampled_from(FIELD_NAMES) | st.text(max_size=5) | st.integers(0, 3).map(str), min_size=1, max_size=4).map(".".join)
raw_values = st.text(max_size=20) | values.map(lambda v: _toml_text({"v": v}) or "").map(lambda text: text.partition("=")[2].strip())
override_items = st.builds(lambda key, sep, raw: f"{key}{sep}{raw}", dotted_keys, st.sampled_from(["=", "=", " = ", "", "=="]), raw_values) | st.text(max_size=30)


@FUZZ
@given(st.sampled_from(builtin_names()), st.lists(override_items, min_size=1, max_size=4))
@example("concurrent", ["workload.stages=[1, 2]", "workload.stages.0.x=1"])
@example("breaker-failure", ["faults.0=3", "faults.0.end=4"])
@example("concurrent", ["backend.capacity=1\nx = 2"])
def test_overrides_load_or_raise_config_error(name, items):
    assert_loads_or_config_error(load_scenario, name, items)


@FUZZ
@given(override_items)
def test_parse_override_returns_a_path_or_raises_config_error(item):
    parsed = assert_loads_or_config_error(parse_override, item)
    if parsed is not None:
        path, _ = parsed
        assert path and all(isinstance(part, str) and part for part in path)


@FUZZ
@given(st.dictionaries(keys, values, max_size=4), st.lists(override_items, max_size=3))
def test_apply_overrides_on_any_dict_raises_only_config_error(data, items):
    assert_loads_or_config_error(apply_overrides, data, items)


# ---------------------------------------------------------------- sweep files


sweep_dicts = st.fixed_dictionaries(
    {"scenario": st.sampled_from(["concurrent", "breaker-failure"]) | values},
    optional={
        "seed": values,
        "replications": st.integers(-2, 3) | values,
        "metrics": st.lists(st.sampled_from(["latency_ms.p95", "error_rate", "throughput.rps", "nope"]), max_size=3) | values,
        "set": st.dictionaries(st.sampled_from(["workload", "backend", "limiter"]), st.dictionaries(keys, values, max_size=2), max_size=2) | values,
        "grid": st.dictionaries(st.sampled_from(["backend", "workload"]), st.dictionaries(keys, st.lists(values, max_size=2) | values, max_size=2), max_size=2),
        "points": st.lists(st.dictionaries(st.sampled_from(["backend", "router"]), st.dictionaries(keys, values, max_size=2), max_size=2), max_size=2) | values,
        "name": values,
        "extra": values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sweep_dicts)
def test_sweep_dicts_load_or_raise_config_error(data):
    assert_loads_or_config_error(sweep_from_dict, data)


# ---------------------------------------------------------------- through the CLI


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(override_items, min_size=1, max_size=2))
def test_cli_fuzzed_overrides_exit_2_with_one_line_or_run(items, capsys):
    items = [item for item in items if not item.startswith("-")]  # argparse would take it for an option
    if not items:
        return
    argv = ["config", "concurrent"]
    for item in items:
        argv += ["--set", item]
    try:
        load_scenario("concurrent", items)
        valid = True
    except ConfigError:
        valid = False
    status = main(argv)
    err = capsys.readouterr().err
    if valid:
        assert status == 0
    else:
        assert status == EXIT_CONFIG
        assert err.count("\n") == 1 and err.startswith("simrouter: configuration error: ") and "Traceback" not in err


# ---------------------------------------------------------------- hand-written mistakes


# (overrides on breaker-failure, the field the message must name, a phrase it must contain)
MISTAKES = [
    (["breaker.preset=hystrix", "breaker.sleep_windw=3"], "breaker.sleep_windw", "did you mean 'sleep_window'"),
    (["breaker.preset=resilience4j", "breaker.failure_rate_threshold=150"], "breaker.failure_rate_threshold", "<= 100"),
    (["breaker.preset=polly", "breaker.failure_ratio=1.5"], "breaker.failure_ratio", "<= 1"),
    (["breaker.preset=pybreaker", "breaker.fail_max=0"], "breaker.fail_max", ">= 1"),
    (["limiter.algorithm=gcra", "limiter.limit=3"], "limiter.limit", "accepted keys: algorithm, scope, rate, burst"),
    (["limiter.algorithm=sliding_window_log", "limiter.sise=3"], "limiter.sise", "did you mean 'size'"),
    (["limiter.algorithm=token_bucket_"], "limiter.algorithm", "'token_bucket'"),
    (["router.retry.max_attemps=3"], "router.retry.max_attemps", "did you mean 'max_attempts'"),
    (["router.retry.retry_on=['timeout']"], "router.retry.retry_on.0", "'timeouts'"),
    (["router.retry.jitter=random"], "router.retry.jitter", "'none', 'full', 'equal', 'decorrelated'"),
    (["router.hedge.percentile=120"], "router.hedge.percentile", "<= 100"),
    (["router.hedge.max_hedges=-1"], "router.hedge.max_hedges", ">= 0"),
    (["faults.0.error_rat=1"], "faults.0.error_rat", "did you mean 'error_rate'"),
    (["faults.0.error_rate=1.5"], "faults.0.error_rate", "<= 1"),
    (["faults=[{ start = 1, end = 5, error_rate = 1 }, { start = 4, end = 9, error_rate = 1 }]"], "faults.1.start", "overlaps"),
    (["faults=[{ end = 5, error_rate = 1 }]"], "faults.0.start", "required"),
    (["workload.stages=[{ rate = 5 }]", "workload.rate=0"], "workload.stages.0.duration", "required"),
    (["workload.stages=[{ duration = 0, rate = 5 }]", "workload.rate=0"], "workload.stages.0.duration", "> 0"),
    (["workload.stages=[{ duration = 5, rate = -1 }]", "workload.rate=0"], "workload.stages.0.rate", ">= 0"),
    (["workload.stages=[{ duration = 5, rate = 0 }]", "workload.rate=0"], "workload.stages", "rate > 0"),
    (["workload.rate=-150"], "workload.rate", ">= 0"),
    (["workload.model=closed", "workload.rate=0", "workload.max_requests=5"], "workload.max_requests", "only the open model"),
    (["workload.model=closed", "workload.rate=0", "workload.users=2000000"], "workload.users", "<= 1000000"),
    (["workload.rate=1e12"], "workload.rate", "workload.max_requests"),
    (["targets.p95_msec=3"], "targets.p95_msec", "did you mean 'p95_ms'"),
    (["targets.p99_ms=100"], "targets.p99_ms", "targets.p95_ms"),
    (["metrics.windw=3"], "metrics.windw", "did you mean 'window'"),
    (["metrics.interval=0"], "metrics.interval", "> 0"),
    (["backend.capacity=0"], "backend.capacity", ">= 1"),
    (["backend.latency={ dist = \"lognormal\", p50 = 0.2, p99 = 0.1 }"], "backend.latency.p99", "greater than p50"),
    (["backend.latency={ dist = \"exponential\", mean = 1e400 }"], "backend.latency.mean", "finite"),
    (["backend.latency={ dist = \"mixture\", components = [{ weight = 0.5, dist = \"constant\", value = 1 }, { weight = 0.6, dist = \"constant\", value = 2 }] }"],
     "backend.latency.components", "add up to 1"),
    (["backend.failures={ processing = 0.6, timeout = 0.6 }"], "backend.failures", "at most 1"),
    (["duration=inf"], "duration", "finite"),
    (["duration=nan"], "duration", "expected a number"),
    (["name=3"], "name", "expected a string"),
]


@pytest.mark.parametrize("overrides, field, phrase", MISTAKES, ids=[m[1] + ":" + m[2] for m in MISTAKES])
def test_each_mistake_names_its_field_and_what_it_accepts(overrides, field, phrase):
    with pytest.raises(ConfigError) as caught:
        load_scenario("breaker-failure", overrides)
    assert caught.value.field == field, str(caught.value)
    assert phrase in str(caught.value)


# (argv, the option the one-line message must name)
CLI_MISTAKES = [
    (["run", "concurrent", "--seed", "-1"], "--seed"),
    (["run", "concurrent", "--seed", "x"], "--seed"),
    (["run", "concurrent", "--replications", "0"], "--replications"),
    (["run", "concurrent", "--json", "/proc/simrouter/none/out.json", "--set", "workload.requests_per_user=1"], "--json"),
    (["run", "concurrent", "--plot", "/proc/simrouter-none", "--set", "workload.requests_per_user=1"], "--plot"),
    (["run", "concurrent", "--no-such-option"], "--no-such-option"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--port", "-5"], "--port"),
    (["live", "concurrent", "--target", "http://127.0.0.1:99999"], "--target"),
    (["live", "concurrent", "--target", "http://127.0.0.1:9", "--client-timeout", "0"], "--client-timeout"),
    (["live", "concurrent", "--target", "http://127.0.0.1:9", "--map", "999=succeeded"], "--map"),
    (["sweep", "/proc/simrouter-none.toml"], "sweep file"),
    (["sweep", "x.toml", "--executor", "threads"], "--executor"),
    (["sweep", "x.toml", "--workers", "0"], "--workers"),
    (["nonsense-command"], "nonsense-command"),
]


@pytest.mark.parametrize("argv, option", CLI_MISTAKES, ids=[" ".join(a[:1] + a[2:4]) for a, _ in CLI_MISTAKES])
def test_cli_mistakes_exit_2_with_one_line_naming_the_option(argv, option, capsys):
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert option in err


def test_argparse_help_still_exits_0(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", "--help"])
    assert caught.value.code == 0
    assert "--replications" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["run", "{binary}"], "is not UTF-8 text"),
        (["sweep", "{binary}"], "is not UTF-8 text"),
        (["calibrate", "--from", "{binary}", "--out", "{dir}/c.toml"], "--from"),
        (["run", "{dir}/empirical.toml"], "backend.latency.file"),
        (["run", "{dir}"], "cannot read scenario file"),
    ],
    ids=["scenario", "sweep", "calibrate", "empirical-samples", "a-directory"],
)
def test_files_that_are_not_text_exit_2_with_one_line(argv, phrase, tmp_path, capsys):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (tmp_path / "samples.bin").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "empirical.toml").write_text('[backend]\nlatency = { dist = "empirical", file = "samples.bin" }\n')
    assert main([arg.format(binary=binary, dir=tmp_path) for arg in argv]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err, err
