"""Issue 11, configuration and structure: think times that can be 0, the default
breaker's window, ``simulate`` for one run only, no import cycles, no heavy
imports on the plain paths, and a ``--quick`` calibration that is quick.

Every test here fails on the code before the fix (a2017f1).
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simrouter
from simrouter import distributions
from simrouter.config import BreakerConfig, Resilience4jBreakerConfig, Scenario, WorkloadConfig, load_scenario
from simrouter.distributions import Constant, Empirical, Exponential, Gamma, Lognormal, Mixture, from_spec
from simrouter.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "simrouter"
HEAVY = ("pandas", "matplotlib", "scipy", "aiohttp", "dask")

# The issue's reproduction: endless instant rejections at one simulated instant.
HANG = ["workload.requests_per_user=0", "limiter.rate=1", "limiter.burst=1", 'workload.think_time={ dist = "empirical", values = [0.0] }']


# ---------------------------------------------------------------- 13: think times that can be 0


def test_every_distribution_says_whether_it_can_be_zero():
    classes = [c for c in vars(distributions).values() if isinstance(c, type) and issubclass(c, distributions.Distribution) and c is not distributions.Distribution]
    assert {c.__name__ for c in classes} >= {"Constant", "Exponential", "Lognormal", "Gamma", "Empirical", "Mixture"}
    for cls in classes:
        assert "can_be_zero" in vars(cls), f"{cls.__name__} does not say whether a draw can be 0"


@pytest.mark.parametrize(
    "dist, can_be_zero",
    [
        (Constant(0.0), True),
        (Constant(0.01), False),
        (Exponential(0.01), False),
        (Lognormal(0.01, 1.0), False),
        (Gamma(0.01, 1.0), False),
        (Gamma(1.0, 30.0), True),  # shape 1/900: most float64 draws underflow to 0.0
        (Empirical(np.array([0.0, 0.5])), True),
        (Empirical(np.array([0.1, 0.5])), False),
        (Mixture((0.99, 0.01), (Exponential(0.01), Empirical(np.array([0.0])))), True),
        (Mixture((0.5, 0.5), (Exponential(0.01), Lognormal(0.02, 0.5))), False),
    ],
    ids=repr,
)
def test_can_be_zero_matches_what_the_sampler_draws(dist, can_be_zero):
    assert dist.can_be_zero is can_be_zero
    draws = dist.sample(np.random.default_rng(7), 20_000)
    if not can_be_zero:
        assert np.all(draws > 0)
    elif not isinstance(dist, Mixture):  # the mixture's zero component has weight 1 %: 200 expected
        assert np.mean(draws == 0) > 0.05
    else:
        assert np.sum(draws == 0) > 100


@pytest.mark.parametrize(
    "think_time",
    [
        '{ dist = "empirical", values = [0.0] }',
        '{ dist = "empirical", values = [0.0, 0.5, 1.0] }',
        '{ dist = "mixture", components = [{ weight = 0.9, dist = "exponential", mean = 0.01 }, { weight = 0.1, dist = "empirical", values = [0.0] }] }',
        '{ dist = "gamma", mean = 1.0, cv = 30 }',
        "0",
    ],
)
def test_a_run_until_duration_refuses_a_think_time_that_can_be_zero(think_time):
    with pytest.raises(ConfigError) as error:
        load_scenario("concurrent", ["workload.requests_per_user=0", f"workload.think_time={think_time}"])
    assert error.value.field == "workload.think_time"
    message = str(error.value)
    assert "requests_per_user = 0" in message and "exponential" in message and "constant > 0" in message


@pytest.mark.parametrize("think_time", ['{ dist = "exponential", mean = 0.01 }', '{ dist = "lognormal", p50 = 0.01, p99 = 0.1 }', "0.001", '{ dist = "empirical", values = [0.001, 0.5] }'])
def test_a_run_until_duration_accepts_a_think_time_that_is_never_zero(think_time):
    scenario = load_scenario("concurrent", ["workload.requests_per_user=0", f"workload.think_time={think_time}"])
    assert not scenario.workload.think_time.can_be_zero


def test_a_zero_think_time_is_still_fine_with_a_request_count():
    scenario = Scenario(workload=WorkloadConfig(requests_per_user=5, think_time=from_spec({"dist": "empirical", "values": [0.0]}, "t")))
    assert scenario.workload.think_time.can_be_zero


def test_the_issue_reproduction_is_a_configuration_error_not_a_hang():
    command = [sys.executable, "-m", "simrouter", "run", "concurrent", *(arg for item in HANG for arg in ("--set", item))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith("simrouter: configuration error: workload.think_time:")


# ---------------------------------------------------------------- 14: the default breaker's window


def test_default_breaker_refuses_more_minimum_calls_than_the_window_holds():
    with pytest.raises(ConfigError) as error:
        load_scenario("concurrent", ["breaker.minimum_calls=30"])  # window_size 20
    assert error.value.field == "breaker.minimum_calls"
    assert "breaker.window_size (20)" in str(error.value)
    with pytest.raises(ConfigError, match="breaker.window_size"):
        BreakerConfig(window_size=4, minimum_calls=5)


def test_default_breaker_accepts_a_full_window_and_no_breaker_ignores_the_keys():
    assert BreakerConfig(window_size=10, minimum_calls=10).minimum_calls == 10
    assert BreakerConfig(preset="none", window_size=4, minimum_calls=5).preset == "none"


def test_resilience4j_count_based_keeps_its_documented_clamp():
    # resilience4j clamps minimumNumberOfCalls to a COUNT_BASED window's size: not an error.
    config = Resilience4jBreakerConfig(sliding_window_size=10, minimum_number_of_calls=100)
    assert config.minimum_number_of_calls == 100


# ---------------------------------------------------------------- simulate: one run; replicate: many


def test_simulate_runs_one_run_and_has_no_replication_keywords():
    assert isinstance(simrouter.simulate("baseline", seed=2), simrouter.RunResult)
    for keyword in ({"replications": 2}, {"precision": 0.05}, {"max_replications": 5}):
        with pytest.raises(TypeError):
            simrouter.simulate("baseline", seed=2, **keyword)


def test_replicate_is_the_way_to_many_runs():
    from simrouter.replications import ReplicatedResult, replicate

    assert simrouter.replicate is replicate
    result = simrouter.replicate("baseline", seed=2, replications=2)
    assert isinstance(result, ReplicatedResult)
    assert result.summaries[1] == simrouter.simulate("baseline", seed=2, replication=1).summary


def test_call_sites_do_not_pass_replications_to_simulate():
    """No code, experiment, notebook or doc example calls ``simulate(..., replications=``."""
    offenders = []
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "experiments").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        offenders += [f"{path}:{line}" for line in _simulate_calls_with_replications(path.read_text())]
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                offenders += [f"{path} cell {index}:{line}" for line in _simulate_calls_with_replications("".join(cell["source"]))]
    assert not offenders


def _simulate_calls_with_replications(source: str) -> list[int]:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a notebook cell with shell magics
        return []
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name == "simulate" and any(k.arg in ("replications", "precision", "max_replications") for k in node.keywords):
                lines.append(node.lineno)
    return lines


# ---------------------------------------------------------------- no import cycles


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """simrouter's modules and the simrouter modules each imports, anywhere in it
    (module level or inside functions). ``from pkg import name`` depends on the
    submodule ``pkg.name`` when there is one, else on ``pkg`` itself."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == package.name and (resolved := known(target)) not in (None, name):
                    graph[name].add(resolved)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return path[path.index(successor):] + [successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text("from . import a\n")
    assert module_graph(package) == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}


def test_simrouter_has_no_import_cycle():
    graph = module_graph()
    assert "simrouter.sim.run" in graph and "simrouter.config.loader" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# ---------------------------------------------------------------- heavy imports only where used


def _loaded_after(code: str, libraries: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of ``libraries`` a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {libraries!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    return done.stdout.split()


def test_import_simrouter_loads_no_heavy_library():
    # Nor the dashboard's rich or the live engine's prometheus_client: a run that prints nothing needs neither.
    assert _loaded_after("import simrouter", (*HEAVY, "rich", "prometheus_client")) == []


def test_simrouter_run_baseline_loads_no_heavy_library(tmp_path):
    out = tmp_path / "baseline.json"
    code = (
        "import contextlib, io\nfrom simrouter.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    status = main(['run', 'baseline', '--json', {str(out)!r}])\n"
        "assert status == 0, status"
    )
    assert _loaded_after(code) == []
    assert json.loads(out.read_text())["config"]["name"] == "baseline"


def test_every_public_name_is_still_importable():
    for name in simrouter.__all__:
        assert getattr(simrouter, name) is not None, name
    assert simrouter.sweep is importlib.import_module("simrouter.sweeps").sweep


# ---------------------------------------------------------------- 15: calibrate_default --quick


def test_calibrate_default_has_a_quick_mode_that_reaches_the_same_choice(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    module = importlib.import_module("calibrate_default")
    assert module.QUICK.n_fit * 10 <= module.FULL.n_fit and len(module.QUICK.c_values) < len(module.FULL.c_values)
    results = module.main(["--quick", "--workers", "1"])
    assert {(r.family, r.c_label) for r in results} >= {("lognormal", "4"), ("gamma", "10-16"), ("mixture", "10-16")}
    # As the full calibration (module docstring): no simple family fits, a mixture without queueing does.
    assert not any(r.passes for r in results if r.family != "mixture")
    assert any(r.passes and r.c_label == "10-16" for r in results if r.family == "mixture")
    assert "Chosen: mixture, c=10-16" in capsys.readouterr().out
    assert all(math.isfinite(r.rps) for r in results)
