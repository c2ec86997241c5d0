"""resilience4j, Hystrix and Polly presets against their documented behaviour.

None of the three runs here, so each case encodes one rule from the library's
documentation or source and says which. A case is a config and a script of
steps, played on a fresh breaker:

    ("allow", t, admitted)        breaker.allow(t) must return ``admitted``
    ("record", t, outcome[, d])   a call ends at t (after d seconds), no epoch
    ("state", t, state)           after advance(t) the breaker is in ``state``
    ("log", [(t, to_state), ...]) the transition log so far, true times
"""

import numpy as np
import pytest

from simrouter.config import HystrixBreakerConfig, PollyBreakerConfig, Resilience4jBreakerConfig
from simrouter.outcomes import FAILURE, SUCCESS, TIMEOUT
from simrouter.policies import BreakerState, HystrixBreaker, PollyBreaker, Resilience4jBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
S, F, T = SUCCESS, FAILURE, TIMEOUT


def play(breaker, steps):
    for step in steps:
        kind = step[0]
        if kind == "allow":
            assert breaker.allow(step[1]) is step[2], step
        elif kind == "record":
            breaker.record(step[2], step[1], duration=step[3] if len(step) > 3 else 0.0)
        elif kind == "state":
            breaker.advance(step[1])
            assert breaker.state is step[2], step
        elif kind == "log":
            assert [tr.to_state for tr in breaker.transitions] == [to for _, to in step[1]], step
            assert [tr.t for tr in breaker.transitions] == pytest.approx([t for t, _ in step[1]]), step
        else:  # pragma: no cover - a typo in a table
            raise ValueError(step)


def records(t0, dt, outcomes, duration=0.0):
    return [("record", t0 + i * dt, outcome, duration) for i, outcome in enumerate(outcomes)]


# ------------------------------------------------------------------ resilience4j

R4J = dict(sliding_window_size=4, minimum_number_of_calls=4, wait_duration_in_open_state=10.0,
           permitted_number_of_calls_in_half_open_state=3)


def trip_r4j_at(t):
    """Steps that open an R4J-configured breaker at time t (four failures; times
    in eighths of a second, exact in binary, so boundaries are exact too)."""
    return records(t - 0.375, 0.125, [F, F, F, F])


