"""litellm and envoy presets against their documented behaviour: one case per rule.

Neither library runs here, so each case encodes one rule from its docs or source
and cites it (the case id names the rule, the comment quotes it). LiteLLM:
``litellm/router_utils/cooldown_handlers.py`` (CH), ``caching/in_memory_cache.py``
(IMC), ``router_utils/cooldown_cache.py`` (CC), docs https://docs.litellm.ai/docs/routing
(cooldowns). Envoy: ``source/common/upstream/outlier_detection_impl.cc`` (ODI),
``api/envoy/config/cluster/v3/outlier_detection.proto`` (proto), docs
https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier.

A case is (config, hosts in the gateway's pool, steps), played on fresh breakers
sharing one ``EjectionPool(hosts)``; a step's last element may pick the host (0)::

    ("record", t, outcome[, host])    a call ends at t, no epoch
    ("throttled", t[, host])          a 429 from the deployment's own quota
    ("allow", t, admitted[, host])    breaker.allow(t) must return ``admitted``
    ("available", t, answer[, host])  breaker.available(t) must return ``answer``
    ("state", t, state[, host])       after advance(t) the breaker is in ``state``
    ("log", [(t, state), ...][, host]) the transition log so far, true times
"""

import numpy as np
import pytest

import simrouter
from simrouter import ConfigError
from simrouter.config.sections import EnvoyBreakerConfig, LiteLLMBreakerConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState
from simrouter.policies.breakers import EjectionPool, build_breaker

CLOSED, OPEN = BreakerState.CLOSED, BreakerState.OPEN
S, F, T = SUCCESS, FAILURE, TIMEOUT
STEP_SIZE = {"record": 3, "throttled": 2, "allow": 3, "available": 3, "state": 3, "log": 2}


def play(config, hosts, steps):
    pool = EjectionPool(hosts)
    breakers = [build_breaker(config, np.random.default_rng(i), pool) for i in range(hosts)]
    for step in steps:
        kind = step[0]
        size = STEP_SIZE[kind]
        breaker = breakers[step[size] if len(step) > size else 0]
        if kind == "record":
            breaker.record(step[2], step[1])
        elif kind == "throttled":
            breaker.throttled(step[1])
        elif kind == "allow":
            assert breaker.allow(step[1]) is step[2], step
        elif kind == "available":
            assert breaker.available(step[1]) is step[2], step
        elif kind == "state":
            breaker.advance(step[1])
            assert breaker.state is step[2], step
        else:
            assert [tr.to_state for tr in breaker.transitions] == [to for _, to in step[1]], (step, breaker.transitions)
            assert [tr.t for tr in breaker.transitions] == pytest.approx([t for t, _ in step[1]]), step
    return breakers


def records(t0, dt, outcomes, host=0):
    return [("record", t0 + i * dt, outcome, host) for i, outcome in enumerate(outcomes)]


# ------------------------------------------------------------------ litellm

