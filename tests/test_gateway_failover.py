"""The built-in ``failover`` scenario: three deployments, one fails from 30 s to 90 s.

``west`` fails every call in [30, 90) s; every deployment has its own LiteLLM
cooldown (``allowed_fails = 3``: the 4th failure within ``cooldown_time`` (5 s)
of the first cools it down for 5 s, then it is back with no probe) and the
router falls back to another deployment on failures. The checks:

* traffic moves away within the cooldown time: while west is cooled down it is
  not a candidate, so it gets no attempt at all; between cooldowns it gets only
  the few attempts that fail it again (at most ``allowed_fails + 1`` plus those
  already on their way), so its share of [30 + cooldown + 1, 90] s is ~0;
* overall success stays above 99 % with fallbacks, and clearly below what the
  scenario's target allows without them (``max_fallbacks = 0``);
* west gets its share back (~1/3) once the fault is over and its cooldown ended;
* ``simrouter run failover --check`` exits 0, and non-zero without fallbacks.
"""

import numpy as np
import pytest

import simrouter
from simrouter.cli import main
from simrouter.policies.breakers import BreakerState

SEEDS = (1, 2, 3)
WEST = 1


@pytest.fixture(scope="module")
def runs():
    return {seed: simrouter.simulate("failover", seed=seed) for seed in SEEDS}


def share(result, deployment, t0, t1):
    a = result.attempt_log
    sent = (a.sent >= t0) & (a.sent < t1) & (a.deployment >= 0)
    return np.count_nonzero(a.deployment[sent] == deployment) / np.count_nonzero(sent)


def cooldowns(run):
    """(start, end) of each cooldown of a deployment (OPEN -> CLOSED)."""
    out, opened = [], None
    for tr in run.transitions:
        if tr.to_state is BreakerState.OPEN:
            opened = tr.t
        elif opened is not None:
            out.append((opened, tr.t))
            opened = None
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_traffic_leaves_the_failed_deployment_within_the_cooldown(runs, seed):
    result = runs[seed]
    cooldown = result.scenario.breaker.cooldown_time
    west = result.deployment_runs[WEST]
    periods = cooldowns(west)
    assert periods and 30.0 <= periods[0][0] < 30.0 + 1.0  # cooled down within a second of the fault start
    a = result.attempt_log
    to_west = a.sent[a.deployment == WEST]
    for start, end in periods:  # no attempt while it is cooled down
        assert not np.any((to_west > start) & (to_west < end)), (start, end)
    inside = [p for p in periods if 30.0 <= p[0] < 90.0]
    returns = len(inside) + 1
    during = np.count_nonzero((to_west >= 30.0 + cooldown + 1.0) & (to_west < 90.0))
    assert during <= 10 * returns  # a handful per return from cooldown: the attempts that fail it again
    assert share(result, WEST, 30.0 + cooldown + 1.0, 90.0) < 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_fallbacks_keep_success_above_99_percent(runs, seed):
    summary = runs[seed].summary
    assert 1.0 - summary["error_rate"] > 0.99
    assert summary["fallbacks"]["succeeded_after_fallback"] > 50
    assert runs[seed].passed
    without = simrouter.simulate("failover", seed=seed, overrides=["router.max_fallbacks=0"]).summary
    assert without["fallbacks"]["total"] == 0
    assert without["error_rate"] > 1.4 * result_limit(runs[seed]) > summary["error_rate"]


def result_limit(result):
    return result.scenario.targets.max_error_rate


@pytest.mark.parametrize("seed", SEEDS)
def test_the_failed_deployment_gets_its_share_back(runs, seed):
    result = runs[seed]
    cooldown = result.scenario.breaker.cooldown_time
    assert share(result, WEST, 90.0 + cooldown, 150.0) == pytest.approx(1 / 3, abs=0.03)
    assert share(result, WEST, 0.0, 30.0) == pytest.approx(1 / 3, abs=0.03)
    west = result.summary["deployments"][WEST]["breaker"]
    assert west["recovered"] is True and west["recovery_s"] <= cooldown
    assert result.deployment_runs[WEST].final_state is BreakerState.CLOSED


def test_check_passes_with_fallbacks_and_fails_without(capsys):
    assert main(["run", "failover", "--check"]) == 0
    assert main(["run", "failover", "--check", "--set", "router.max_fallbacks=0"]) != 0
    capsys.readouterr()


def test_a_fault_that_outlasts_the_run_is_never_recovered():
    """LiteLLM's cooldown ends on a timer, so west comes back (CLOSED) while its
    fault is still on; a fault that outlasts the run must not count as recovered
    (it did, as 0.0 s, before metrics.recoveries checked the fault's end)."""
    result = simrouter.simulate("failover", seed=2, overrides=("deployments.1.faults.0.end=1000",))
    west = next(d for d in result.summary["deployments"] if d["name"] == "west")
    assert west["breaker"]["trips"] > 0
    assert west["breaker"]["recovery_s"] is None and west["breaker"]["recovered"] is False
    gate = next(t for t in result.summary["targets"] if t["name"] == "recovery:west")
    assert gate["passed"] is False