RESILIENCE4J_CASES = {
    # "A successful call can open the breaker": CircuitBreakerMetrics.onSuccess records
    # the outcome and re-checks the thresholds on completion (2 of 4 failed = 50 % >= 50 %).
    "success_can_open": (R4J, records(0.0, 0.1, [F, F, S]) + [("state", 0.25, CLOSED), ("record", 0.3, S), ("log", [(0.3, OPEN)])]),
    # COUNT_BASED: minimumNumberOfCalls is clamped to slidingWindowSize (Math.min in CircuitBreakerMetrics).
    "count_based_clamps_minimum_calls": ({**R4J, "minimum_number_of_calls": 100}, records(0.0, 0.1, [F, F, F, F]) + [("log", [(0.3, OPEN)])]),
    # COUNT_BASED keeps only the last N outcomes: F F S S S S -> the two failures are gone.
    "count_based_forgets_old_outcomes": ({**R4J, "failure_rate_threshold": 60.0}, records(0.0, 0.1, [F, S, S, S, S, F, F]) + [("state", 1.0, CLOSED), ("record", 1.0, F), ("state", 1.0, OPEN)]),
    # TIME_BASED does not clamp: no rate until minimum_number_of_calls outcomes, then it opens
    # "as soon as min calls is reached" (here at the 5th call, 3 of 5 failed, all within 0.5 s).
    "time_based_opens_when_minimum_reached": (
        dict(R4J, sliding_window_type="TIME_BASED", sliding_window_size=10, minimum_number_of_calls=5),
        records(0.1, 0.1, [S, F, F, F]) + [("state", 0.45, CLOSED), ("record", 0.5, F), ("log", [(0.5, OPEN)])]),
    # TIME_BASED buckets per epoch second: at t=2.5 with a 2 s window, second 0 is evicted.
    "time_based_evicts_old_seconds": (
        dict(R4J, sliding_window_type="TIME_BASED", sliding_window_size=2, minimum_number_of_calls=2, failure_rate_threshold=60.0),
        [("record", 0.5, F), ("record", 1.5, S), ("record", 2.5, F), ("state", 2.5, CLOSED), ("record", 2.6, F), ("state", 2.6, OPEN)]),
    # Slow calls: duration > slowCallDurationThreshold (strictly), successes included, trip alone.
    "slow_calls_trip_without_failures": (
        dict(R4J, sliding_window_size=2, minimum_number_of_calls=2, slow_call_duration_threshold=1.0, slow_call_rate_threshold=50.0),
        [("record", 1.0, S, 1.0), ("record", 2.0, S, 1.0), ("state", 2.0, CLOSED), ("record", 3.0, S, 1.5), ("state", 3.0, OPEN)]),
    # Lazy OPEN -> HALF_OPEN: OpenState.tryAcquirePermission uses clock.instant().isAfter(retryAfter):
    # a call exactly at the end of the wait is rejected, the next one is the first permit.
    "lazy_half_open_is_strictly_after_the_wait": (R4J, trip_r4j_at(1.0) + [
        ("allow", 10.99, False), ("allow", 11.0, False), ("state", 50.0, OPEN), ("allow", 50.0, True), ("log", [(1.0, OPEN), (50.0, HALF_OPEN)])]),
    # automaticTransitionFromOpenToHalfOpenEnabled: scheduled at opened_at + wait; the log
    # carries that time even though the breaker only learns of it at t=50.
    "automatic_half_open_logged_at_its_true_time": ({**R4J, "automatic_transition_from_open_to_half_open_enabled": True}, trip_r4j_at(1.0) + [
        ("state", 50.0, HALF_OPEN), ("log", [(1.0, OPEN), (11.0, HALF_OPEN)])]),
    # "Half-open permits are capped": permittedNumberOfCallsInHalfOpenState calls, then rejections;
    # the half-open window (size = permits) decides only once all permitted outcomes are in.
    "half_open_permits_are_capped": (R4J, trip_r4j_at(1.0) + [
        ("allow", 12.0, True), ("allow", 12.1, True), ("allow", 12.2, True), ("allow", 12.3, False),
        ("record", 12.5, S), ("record", 12.6, S), ("state", 12.6, HALF_OPEN), ("allow", 12.7, False),
        ("record", 12.8, S), ("state", 12.8, CLOSED), ("allow", 12.9, True)]),
    # The half-open window uses the same thresholds: 2 of 3 probes failed (67 % >= 50 %) re-opens.
    "half_open_rate_reopens": (R4J, trip_r4j_at(1.0) + [
        ("allow", 12.0, True), ("allow", 12.0, True), ("allow", 12.0, True),
        ("record", 12.5, F), ("record", 12.6, S), ("record", 12.7, F), ("log", [(1.0, OPEN), (12.0, HALF_OPEN), (12.7, OPEN)]),
        ("allow", 22.7, False), ("allow", 22.71, True)]),
    # No epochs: outcomes of calls admitted while CLOSED that end in HALF_OPEN are recorded in
    # the half-open window (HalfOpenState.onSuccess) and can close the breaker.
    "late_closed_calls_count_as_probes": (R4J, trip_r4j_at(1.0) + [
        ("allow", 12.0, True), ("record", 12.1, S), ("record", 12.2, S), ("record", 12.3, S), ("state", 12.3, CLOSED)]),
    # Outcomes arriving while OPEN go to the metrics OPEN discards: they change nothing.
    "outcomes_while_open_are_discarded": (R4J, trip_r4j_at(1.0) + records(2.0, 0.1, [S] * 20) + [("state", 5.0, OPEN), ("log", [(1.0, OPEN)])]),
    # Exponential backoff (IntervalFunction.ofExponentialBackoff): wait = 10 * 2^(attempt-1),
    # capped at 25 s; a close resets the attempt count (ClosedState.attempts() == 0).
    "exponential_backoff_of_the_open_wait": (
        {**R4J, "permitted_number_of_calls_in_half_open_state": 1, "enable_exponential_backoff": True,
         "exponential_backoff_multiplier": 2.0, "exponential_max_wait_duration_in_open_state": 25.0},
        trip_r4j_at(1.0) + [
            ("allow", 11.0, False), ("allow", 11.5, True), ("record", 11.5, F),    # attempt 2: 20 s
            ("allow", 31.5, False), ("allow", 32.0, True), ("record", 32.0, F),    # attempt 3: 40 -> 25 s
            ("allow", 57.0, False), ("allow", 57.5, True), ("record", 57.5, S),    # closes: attempt 0
            *trip_r4j_at(58.0), ("allow", 68.0, False), ("allow", 68.01, True)]),
    # maxWaitDurationInHalfOpenState: probes that never answer send it back to OPEN
    # (attempt + 1) at half_opened_at + max wait, logged at that time.
    "max_wait_in_half_open_reopens": ({**R4J, "max_wait_duration_in_half_open_state": 5.0}, trip_r4j_at(1.0) + [
        ("allow", 12.0, True), ("state", 16.9, HALF_OPEN), ("state", 30.0, OPEN),
        ("log", [(1.0, OPEN), (12.0, HALF_OPEN), (17.0, OPEN)]), ("allow", 27.0, False), ("allow", 27.01, True)]),
    # Without it (0, the default) a breaker whose probes never answer stays HALF_OPEN.
    "stuck_in_half_open_without_max_wait": (R4J, trip_r4j_at(1.0) + [
        ("allow", 12.0, True), ("allow", 12.0, True), ("allow", 12.0, True), ("state", 10_000.0, HALF_OPEN), ("allow", 10_000.0, False)]),
    # count_timeouts = false is ignoreExceptions: not recorded, and releasePermission gives the permit back.
    "ignored_timeouts_release_the_permit": ({**R4J, "permitted_number_of_calls_in_half_open_state": 1, "count_timeouts": False}, trip_r4j_at(1.0) + [
        ("allow", 12.0, True), ("allow", 12.1, False), ("record", 12.2, T), ("state", 12.2, HALF_OPEN), ("allow", 12.3, True)]),
    # Timeouts are failures by default (every exception is recorded).
    "timeouts_are_failures": (R4J, records(0.0, 0.1, [T, T, S, S]) + [("state", 0.3, OPEN)]),
}