LITELLM_CASES = {
    # CH _should_cooldown_deployment: "percent_fails > DEFAULT_FAILURE_THRESHOLD_PERCENT and
    # total_requests_this_minute >= DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS and not
    # is_single_deployment_model_group" (0.5 and 5 in constants.py): 3 of 4 failed is not enough
    # requests; the 6th request, a failure, makes 4 of 6.
    "rate_above_half_once_5_requests_seen": (LiteLLMBreakerConfig(), 3,
        records(0.0, 1.0, [S, F, F, F]) + [("state", 3.5, CLOSED)] + records(4.0, 1.0, [S, F]) + [("log", [(5.0, OPEN)])]),
    # ... "percent_fails > ...": strictly more than half; exactly half does not cool down.
    "exactly_half_is_not_more_than_half": (LiteLLMBreakerConfig(), 3,
        records(0.0, 1.0, [S, S, F, S, F, F]) + [("state", 5.5, CLOSED)] + records(6.0, 1.0, [F]) + [("log", [(6.0, OPEN)])]),
    # CH: "if exception_status_int == 429 and not is_single_deployment_model_group: return True".
    "a_429_cools_down_at_once": (LiteLLMBreakerConfig(), 2,
        records(0.0, 1.0, [S, S, S]) + [("throttled", 3.0), ("log", [(3.0, OPEN)]), ("allow", 3.5, False)]),
    # CH: the 429 and failure-rate rules both require "not is_single_deployment_model_group"
    # ("by default we should avoid cooldowns on single deployment model groups").
    "a_single_deployment_is_spared": (LiteLLMBreakerConfig(), 1,
        [("throttled", 0.5)] + records(1.0, 1.0, [F] * 10) + [("log", [])]),
    # CH: "percent_fails == 1.0 and total_requests_this_minute >= SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD"
    # cools down even a single deployment (1000 in constants.py; 8 here).
    "all_failed_with_traffic_cools_even_a_single_deployment": (LiteLLMBreakerConfig(single_deployment_traffic_failure_threshold=8), 1,
        records(0.0, 1.0, [F] * 7) + [("state", 6.5, CLOSED)] + records(7.0, 1.0, [F]) + [("log", [(7.0, OPEN)])]),
    # track_deployment_metrics: the counters are incremented "ttl=60"; IMC set_cache sets the
    # expiry only "if self.allow_ttl_override(key)" (no live TTL): each minute window starts at
    # its counter's FIRST outcome. Successes at 0-7 s expire at 60 s (a refreshed TTL: 67 s; a
    # sliding minute would keep 7 of them at 61 s); failures from 50 s then make 5 of 5 at 61 s.
    "the_minute_starts_at_the_first_outcome": (LiteLLMBreakerConfig(), 3,
        records(0.0, 1.0, [S] * 8) + records(50.0, 1.0, [F, F, F, F]) + [("state", 60.5, CLOSED)] + records(61.0, 1.0, [F])
        + [("log", [(61.0, OPEN)])]),
    # CC add_deployment_to_cooldown: "Set the cache with a TTL equal to the cooldown time"; there
    # is no half-open state: once the key expires the deployment is routed to again.
    "cooldown_time_then_back_without_probe": (LiteLLMBreakerConfig(), 3,
        [("throttled", 10.0), ("available", 14.875, False), ("allow", 14.875, False), ("available", 15.0, True),
         ("state", 15.0, CLOSED), ("log", [(10.0, OPEN), (15.0, CLOSED)]), ("allow", 15.0, True)]),
    # IMC allow_ttl_override: a live key keeps its expiry, so a failure of a call still in
    # flight during the cooldown does not extend it.
    "a_failure_during_cooldown_does_not_extend_it": (LiteLLMBreakerConfig(), 3,
        [("throttled", 10.0), ("record", 12.0, F), ("throttled", 13.0), ("state", 15.0, CLOSED), ("log", [(10.0, OPEN), (15.0, CLOSED)])]),
    # CH should_cooldown_based_on_allowed_fails_policy: "if updated_fails > allowed_fails: return
    # True"; docs: "cooldown model if it fails > allowed_fails calls". The 4th failure with 3.
    "allowed_fails_cools_down_on_the_next_failure": (LiteLLMBreakerConfig(allowed_fails=3), 3,
        records(0.0, 0.5, [F, F, F]) + [("state", 1.25, CLOSED)] + records(1.5, 0.5, [F]) + [("log", [(1.5, OPEN), ]), ("state", 6.5, CLOSED)]),
    # CH: "failed_calls.set_cache(key=deployment, value=updated_fails, ttl=cooldown_time)": the
    # count lives cooldown_time (5 s) from the first failure (IMC keeps that expiry).
    "allowed_fails_counts_within_cooldown_time_of_the_first": (LiteLLMBreakerConfig(allowed_fails=3), 3,
        records(0.0, 1.0, [F, F, F]) + records(5.0, 1.0, [F, F, F]) + [("state", 7.5, CLOSED)] + records(8.0, 1.0, [F])
        + [("log", [(8.0, OPEN)])]),
    # CH: with allowed_fails set the router takes the "v1 logic (Legacy)" branch only: no 429 or
    # failure-rate rule; a 429 is one more counted failure.
    "allowed_fails_replaces_the_other_rules": (LiteLLMBreakerConfig(allowed_fails=3), 3,
        [("throttled", 0.0), ("throttled", 1.0), ("throttled", 2.0), ("state", 2.5, CLOSED), ("throttled", 3.0), ("log", [(3.0, OPEN)])]),
    # CH: should_cooldown_based_on_allowed_fails_policy has no single-deployment exception.
    "allowed_fails_applies_to_a_single_deployment": (LiteLLMBreakerConfig(allowed_fails=0), 1,
        records(0.0, 1.0, [F]) + [("log", [(0.0, OPEN)])]),
    # CH _is_cooldown_required: "elif exception_status == 408 ...: return True" (a timeout cools
    # down like a 5xx); count_timeouts = false (simrouter) ignores them.
    "timeouts_count_as_failures": (LiteLLMBreakerConfig(), 3, records(0.0, 1.0, [T] * 5) + [("log", [(4.0, OPEN)])]),
    "count_timeouts_false_ignores_them": (LiteLLMBreakerConfig(count_timeouts=False), 3, records(0.0, 1.0, [T] * 8) + [("log", [])]),
}


