"""Each breaker preset through the simulator, on the ``breaker-failure`` scenario.

Open Poisson 150 req/s; every call whose service starts in [30 s, 45 s) fails.
Recovery (the summary's ``recovery_s``) is the time from 45 s until the breaker
last closed. What each library's defaults imply, checked against the transition
log (semantics.md, "What recovery time means"): resilience4j and pybreaker wait
60 s in OPEN, so they trip once, early in the fault, and close about 60 s later
(45 s after the fault, since they tripped near 30 s); Hystrix and Polly probe
every 5 s, so they close within about 5 s of the fault's end.
"""

import numpy as np
import pytest

import simrouter
from simrouter.outcomes import RATE_LIMITED, VALIDATION

FAULT_START, FAULT_END = 30.0, 45.0
SEEDS = (1, 2)
# Every OPEN -> HALF_OPEN waits at least this long after the OPEN (strictly, where marked).
WAITS = {"resilience4j": (60.0, True), "pybreaker": (60.0, False), "hystrix": (5.0, True), "polly": (5.0, False), "default": (30.0, False)}


def run(preset, seed, *overrides):
    return simrouter.simulate("breaker-failure", seed=seed, overrides=[f"breaker.preset={preset}", *overrides])


def log(result):
    return [(tr.t, tr.from_state.value, tr.to_state.value) for tr in result.transitions]


def opens(result):
    return [t for t, _, to in log(result) if to == "open"]


def check_common(result, preset):
    """What holds for every preset: trips in the fault, waits, recovery from the log."""
    breaker = result.summary["breaker"]
    transitions = log(result)
    assert breaker["preset"] == preset and breaker["trips"] >= 1 and breaker["state"] == "closed"
    assert FAULT_START < opens(result)[0] < FAULT_END
    wait, strict = WAITS[preset]
    for (opened, _, to_open), (probed, _, to_half) in zip(transitions, transitions[1:]):
        if to_open == "open" and to_half == "half_open":
            assert probed - opened > wait if strict else probed - opened >= wait
    last_close = transitions[-1][0]
    assert transitions[-1][2] == "closed"
    assert breaker["recovery_s"] == pytest.approx(last_close - FAULT_END)
    return breaker


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("preset", ["resilience4j", "pybreaker"])
def test_sixty_second_presets_trip_once_and_close_sixty_seconds_later(preset, seed):
    result = run(preset, seed)
    breaker = check_common(result, preset)
    (opened,) = opens(result)  # one trip, early in the fault (a 100-call window / 5 failures in a row)
    assert opened - FAULT_START < 1.0
    (_, half_open), (_, closed) = [(to, t) for t, _, to in log(result)[1:]]
    # The first arrival after the wait (150/s) starts the probes; they answer in well under a
    # second. pybreaker: failures of calls admitted before the trip open() it again, which
    # restarts its timeout (not a logged transition); those calls end within the 5 s router timeout.
    late = 0.1 if preset == "resilience4j" else 5.1
    assert 60.0 <= half_open - opened < 60.0 + late
    assert closed - half_open < 1.0
    assert opened + 60.0 - FAULT_END <= breaker["recovery_s"] < opened + 60.0 + late + 1.0 - FAULT_END


@pytest.mark.parametrize("seed", SEEDS)
def test_hystrix_trips_on_a_health_snapshot_and_recovers_within_its_sleep_window(seed):
    result = run("hystrix", seed)
    breaker = check_common(result, "hystrix")
    # The snapshot clock starts at the first call the breaker saw; the trip from CLOSED falls
    # on a 0.5 s tick of it, once half the 10 s window is errors (about 5 s into the fault).
    reached = ~np.isin(result.kind, [RATE_LIMITED, VALIDATION])
    origin = float(result.sent[reached].min())
    first_trip = opens(result)[0]
    ticks = (first_trip - origin) / 0.5
    assert ticks == pytest.approx(round(ticks), abs=1e-6)
    assert FAULT_START + 4.0 < first_trip < FAULT_START + 7.0
    assert 0.0 < breaker["recovery_s"] < 5.0 + 0.5
    assert next(t for t in result.summary["targets"] if t["name"] == "breaker_recovery")["passed"] is True


@pytest.mark.parametrize("seed", SEEDS)
def test_polly_trips_at_ten_percent_and_recovers_within_its_break(seed):
    result = run("polly", seed)
    breaker = check_common(result, "polly")
    # 10 % of ~30 s of traffic (4,500 calls) is ~500 failures: ~3.3 s into the fault.
    assert FAULT_START + 2.0 < opens(result)[0] < FAULT_START + 5.0
    assert 0.0 < breaker["recovery_s"] < 5.0 + 0.5
    assert breaker["trips"] >= 3  # probes at +5 s and +10 s still meet the fault


def test_resilience4j_fails_the_recovery_target_when_its_probe_meets_the_fault():
    # The fault outlasts the first 60 s wait by a little: the probes at ~90.4 s fail, the next
    # ones are due at ~150 s, after the run's end (120 s). No recovery: the target fails.
    result = run("resilience4j", 1, "faults.0.end=91")
    breaker = result.summary["breaker"]
    states = [to for _, _, to in log(result)]
    assert states == ["open", "half_open", "open"]
    assert breaker["recovery_s"] is None and breaker["recovered"] is False
    assert next(t for t in result.summary["targets"] if t["name"] == "breaker_recovery")["passed"] is False


def test_same_seed_same_run_with_randomized_resilience4j_waits():
    overrides = ["breaker.enable_randomized_wait=true", "breaker.wait_duration_in_open_state=5"]
    first, again, other = run("resilience4j", 4, *overrides), run("resilience4j", 4, *overrides), run("resilience4j", 5, *overrides)
    assert log(first) == log(again)
    assert log(first) != log(other)