def test_resilience4j_defaults_are_the_librarys():
    c = Resilience4jBreakerConfig()
    assert (c.sliding_window_type, c.sliding_window_size, c.minimum_number_of_calls) == ("COUNT_BASED", 100, 100)
    assert (c.failure_rate_threshold, c.slow_call_rate_threshold, c.slow_call_duration_threshold) == (50.0, 100.0, 60.0)
    assert (c.wait_duration_in_open_state, c.permitted_number_of_calls_in_half_open_state, c.max_wait_duration_in_half_open_state) == (60.0, 10, 0.0)
    assert (c.automatic_transition_from_open_to_half_open_enabled, c.exponential_backoff_multiplier, c.randomized_wait_factor) == (False, 1.5, 0.5)


def test_resilience4j_randomized_wait_is_uniform_within_the_factor():
    # IntervalFunction.randomize: uniform in [w (1 - f), w (1 + f)]; here w = 10 * 1.5^(3-1) = 22.5.
    config = Resilience4jBreakerConfig(wait_duration_in_open_state=10.0, enable_exponential_backoff=True,
                                       enable_randomized_wait=True, randomized_wait_factor=0.4)
    breaker = Resilience4jBreaker(config, np.random.default_rng(7))
    waits = np.array([breaker.wait_duration(3) for _ in range(4000)])
    assert waits.min() >= 22.5 * 0.6 and waits.max() <= 22.5 * 1.4
    # Mean and spread of U(13.5, 31.5): 22.5 and 18/sqrt(12); 5 standard errors of tolerance.
    assert abs(waits.mean() - 22.5) < 5 * (18 / np.sqrt(12)) / np.sqrt(waits.size)
    assert waits.std() == pytest.approx(18 / np.sqrt(12), rel=0.05)
    # The same seed gives the same waits: randomness only from the Generator passed in.
    again = Resilience4jBreaker(config, np.random.default_rng(7))
    assert [again.wait_duration(3) for _ in range(5)] == list(waits[:5])


# ------------------------------------------------------------------ Hystrix

HYSTRIX = dict(request_volume_threshold=5, error_threshold_percentage=50, sleep_window=5.0)


def trip_hystrix():
    """Steps that open a HYSTRIX-configured breaker at the 0.5 s snapshot."""
    return [("allow", 0.0, True), *records(0.1, 0.05, [F] * 5), ("allow", 0.49, True), ("allow", 0.5, False), ("log", [(0.5, OPEN)])]