@pytest.mark.parametrize("case", LITELLM_CASES)
def test_litellm_rule(case):
    play(*LITELLM_CASES[case])


def test_litellm_defaults_are_litellms():
    # constants.py: DEFAULT_COOLDOWN_TIME_SECONDS = 5, DEFAULT_FAILURE_THRESHOLD_PERCENT = 0.5,
    # DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS = 5, SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD = 1000;
    # allowed_fails: unset (LiteLLM's default 3 counts as unset: _is_allowed_fails_set_on_router).
    c = LiteLLMBreakerConfig()
    assert (c.cooldown_time, c.failure_threshold_percent, c.failure_threshold_minimum_requests, c.single_deployment_traffic_failure_threshold,
            c.allowed_fails, c.count_timeouts) == (5.0, 0.5, 5, 1000, None, True)


# ------------------------------------------------------------------ envoy

ALONE = dict(max_ejection_percent=100.0)  # a pool of one host may eject it

ENVOY_CASES = {
    # proto consecutive_5xx: "The number of consecutive server-side error responses ... before a
    # consecutive 5xx ejection occurs. Defaults to 5."
    "five_consecutive_5xx_eject": (EnvoyBreakerConfig(**ALONE), 1,
        records(1.0, 1.0, [F] * 4) + [("state", 4.5, CLOSED)] + records(5.0, 1.0, [F]) + [("log", [(5.0, OPEN)]), ("allow", 5.5, False)]),
    # ODI putHttpResponseCode: a non-5xx response sets "consecutive_5xx_ = 0".
    "a_success_resets_the_count": (EnvoyBreakerConfig(**ALONE), 1,
        records(1.0, 1.0, [F, F, F, F, S, F, F, F, F]) + [("state", 9.5, CLOSED)] + records(10.0, 1.0, [F]) + [("log", [(10.0, OPEN)])]),
    # ODI resultToHttpCode: "case Result::LocalOriginTimeout: http_code = Http::Code::GatewayTimeout"
    # (a 5xx without split_external_local_origin_errors); count_timeouts = false (simrouter) ignores them.
    "a_timeout_is_a_504": (EnvoyBreakerConfig(**ALONE), 1, records(1.0, 1.0, [T] * 5) + [("log", [(5.0, OPEN)])]),
    "count_timeouts_false_ignores_them": (EnvoyBreakerConfig(count_timeouts=False, **ALONE), 1,
        records(1.0, 1.0, [F, F, T, T, F, F]) + [("log", [])]),
    # proto interval: "The time interval between ejection analysis sweeps. This can result in both
    # new ejections as well as hosts being returned to service"; ODI checkHostForUneject at each
    # sweep: "min(base_eject_time * ejectTimeBackoff, max_eject_time) + jitter <= now - lastEjectionTime".
    # Ejected at 3.5 s for 30 s: not back at the 30 s sweep, back at 40 s.
    "back_at_the_first_sweep_after_the_ejection_time": (EnvoyBreakerConfig(**ALONE), 1,
        records(0.5, 0.75, [F] * 5) + [("available", 39.875, False), ("available", 40.0, True), ("state", 40.0, CLOSED),
                                       ("log", [(3.5, OPEN), (40.0, CLOSED)])]),
    # ... "<=": ejected on a sweep (10 s) for 30 s, it is back at the 40 s sweep, not 50 s.
    "a_sweep_exactly_at_the_ejection_time_returns_it": (EnvoyBreakerConfig(**ALONE), 1,
        records(6.0, 1.0, [F] * 5) + [("log", [(10.0, OPEN)]), ("state", 40.0, CLOSED)]),
    # proto base_ejection_time: "The real time is equal to the base time multiplied by the number of
    # times the host has been ejected". Failing again right after its return (41-45 s): 60 s, back at 110 s.
    "the_ejection_time_grows_with_each_ejection": (EnvoyBreakerConfig(**ALONE), 1,
        records(0.2, 0.2, [F] * 5) + records(41.0, 1.0, [F] * 5) + [("available", 109.5, False), ("state", 110.0, CLOSED),
                                                                      ("log", [(1.0, OPEN), (40.0, CLOSED), (45.0, OPEN), (110.0, CLOSED)])]),
    # ODI onIntervalTimer: "Decrement time backoff for all hosts which have not been ejected" once
    # "(now - lastUnejectionTime) >= interval": back at 40 s, the 50 s sweep takes the multiplier
    # back to 0, so the next ejection (51-55 s) is 30 s again (back at 90 s).
    "the_multiplier_decreases_while_healthy": (EnvoyBreakerConfig(**ALONE), 1,
        records(0.2, 0.2, [F] * 5) + records(51.0, 1.0, [F] * 5) + [("state", 90.0, CLOSED),
                                                                      ("log", [(1.0, OPEN), (40.0, CLOSED), (55.0, OPEN), (90.0, CLOSED)])]),
    # proto max_ejection_time: "The maximum time that a host is ejected for": base 30 s, max 40 s:
    # the second ejection lasts min(60, 40) = 40 s (45 s -> the 90 s sweep).
    "capped_by_max_ejection_time": (EnvoyBreakerConfig(max_ejection_time=40.0, **ALONE), 1,
        records(0.2, 0.2, [F] * 5) + records(41.0, 1.0, [F] * 5) + [("log", [(1.0, OPEN), (40.0, CLOSED), (45.0, OPEN)]), ("state", 90.0, CLOSED)]),
    # ODI ejectHost: "double ejected_percent = 100.0 * (ejections_active_helper_.value() + 1) /
    # host_monitors_.size(); bool should_eject = (ejected_percent <= max_ejection_percent)" (PR 27909:
    # the percentage is the true limit). 3 hosts at the default 10 %: nobody is ejected.
    "max_ejection_percent_is_a_hard_limit": (EnvoyBreakerConfig(), 3, records(1.0, 1.0, [F] * 10) + [("log", [])]),
    # ODI: "if (config_.alwaysEjectOneHost()) should_eject = (ejections_active_helper_.value() == 0) ||
    # should_eject" (PR 34796, default false): the first host goes, the second does not.
    "always_eject_one_host": (EnvoyBreakerConfig(always_eject_one_host=True), 3,
        records(1.0, 1.0, [F] * 5, host=0) + records(1.5, 1.0, [F] * 5, host=1) + [("log", [(5.0, OPEN)], 0), ("log", [], 1)]),
    # ODI onConsecutiveErrorWorker resets the count after ejectHost whether or not it ejected
    # ("reset counters"): host 1's blocked detection at 5.5 s needs five new failures after host 0
    # is back (40 s; 50 % of 2 hosts lets one be ejected).
    "a_blocked_detection_restarts_the_count": (EnvoyBreakerConfig(max_ejection_percent=50.0), 2,
        records(1.0, 1.0, [F] * 5, host=0) + records(1.5, 1.0, [F] * 5, host=1) + [("log", [], 1), ("state", 40.0, CLOSED, 0)]
        + records(41.0, 1.0, [F] * 4, host=1) + [("log", [], 1)] + records(45.0, 1.0, [F], host=1) + [("log", [(45.0, OPEN)], 1)]),
    # ODI onConsecutiveErrorWorker: "if (host->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK))
    # return;" (late failures of an ejected host do nothing), and unejectHost "Reset the consecutive
    # failure counters": after its return it takes five new failures.
    "failures_while_ejected_do_not_count_after_return": (EnvoyBreakerConfig(**ALONE), 1,
        records(1.0, 1.0, [F] * 5) + records(6.0, 1.0, [F] * 7) + [("log", [(5.0, OPEN)]), ("state", 40.0, CLOSED)]
        + records(41.0, 1.0, [F] * 4) + [("log", [(5.0, OPEN), (40.0, CLOSED)])] + records(45.0, 1.0, [F]) + [("state", 45.0, OPEN)]),
    # proto enforcing_consecutive_5xx: "The % chance that a host will be actually ejected when an
    # outlier status is detected through consecutive 5xx ... Defaults to 100." 0: never.
    "enforcing_zero_detects_but_never_ejects": (EnvoyBreakerConfig(enforcing_consecutive_5xx=0.0, **ALONE), 1,
        records(1.0, 1.0, [F] * 20) + [("log", [])]),
}


@pytest.mark.parametrize("case", ENVOY_CASES)
def test_envoy_rule(case):
    play(*ENVOY_CASES[case])


def test_envoy_defaults_are_envoys():
    # proto: consecutive_5xx 5, interval 10 s, base_ejection_time 30 s, max_ejection_percent 10,
    # enforcing_consecutive_5xx 100; max_ejection_time "If not specified, the default value (300000ms
    # or 300s) or base_ejection_time value is applied, whatever is larger".
    c = EnvoyBreakerConfig()
    assert (c.consecutive_5xx, c.interval, c.base_ejection_time, c.max_ejection_percent, c.enforcing_consecutive_5xx, c.always_eject_one_host,
            c.ejection_time_cap) == (5, 10.0, 30.0, 10.0, 100.0, False, 300.0)
    assert EnvoyBreakerConfig(base_ejection_time=400.0).ejection_time_cap == 400.0


def test_envoy_rejects_a_max_ejection_time_below_the_base():
    # DetectorImpl::create: "outlier detector's max_ejection_time cannot be smaller than base_ejection_time".
    with pytest.raises(ConfigError) as caught:
        EnvoyBreakerConfig(base_ejection_time=30.0, max_ejection_time=20.0)
    assert caught.value.field == "breaker.max_ejection_time"