HYSTRIX_CASES = {
    # Health counts come as snapshots every metrics.healthSnapshot.intervalInMilliseconds (500 ms):
    # five failures at 0.1-0.3 s leave it CLOSED until the 0.5 s snapshot ("trip lag up to 500 ms").
    "trip_waits_for_the_next_snapshot": (HYSTRIX, trip_hystrix()),
    # "No peeking into a bucket until it is emitted": failures in [0.5, 1.0) count from the 1.0 s snapshot.
    "the_bucket_being_filled_is_not_in_the_snapshot": (HYSTRIX, [
        ("allow", 0.0, True), *records(0.55, 0.05, [F] * 5), ("allow", 0.999, True), ("state", 1.0, OPEN), ("log", [(1.0, OPEN)])]),
    # circuitBreaker.requestVolumeThreshold: fewer requests in the window never trip, even all failing.
    "below_request_volume_never_trips": (HYSTRIX, [("allow", 0.0, True), *records(0.1, 0.05, [F] * 4), ("state", 20.0, CLOSED)]),
    # HealthCounts truncates: (int) (errors / total * 100). 99 of 199 is 49.7 % -> 49 < 50.
    "error_percentage_is_truncated": (HYSTRIX, [("allow", 0.0, True), *records(0.001, 0.001, [F] * 99 + [S] * 100), ("state", 20.0, CLOSED)]),
    "fifty_percent_trips": (HYSTRIX, [("allow", 0.0, True), *records(0.001, 0.001, [F] * 100 + [S] * 100), ("state", 0.5, OPEN)]),
    # The window is metrics.rollingStats.timeInMilliseconds (10 s): the 1.0 s failures are out of
    # the 10.5 s snapshot, which sees only the 10.2 s successes (5 + 5 would have been 50 %).
    "errors_roll_out_of_the_window": ({**HYSTRIX, "request_volume_threshold": 6}, [
        ("allow", 0.0, True), *records(0.1, 0.01, [F] * 5), ("state", 10.0, CLOSED), *records(10.2, 0.01, [S] * 5), ("state", 10.5, CLOSED)]),
    # Sleep window: isAfterSleepWindow is currentTime > openedAt + sleepWindow; then exactly one
    # probe (OPEN -> HALF_OPEN on attemptExecution), every other call rejected.
    "one_probe_strictly_after_the_sleep_window": (HYSTRIX, trip_hystrix() + [
        ("allow", 5.5, False), ("allow", 5.51, True), ("allow", 5.6, False), ("allow", 100.0, False), ("state", 100.0, HALF_OPEN)]),
    # markSuccess in HALF_OPEN closes it and resets the health stream: old errors cannot re-trip.
    "probe_success_closes_and_resets_counts": (HYSTRIX, trip_hystrix() + [
        ("allow", 5.51, True), ("record", 6.0, S), ("state", 6.0, CLOSED), ("state", 12.0, CLOSED), ("allow", 12.0, True)]),
    # markNonSuccess in HALF_OPEN re-opens with a fresh sleep window from that moment.
    "probe_failure_reopens": (HYSTRIX, trip_hystrix() + [
        ("allow", 5.51, True), ("record", 6.0, F), ("allow", 11.0, False), ("allow", 11.01, True),
        ("log", [(0.5, OPEN), (5.51, HALF_OPEN), (6.0, OPEN), (11.01, HALF_OPEN)])]),
    # No epochs: markSuccess acts on the current state, so a late success of a call admitted
    # before the trip closes a HALF_OPEN breaker.
    "late_success_closes_half_open": (HYSTRIX, trip_hystrix() + [("allow", 5.51, True), ("record", 5.6, S), ("state", 5.6, CLOSED)]),
    # The snapshot clock restarts with the stream on close: snapshots at close + 0.5 k.
    "snapshots_restart_at_close": (HYSTRIX, trip_hystrix() + [
        ("allow", 5.51, True), ("record", 5.7, S), *records(5.75, 0.05, [F] * 5), ("state", 6.19, CLOSED), ("state", 6.2, OPEN),
        ("log", [(0.5, OPEN), (5.51, HALF_OPEN), (5.7, CLOSED), (6.2, OPEN)])]),
}


def test_hystrix_defaults_are_the_librarys():
    c = HystrixBreakerConfig()
    assert (c.request_volume_threshold, c.error_threshold_percentage, c.sleep_window) == (20, 50, 5.0)
    assert (c.rolling_window, c.health_snapshot_interval) == (10.0, 0.5)


# ------------------------------------------------------------------ Polly

POLLY = dict(failure_ratio=0.5, minimum_throughput=4, sampling_duration=10.0, break_duration=5.0)


def trip_polly_at(t):
    return records(t - 0.375, 0.125, [F, F, F, F]) + [("log", [(t, OPEN)])]