def test_envoy_enforcing_percentage_is_a_probability():
    """enforcing_consecutive_5xx = 30: of 2000 detections about 600 eject (binomial, sd 20.5;
    the bound is 5 sd, seeded)."""
    rng = np.random.default_rng(11)
    config = EnvoyBreakerConfig(enforcing_consecutive_5xx=30.0, **ALONE)
    ejected = 0
    for _ in range(2000):
        breaker = build_breaker(config, rng)
        for i in range(5):
            breaker.record(FAILURE, float(i))
        ejected += breaker.state is OPEN
    assert abs(ejected - 600) < 5 * (2000 * 0.3 * 0.7) ** 0.5


def test_a_pool_refuses_more_envoy_breakers_than_hosts():
    pool = EjectionPool(2)
    build_breaker(EnvoyBreakerConfig(), pool=pool), build_breaker(EnvoyBreakerConfig(), pool=pool)
    with pytest.raises(ValueError):
        build_breaker(EnvoyBreakerConfig(), pool=pool)


# ------------------------------------------------------------------ through the simulator

# breaker-failure: one backend (no siblings), Poisson 150 req/s, every call fails from 30 s to 45 s.
SEEDS = (1, 2)


def breaker_failure(seed, breaker):
    result = simrouter.simulate("breaker-failure", seed=seed, overrides=[f"breaker={breaker}"])
    return [(tr.t, tr.to_state) for tr in result.transitions], result.summary["breaker"]


@pytest.mark.parametrize("seed", SEEDS)
def test_litellm_allowed_fails_flaps_through_the_fault_and_is_back_within_a_cooldown(seed):
    # The 4th failure within 5 s cools it down for exactly 5 s; in the fault it re-trips 4
    # failures after each return, and is back within cooldown_time of the fault's end. (The
    # backend's own ~0.3 failures/s also make 4 within 5 s now and then, before or after the
    # fault: LiteLLM with allowed_fails = 3 cools down on such noise too.)
    log, summary = breaker_failure(seed, '{ preset = "litellm", allowed_fails = 3 }')
    assert all(to is (OPEN if i % 2 == 0 else CLOSED) for i, (_, to) in enumerate(log))
    assert all(log[i + 1][0] - log[i][0] == pytest.approx(5.0) for i in range(0, len(log) - 1, 2))
    in_fault = [t for t, to in log if to is OPEN and 30.0 <= t < 45.0]
    assert 30.0 <= in_fault[0] < 30.2 and len(in_fault) >= 3  # about every 5 s from 30 s to 45 s
    back = min(t for t, to in log if to is CLOSED and t >= 45.0)
    assert back <= 50.0
    assert summary["state"] == "closed"


@pytest.mark.parametrize("seed", SEEDS)
def test_litellm_spares_a_lone_deployment_by_default(seed):
    # No siblings: no failure-rate rule; the 100 % rule needs every request of the minute failed.
    log, summary = breaker_failure(seed, '{ preset = "litellm" }')
    assert log == [] and summary["trips"] == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_envoy_ejects_on_the_fifth_failure_and_returns_at_the_sweep(seed):
    # Five failures take ~33 ms at 150 req/s; ejected ~30.0 s for 30 s, back at the 70 s sweep.
    log, summary = breaker_failure(seed, '{ preset = "envoy", max_ejection_percent = 100.0 }')
    assert [to for _, to in log] == [OPEN, CLOSED]
    assert 30.0 <= log[0][0] < 30.2 and log[1][0] == pytest.approx(70.0)
    assert summary["recovery_s"] == pytest.approx(25.0)
    # Envoy's default 10 % of a pool of one host: never.
    assert breaker_failure(seed, '{ preset = "envoy" }')[0] == []