POLLY_CASES = {
    # AdvancedCircuitBehavior.OnActionFailure is the only place the trip is checked:
    # reaching 50 % on a success does not open it, the next failure does.
    "trip_checked_on_failure_only": (POLLY, records(0.0, 0.1, [F, F, S, S]) + [("state", 0.3, CLOSED), ("record", 0.4, F), ("log", [(0.4, OPEN)])]),
    # MinimumThroughput: fewer calls in the sampling duration never trip.
    "below_minimum_throughput_never_trips": (POLLY, records(0.0, 0.1, [F, F, F]) + [("state", 9.0, CLOSED)]),
    # RollingHealthMetrics drops a window once now - its start >= SamplingDuration.
    "old_windows_expire": (POLLY, records(0.0, 0.01, [F, F, F]) + [("record", 10.0, F), ("state", 10.0, CLOSED)]),
    "windows_within_the_sampling_duration_count": (POLLY, records(0.0, 0.01, [F, F, F]) + [("record", 9.99, F), ("state", 9.99, OPEN)]),
    # Windows start at the first outcome after the previous one's length (1 s), not on a grid:
    # the window opened at 0.5 holds 1.4 too and is still alive at 10.45.
    "windows_start_at_outcomes": (POLLY, [("record", 0.5, F), ("record", 1.4, F), ("record", 1.45, S), ("record", 10.45, F), ("log", [(10.45, OPEN)])]),
    # BreakDuration: now >= blockedUntil permits the single half-open test; others are rejected
    # until its outcome (CircuitState.HalfOpen when !isHalfOpen -> BrokenCircuitException).
    "one_probe_at_the_end_of_the_break": (POLLY, trip_polly_at(1.0) + [
        ("allow", 5.99, False), ("allow", 6.0, True), ("allow", 6.1, False), ("state", 100.0, HALF_OPEN), ("allow", 100.0, False)]),
    # A handled failure in HALF_OPEN re-opens for another break; success closes.
    "probe_failure_reopens_then_success_closes": (POLLY, trip_polly_at(1.0) + [
        ("allow", 6.0, True), ("record", 6.5, F), ("allow", 11.4, False), ("allow", 11.5, True), ("record", 11.6, S),
        ("log", [(1.0, OPEN), (6.0, HALF_OPEN), (6.5, OPEN), (11.5, HALF_OPEN), (11.6, CLOSED)])]),
    # A BreakDurationGenerator fed HalfOpenAttempts (0 for the first break, +1 per half-open
    # probe, 0 again after closing): 5, 10, 20 capped at 15, then 5 again.
    "break_duration_grows_with_half_open_attempts": ({**POLLY, "break_duration_multiplier": 2.0, "max_break_duration": 15.0}, trip_polly_at(1.0) + [
        ("allow", 6.0, True), ("record", 6.0, F),    # 1 attempt: 10 s
        ("allow", 15.9, False), ("allow", 16.0, True), ("record", 16.0, F),    # 2 attempts: 20 -> 15 s
        ("allow", 30.9, False), ("allow", 31.0, True), ("record", 31.0, S),    # closed: attempts 0
        *records(31.625, 0.125, [F, F, F, F]), ("allow", 36.99, False), ("allow", 37.0, True)]),
    # Closing resets the health metrics (OnCircuitClosed -> Reset): old failures are forgotten.
    "close_clears_the_health": (POLLY, trip_polly_at(1.0) + [("allow", 6.0, True), ("record", 6.1, S), *records(6.2, 0.1, [F, F, F]), ("state", 6.5, CLOSED)]),
    # No epochs: OnActionSuccess in HALF_OPEN closes, whichever call it belongs to.
    "late_success_closes_half_open": (POLLY, trip_polly_at(1.0) + [("allow", 6.0, True), ("record", 6.05, S), ("state", 6.05, CLOSED)]),
    # A timeout the strategy does not handle (count_timeouts = false) goes to OnUnhandledOutcome: a success.
    "unhandled_timeout_counts_as_success": ({**POLLY, "count_timeouts": False}, trip_polly_at(1.0) + [("allow", 6.0, True), ("record", 6.2, T), ("state", 6.2, CLOSED)]),
}


def test_polly_defaults_are_the_librarys():
    c = PollyBreakerConfig()
    assert (c.failure_ratio, c.minimum_throughput, c.sampling_duration, c.break_duration) == (0.1, 100, 30.0, 5.0)
    assert c.break_duration_multiplier == 1.0


# ------------------------------------------------------------------ all three

TABLES = {
    "resilience4j": (lambda settings: Resilience4jBreaker(Resilience4jBreakerConfig(**settings), np.random.default_rng(0)), RESILIENCE4J_CASES),
    "hystrix": (lambda settings: HystrixBreaker(HystrixBreakerConfig(**settings)), HYSTRIX_CASES),
    "polly": (lambda settings: PollyBreaker(PollyBreakerConfig(**settings)), POLLY_CASES),
}


@pytest.mark.parametrize("preset, case", [(preset, case) for preset, (_, cases) in TABLES.items() for case in cases])
def test_documented_rule(preset, case):
    build, cases = TABLES[preset]
    settings, steps = cases[case]
    play(build(settings), steps)
