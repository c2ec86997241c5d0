"""The scenario schema: one frozen dataclass per section, with defaults and checks.

Every field has a default (the embedded default router and backend, calibrated
to the seed's dashboard), so a TOML file states only what differs. Field
metadata (``gt``, ``ge``, ``le``, ``required``) is enforced by
``simrouter.config.schema``; checks that involve several fields run in
``Scenario.__post_init__`` and raise ``ConfigError`` naming the field.
Times are seconds, rates are per second, probabilities are fractions.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from ..distributions import Constant, Distribution, Exponential, Lognormal, Mixture
from ..errors import ConfigError, unknown_key_message
from ..protocols.check import check_request
from .schema import OneOf, apply_overrides, build, to_dict
from .units import warn_units


def _opt(default: Any, **meta: Any) -> Any:
    """A dataclass field with validation metadata: ``ge``, ``gt``, ``le``, and
    ``required`` (a TOML table must give it; Python callers get the default).

    ``_opt(list)`` is an empty list; a config object default is shared (frozen)."""
    if default is list:
        return field(default_factory=list, metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


# Bounds that keep one run within a machine's memory (a rate in ms instead of s, say).
MAX_USERS = 1_000_000  # one SimPy process each
MAX_REQUESTS = 100_000_000  # expected requests of one run without workload.max_requests


@dataclass(frozen=True)
class Stage:
    """One stage of an open workload: ``rate`` arrivals/s for ``duration`` s."""

    duration: float = _opt(1.0, gt=0, required=True)
    rate: float = _opt(1.0, ge=0, required=True)


@dataclass(frozen=True)
class TokensConfig:
    """``[workload.tokens]``: each logical request's prompt and output tokens.

    ``prompt`` and ``output`` are any distribution of the project, drawn per
    logical request from their own random streams and rounded up to a whole
    number >= 1; ``trace`` replays a JSONL file instead, one
    ``{"t": s, "prompt_tokens": n, "output_tokens": m}`` per line (arrival
    times and tokens from the file; ``simrouter.sim.requests``)."""

    prompt: Distribution = _opt(Lognormal.from_percentiles(400.0, 3000.0))
    output: Distribution = _opt(Exponential(150.0))
    trace: str | None = _opt(None, path=True)  # relative to the scenario file


@dataclass(frozen=True)
class WorkloadConfig:
    """Who sends requests, and when.

    closed:     ``users`` users, each sends, waits for the answer, thinks, repeats.
    sequential: one user doing the same (the seed's baseline test).
    open:       arrivals at ``rate``/s (or by ``stages``), Poisson or evenly spaced,
                whatever the router answers; ``users`` keys spread at random over
                arrivals for per-user limits.
    ``requests_per_user = 0`` means "until ``duration``"; ``max_requests`` caps an
    open workload (0: no cap).
    """

    model: Literal["closed", "open", "sequential"] = "closed"
    users: int = _opt(10, ge=1, le=MAX_USERS)
    requests_per_user: int = _opt(100, ge=0)
    think_time: Distribution = _opt(Constant(0.0))
    rate: float = _opt(0.0, ge=0)
    arrival: Literal["poisson", "constant"] = "poisson"
    stages: list[Stage] = _opt(list)
    max_requests: int = _opt(0, ge=0)
    tokens: TokensConfig | None = None  # [workload.tokens]: per-request prompt/output tokens (backend.model = "llm")


# Each limiter algorithm's own keys and their defaults (see docs/policies.md).
LIMITER_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "token_bucket": {"rate": 50.0, "burst": 20},
    "gcra": {"rate": 20.0, "burst": 10},
    "leaky_bucket": {"rate": 20.0, "burst": 0, "nodelay": False, "delay": 0},
    "sliding_window_log": {"size": 1.0, "limit": 20},
    "sliding_window_counter": {"size": 1.0, "limit": 20},
    "fixed_window": {"size": 1.0, "limit": 20, "align": "clock"},
    "concurrency": {"max_in_flight": 1024},
}


@dataclass(frozen=True)
class LimiterConfig:
    """Admission control, one algorithm (``simrouter.policies.limiters``), per user or global.

    Each algorithm accepts only its own keys (``LIMITER_DEFAULTS``); the others
    stay ``None``. ``rate`` per second; ``burst`` requests (token bucket: bucket
    size; gcra: redis-cell's max_burst; leaky_bucket: nginx's burst); ``nodelay``
    / ``delay`` as nginx's; windows of ``size`` seconds admitting ``limit``;
    ``max_in_flight`` unanswered requests. ``algorithm = "none"`` ignores the
    other keys, so one override switches a section off.
    """

    algorithm: Literal[
        "none", "token_bucket", "gcra", "leaky_bucket", "sliding_window_log", "sliding_window_counter", "fixed_window", "concurrency"
    ] = "token_bucket"
    scope: Literal["per_user", "global"] = "per_user"
    rate: float | None = _opt(None, gt=0)
    burst: int | None = _opt(None, ge=0)
    nodelay: bool | None = None
    delay: int | None = _opt(None, ge=0)
    size: float | None = _opt(None, gt=0)
    limit: int | None = _opt(None, ge=1)
    align: Literal["clock", "first_request"] | None = None
    max_in_flight: int | None = _opt(None, ge=1)
    # Token limit (any algorithm, or none): prompt + max_tokens per request, per key or global
    # (``scope``), bucket of ``tokens_burst`` (unset: one minute's tokens). policies/limiters/tokens.py
    tokens_per_minute: float | None = _opt(None, gt=0)
    tokens_burst: float | None = _opt(None, gt=0)

    CHOICE: typing.ClassVar[str] = "algorithm"  # the key that decides which other keys apply

    @classmethod
    def accepted_keys(cls, data: dict) -> list[str] | None:
        """The keys a [limiter] table may hold, given its algorithm (None: any field)."""
        algorithm = data.get("algorithm", cls.algorithm)
        if not isinstance(algorithm, str) or algorithm not in LIMITER_DEFAULTS or algorithm == "none":
            return None
        return ["algorithm", "scope", *LIMITER_DEFAULTS[algorithm], "tokens_per_minute", "tokens_burst"]

    def __post_init__(self) -> None:
        own = LIMITER_DEFAULTS[self.algorithm]
        for name in ("rate", "burst", "nodelay", "delay", "size", "limit", "align", "max_in_flight"):
            value = getattr(self, name)
            if name in own:
                if value is None:
                    object.__setattr__(self, name, own[name])
            elif self.algorithm == "none":
                object.__setattr__(self, name, None)
            elif value is not None:
                accepted = self.accepted_keys({"algorithm": self.algorithm})
                raise ConfigError(f"limiter.{name}", unknown_key_message(name, accepted, f"[limiter] with algorithm = {self.algorithm!r}"))
        if self.algorithm == "token_bucket" and self.burst < 1:
            raise ConfigError("limiter.burst", f"a token bucket needs burst >= 1 (it admits nothing otherwise), got {self.burst}")
        if self.algorithm == "leaky_bucket" and self.nodelay and self.delay:
            raise ConfigError("limiter.delay", "give nodelay = true or delay = N, not both (as nginx)")


@dataclass(frozen=True)
class BreakerConfig:
    """``preset = "default"``: simrouter's own breaker (``policies.breakers.default``).

    Trips on ``failure_threshold`` consecutive failures (0 disables) or when the
    failure rate over the last ``window_size`` outcomes reaches
    ``failure_rate_threshold`` (once ``minimum_calls`` are recorded). Stays open
    ``open_duration`` s; the first call after that moves it to half-open, where
    ``half_open_max_calls`` probes pass; ``success_threshold`` successful probes
    close it, any failed probe re-opens it. ``count_timeouts``: router timeouts
    count as failures. ``preset = "none"``: no breaker (the other keys are unused).
    """

    preset: Literal["none", "default"] = "default"
    failure_threshold: int = _opt(5, ge=0)
    failure_rate_threshold: float = _opt(0.5, gt=0, le=1)
    window_size: int = _opt(20, ge=1)
    minimum_calls: int = _opt(10, ge=1)
    open_duration: float = _opt(30.0, gt=0)
    half_open_max_calls: int = _opt(3, ge=1)
    success_threshold: int = _opt(3, ge=1)
    count_timeouts: bool = True

    def __post_init__(self) -> None:
        if self.preset == "default" and self.minimum_calls > self.window_size:
            raise ConfigError(
                "breaker.minimum_calls",
                f"must be <= breaker.window_size ({self.window_size}): the window holds at most window_size outcomes, "
                f"so the failure-rate rule could never trip; got {self.minimum_calls}",
            )
        if self.success_threshold > self.half_open_max_calls:
            raise ConfigError(
                "breaker.success_threshold",
                f"must be <= breaker.half_open_max_calls ({self.half_open_max_calls}), got {self.success_threshold}",
            )


@dataclass(frozen=True)
class Resilience4jBreakerConfig:
    """``preset = "resilience4j"``: resilience4j's CircuitBreakerConfig with its
    defaults, names in snake_case, rates in PERCENT (as resilience4j), durations in
    seconds (``policies.breakers.resilience4j``). A call slower than
    ``slow_call_duration_threshold`` is slow; ``count_timeouts``: router timeouts
    are failures (resilience4j records every exception), false ignores them."""

    preset: Literal["resilience4j"] = "resilience4j"
    sliding_window_type: Literal["COUNT_BASED", "TIME_BASED"] = "COUNT_BASED"
    sliding_window_size: int = _opt(100, ge=1)
    minimum_number_of_calls: int = _opt(100, ge=1)
    failure_rate_threshold: float = _opt(50.0, gt=0, le=100)
    slow_call_rate_threshold: float = _opt(100.0, gt=0, le=100)
    slow_call_duration_threshold: float = _opt(60.0, gt=0)
    wait_duration_in_open_state: float = _opt(60.0, gt=0)
    enable_exponential_backoff: bool = False
    exponential_backoff_multiplier: float = _opt(1.5, ge=1)
    exponential_max_wait_duration_in_open_state: float = _opt(math.inf, gt=0)
    enable_randomized_wait: bool = False
    randomized_wait_factor: float = _opt(0.5, ge=0, le=1)
    automatic_transition_from_open_to_half_open_enabled: bool = False
    permitted_number_of_calls_in_half_open_state: int = _opt(10, ge=1)
    max_wait_duration_in_half_open_state: float = _opt(0.0, ge=0)
    count_timeouts: bool = True

    def __post_init__(self) -> None:
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if value < 1:  # 0.5 would be read as 0.5 %: the breaker would trip on noise
                raise ConfigError(
                    f"breaker.{name}",
                    f"is a percentage with preset = \"resilience4j\" (as resilience4j: 50 means 50 %), from 1 to 100; "
                    f"got {value:g}, which would mean {value:g} %; write {value * 100:g} for {value:.0%}",
                )
        if self.randomized_wait_factor >= 1:
            raise ConfigError("breaker.randomized_wait_factor", f"expected a value >= 0 and < 1 (as resilience4j), got {self.randomized_wait_factor}")


@dataclass(frozen=True)
class PybreakerBreakerConfig:
    """``preset = "pybreaker"``: PyPI pybreaker's CircuitBreaker arguments and
    defaults (``policies.breakers.pybreaker``). ``count_timeouts``: router
    timeouts are failures; false excludes them (pybreaker then counts a success)."""

    preset: Literal["pybreaker"] = "pybreaker"
    fail_max: int = _opt(5, ge=1)
    reset_timeout: float = _opt(60.0, ge=0)
    success_threshold: int = _opt(1, ge=1)
    count_timeouts: bool = True


@dataclass(frozen=True)
class HystrixBreakerConfig:
    """``preset = "hystrix"``: Hystrix's circuitBreaker.* and metrics.* properties
    and defaults, durations in seconds (``policies.breakers.hystrix``).
    ``count_timeouts``: router timeouts are errors (always, in Hystrix); false
    ignores them."""

    preset: Literal["hystrix"] = "hystrix"
    request_volume_threshold: int = _opt(20, ge=0)
    error_threshold_percentage: int = _opt(50, ge=0, le=100)
    sleep_window: float = _opt(5.0, gt=0)
    rolling_window: float = _opt(10.0, gt=0)
    health_snapshot_interval: float = _opt(0.5, gt=0)
    count_timeouts: bool = True

    def __post_init__(self) -> None:
        if self.rolling_window < self.health_snapshot_interval:
            raise ConfigError("breaker.rolling_window", f"must hold at least one health snapshot interval ({self.health_snapshot_interval} s), got {self.rolling_window}")


@dataclass(frozen=True)
class PollyBreakerConfig:
    """``preset = "polly"``: Polly v8's CircuitBreakerStrategyOptions and defaults,
    durations in seconds (``policies.breakers.polly``). A break lasts
    ``break_duration * break_duration_multiplier ** half-open attempts`` (at most
    ``max_break_duration``; multiplier 1: Polly without a BreakDurationGenerator).
    ``count_timeouts``: router timeouts are failures; false leaves them unhandled
    (a success for Polly)."""

    preset: Literal["polly"] = "polly"
    failure_ratio: float = _opt(0.1, ge=0, le=1)
    minimum_throughput: int = _opt(100, ge=2)
    sampling_duration: float = _opt(30.0, ge=0.5)
    break_duration: float = _opt(5.0, ge=0.5, le=86_400)
    break_duration_multiplier: float = _opt(1.0, ge=1)
    max_break_duration: float = _opt(math.inf, gt=0)
    count_timeouts: bool = True


@dataclass(frozen=True)
class LiteLLMBreakerConfig:
    """``preset = "litellm"``: LiteLLM Router's deployment cooldowns and their
    defaults (``policies.breakers.litellm``), durations in seconds. Unset
    ``allowed_fails`` (LiteLLM's default 3, which its Router treats as unset):
    a 429 cools the deployment down at once and so does a failure rate above
    ``failure_threshold_percent`` among the current minute's requests once
    ``failure_threshold_minimum_requests`` were seen (both only when the
    deployment has siblings), or 100 % of them once
    ``single_deployment_traffic_failure_threshold`` were seen. Set: the
    (allowed_fails + 1)-th failure within ``cooldown_time`` of the first cools it
    down, nothing else does. A cooldown lasts ``cooldown_time``. ``count_timeouts``:
    router timeouts are failures (LiteLLM's 408 cools down); false ignores them."""

    preset: Literal["litellm"] = "litellm"
    allowed_fails: int | None = _opt(None, ge=0)
    cooldown_time: float = _opt(5.0, gt=0)
    failure_threshold_percent: float = _opt(0.5, ge=0, le=1)
    failure_threshold_minimum_requests: int = _opt(5, ge=1)
    single_deployment_traffic_failure_threshold: int = _opt(1000, ge=1)
    count_timeouts: bool = True


@dataclass(frozen=True)
class EnvoyBreakerConfig:
    """``preset = "envoy"``: Envoy's outlier detection (consecutive 5xx) with its
    OutlierDetection defaults, durations in seconds (``policies.breakers.envoy``).
    ``consecutive_5xx`` failures in a row eject the host if at most
    ``max_ejection_percent`` of the gateway's deployments are ejected after it (or
    none is yet, with ``always_eject_one_host``), with probability
    ``enforcing_consecutive_5xx`` %; it returns at the first ``interval`` sweep
    ``min(base_ejection_time x multiplier, max_ejection_time)`` after. ``count_timeouts``:
    router timeouts are 5xx (Envoy maps a timeout to 504); false ignores them."""

    preset: Literal["envoy"] = "envoy"
    consecutive_5xx: int = _opt(5, ge=1)
    interval: float = _opt(10.0, gt=0)
    base_ejection_time: float = _opt(30.0, gt=0)
    max_ejection_time: float | None = _opt(None, gt=0)  # unset: max(300 s, base_ejection_time), as Envoy
    max_ejection_percent: float = _opt(10.0, ge=0, le=100)
    always_eject_one_host: bool = False
    enforcing_consecutive_5xx: float = _opt(100.0, ge=0, le=100)
    count_timeouts: bool = True

    def __post_init__(self) -> None:
        if self.max_ejection_time is not None and self.max_ejection_time < self.base_ejection_time:
            raise ConfigError(
                "breaker.max_ejection_time",
                f"must be >= breaker.base_ejection_time ({self.base_ejection_time} s), as Envoy requires; got {self.max_ejection_time}",
            )

    @property
    def ejection_time_cap(self) -> float:
        """Envoy's max_ejection_time: the value given, else max(300 s, base_ejection_time)."""
        return self.max_ejection_time if self.max_ejection_time is not None else max(300.0, self.base_ejection_time)


BREAKER_PRESETS: dict[str, type] = {
    "none": BreakerConfig,
    "default": BreakerConfig,
    "resilience4j": Resilience4jBreakerConfig,
    "pybreaker": PybreakerBreakerConfig,
    "hystrix": HystrixBreakerConfig,
    "polly": PollyBreakerConfig,
    "litellm": LiteLLMBreakerConfig,
    "envoy": EnvoyBreakerConfig,
}
BreakerSettings = Annotated[
    BreakerConfig | Resilience4jBreakerConfig | PybreakerBreakerConfig | HystrixBreakerConfig | PollyBreakerConfig
    | LiteLLMBreakerConfig | EnvoyBreakerConfig,
    OneOf("preset", BREAKER_PRESETS, "default"),
]


@dataclass(frozen=True)
class Failures:
    """Per-request failure probabilities of the backend (validation: at the router)."""

    processing: float = _opt(0.002, ge=0, le=1)
    timeout: float = _opt(0.0, ge=0, le=1)
    validation: float = _opt(0.001, ge=0, le=1)
    # ``serve --protocol openai`` only (docs/protocols.md): the fraction of streamed answers
    # cut after a random number of tokens (no finish reason, no [DONE]: ``incomplete_stream``)
    # and the fraction ended by an SSE ``error`` event (server_error). Unset: 0.
    stream_cut: float | None = _opt(None, ge=0, le=1)
    stream_error: float | None = _opt(None, ge=0, le=1)


# The embedded default backend; see docs/model.md ("How the default backend was chosen").
# Fitted so that `concurrent` reproduces the seed's dashboard (docs/model.md, "How the
# default backend was chosen"): 99.35 % of calls lognormal around 43 ms, 0.65 %
# slow ones (cold starts, long generations) around 2.3 s.
DEFAULT_LATENCY = Mixture(
    (0.9935, 0.0065),
    (Lognormal(median=0.04330, sigma=0.6146), Lognormal(median=2.312, sigma=0.3314)),
)


@dataclass(frozen=True)
class StepTime:
    """``backend.step_time``: seconds per engine step = ``base`` +
    ``per_prefill_token`` x prompt tokens prefilled in the step +
    ``per_decode_token`` x sequences that emit a token in the step."""

    base: float = _opt(0.006, ge=0)
    per_prefill_token: float = _opt(0.00002, ge=0)
    per_decode_token: float = _opt(0.0001, ge=0)


# backend.model = "llm" defaults (vLLM's max_num_seqs; a chunked-prefill token budget).
LLM_DEFAULTS = {"max_num_seqs": 64, "max_num_batched_tokens": 8192}


@dataclass(frozen=True)
class BackendConfig:
    """The AI backend: ``capacity`` requests in service at once, FIFO queue of
    ``queue_limit`` (beyond it: ``queue_full``), service time from ``latency``.
    A call that hangs (``failures.timeout``) holds its slot ``hang_time`` s."""

    capacity: int = _opt(16, ge=1)
    queue_limit: int = _opt(1000, ge=0)
    latency: Distribution = _opt(DEFAULT_LATENCY)
    failures: Failures = _opt(Failures())
    hang_time: float = _opt(30.0, gt=0)
    # ``serve --protocol openai`` only, ignored by the simulation (docs/protocols.md):
    # ``ttft`` replaces ``latency`` as the service time to the first token (unset: latency),
    # ``tpot`` is the time between output tokens (unset: 0), ``output_tokens`` the answer's
    # length in tokens, rounded, at least 1, at most the request's max_tokens (unset: 16).
    ttft: Distribution | None = None
    tpot: Distribution | None = None
    output_tokens: Distribution | None = None
    # ``model = "llm"``: a continuously batching LLM server (sim/llm_backend.py, LLMBackendConfig).
    model: Literal["delay", "llm"] | None = None  # unset: "delay", the latency per request above
    max_num_seqs: int | None = _opt(None, ge=1)
    max_num_batched_tokens: int | None = _opt(None, ge=1)
    step_time: StepTime | None = None
    kv_cache_tokens: int | None = _opt(None, ge=1)

    def __post_init__(self) -> None:
        if self.model == "llm":  # the LLM keys' defaults, only for the LLM backend
            for name, default in (*LLM_DEFAULTS.items(), ("step_time", StepTime())):
                if getattr(self, name) is None:
                    object.__setattr__(self, name, default)

    @property
    def is_llm(self) -> bool:
        return self.model == "llm"


@dataclass(frozen=True)
class RetryConfig:
    """``[router.retry]``: client retries (``simrouter.policies.retry``).

    A logical request is tried up to ``max_attempts`` times (1: no retries) when
    a try ends in one of ``retry_on``; before retry n (0-based) it waits
    ``min(backoff_max, backoff_base * backoff_multiplier ** n)`` with ``jitter``
    (AWS's none / full / equal / decorrelated). With ``budget = true`` retries
    over the last ``budget_window`` s may not exceed ``budget_ratio`` of the
    logical requests plus ``budget_min_per_s`` per second (Finagle's budget).
    """

    max_attempts: int = _opt(1, ge=1)
    retry_on: list[Literal["timeouts", "failures", "queue_full", "breaker_rejected", "rate_limited"]] = field(
        default_factory=lambda: ["timeouts", "failures", "queue_full"]
    )
    backoff_base: float = _opt(0.025, ge=0)
    backoff_multiplier: float = _opt(2.0, ge=1)
    backoff_max: float = _opt(0.25, ge=0)
    jitter: Literal["none", "full", "equal", "decorrelated"] = "full"
    budget: bool = False
    budget_ratio: float = _opt(0.2, ge=0)
    budget_window: float = _opt(10.0, gt=0)
    budget_min_per_s: float = _opt(10.0, ge=0)

    def __post_init__(self) -> None:
        if self.backoff_max < self.backoff_base:
            raise ConfigError("router.retry.backoff_max", f"must be >= backoff_base ({self.backoff_base}), got {self.backoff_max}")


@dataclass(frozen=True)
class HedgeConfig:
    """``[router.hedge]``: hedged requests (``simrouter.policies.hedge``).

    Up to ``max_hedges`` extra copies (0: off), one every ``delay`` s while the
    try is unanswered, or every ``percentile``-th percentile of the last
    ``window`` answers' latency when ``percentile > 0``. The first success wins;
    ``cancel_loser`` cancels the other copies, otherwise they run to the end.
    """

    max_hedges: int = _opt(0, ge=0)
    delay: float = _opt(0.1, gt=0)
    percentile: float = _opt(0.0, ge=0, le=100)
    window: int = _opt(1000, ge=1)
    cancel_loser: bool = True


# ``router.routing``: how a gateway picks among its deployments (simrouter.policies.routing).
ROUTING_CHOICES = ("round-robin", "simple-shuffle", "least-busy", "latency-based", "usage-based", "power-of-two")
# ``router.fallback_on``: the attempt kinds that send a fallback to another deployment
# ("failures" includes queue_full: a deployment that refuses the call).
FALLBACK_KINDS = ("breaker_rejected", "rate_limited", "failures", "timeouts")


@dataclass(frozen=True)
class RouterConfig:
    """The router's own settings: ``timeout`` s per attempt (``inf``: none), and
    the client policies ``retry`` and ``hedge``.

    With ``[[deployments]]`` (a gateway, docs/gateway.md): ``routing`` picks the
    deployment of each attempt (LiteLLM's default is ``simple-shuffle``, weighted
    random); an attempt answered with a kind in ``fallback_on`` is followed at
    once by a fallback attempt to a deployment this request has not tried, at
    most ``max_fallbacks`` per try; ``latency_ttl`` s is how long a latency
    sample counts for ``latency-based`` routing. Without deployments they are unused."""

    timeout: float = _opt(5.0, gt=0)
    retry: RetryConfig = _opt(RetryConfig())
    hedge: HedgeConfig = _opt(HedgeConfig())
    routing: Literal["round-robin", "simple-shuffle", "least-busy", "latency-based", "usage-based", "power-of-two"] = "simple-shuffle"
    max_fallbacks: int = _opt(2, ge=0)
    fallback_on: list[Literal["breaker_rejected", "rate_limited", "failures", "timeouts"]] = field(default_factory=lambda: list(FALLBACK_KINDS))
    latency_ttl: float = _opt(60.0, gt=0)


@dataclass(frozen=True)
class FaultWindow:
    """Between ``start`` and ``end`` calls that start service fail with probability
    ``error_rate`` and take ``latency_factor`` times as long.

    The fault proxy (``simrouter proxy``, ``simrouter.faults`` decides per request)
    also applies: ``status`` of the injected errors (500, 429 with ``Retry-After``,
    503), ``added_latency`` seconds before the answer (for a stream: before the
    first byte), ``per_chunk_latency`` seconds between streamed chunks,
    ``hang_rate`` (accepted, never answered), ``reset_rate`` (connection closed
    mid-answer), ``cut_stream_rate`` (an SSE stream ended after a few events, no
    ``[DONE]``). The rates are exclusive shares of one draw: they add up to at most 1.
    The simulation and ``serve`` apply ``error_rate`` and ``latency_factor`` only.
    """

    start: float = _opt(0.0, ge=0, required=True)
    end: float = _opt(1.0, gt=0, required=True)
    error_rate: float = _opt(0.0, ge=0, le=1)
    latency_factor: float = _opt(1.0, gt=0)
    status: Literal[500, 429, 503] = 500
    added_latency: float = _opt(0.0, ge=0)
    per_chunk_latency: float = _opt(0.0, ge=0)
    hang_rate: float = _opt(0.0, ge=0, le=1)
    reset_rate: float = _opt(0.0, ge=0, le=1)
    cut_stream_rate: float = _opt(0.0, ge=0, le=1)

    def __post_init__(self) -> None:
        total = self.error_rate + self.hang_rate + self.reset_rate + self.cut_stream_rate
        if total > 1 + 1e-12:
            raise ConfigError("faults.error_rate", f"error_rate + hang_rate + reset_rate + cut_stream_rate must add up to at most 1 (one draw decides), got {total:g}")
        if not math.isfinite(self.added_latency) or not math.isfinite(self.per_chunk_latency) or not math.isfinite(self.latency_factor):
            raise ConfigError("faults.added_latency", "latency_factor, added_latency and per_chunk_latency must be finite")

    @property
    def is_noop(self) -> bool:
        """True when the window changes nothing (a configuration mistake)."""
        return (
            self.error_rate == 0 and self.latency_factor == 1 and self.added_latency == 0 and self.per_chunk_latency == 0
            and self.hang_rate == 0 and self.reset_rate == 0 and self.cut_stream_rate == 0
        )


def _partial(cls: type, name: str, doc: str, nested: dict[str, type] | None = None) -> type:
    """A copy of config class ``cls`` whose every field is optional and unset
    (None) by default, with the same types and ranges: the keys a user wrote, to
    be laid over a full ``cls`` (``overlay``). ``nested``: fields whose section is
    itself partial (``backend.failures``). ``name``: the module-level name the
    class is bound to, so pickle finds it there (process pools, Dask)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for spec in dataclasses.fields(cls):
        hint = (nested or {}).get(spec.name) or hints[spec.name]
        meta = {key: value for key, value in spec.metadata.items() if key != "required"}
        fields.append((spec.name, typing.Optional[hint], field(default=None, metadata=meta)))
    partial = dataclasses.make_dataclass(name, fields, frozen=True)
    partial.__module__ = __name__
    partial.__qualname__ = name
    partial.__doc__ = doc
    return partial


PartialFailures = _partial(Failures, "PartialFailures", "A deployment's ``backend.failures`` keys; unset ones come from the top-level ``[backend.failures]``.")
PartialBackend = _partial(
    BackendConfig,
    "PartialBackend",
    "A deployment's ``backend`` table: any ``[backend]`` keys; the unset ones come from the top-level ``[backend]``.",
    nested={"failures": PartialFailures},
)


def overlay(base: Any, partial: Any) -> Any:
    """``base`` (a full config object) with the keys set in ``partial`` replacing its
    own (nested partial sections laid over their own section); re-validated."""
    changes = {}
    for spec in dataclasses.fields(partial):
        value = getattr(partial, spec.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value) and type(value).__name__.startswith("Partial"):
            value = overlay(getattr(base, spec.name), value)
        changes[spec.name] = value
    return dataclasses.replace(base, **changes) if changes else base


@dataclass(frozen=True)
class DeploymentLimiterConfig(LimiterConfig):
    """A deployment's own quota (LiteLLM's per-deployment rpm / tpm): any
    ``[limiter]`` algorithm and keys, ``scope = "global"`` by default (one quota
    for the whole deployment); rpm as ``rate``, tpm as ``tokens_per_minute``."""

    scope: Literal["per_user", "global"] = "global"


@dataclass(frozen=True)
class DeploymentConfig:
    """``[[deployments]]``: one deployment behind the gateway (docs/gateway.md).

    ``name`` (required, unique); ``weight`` for the weighted strategies;
    ``backend``: any ``[backend]`` keys, the unset ones from the top-level
    ``[backend]`` (``backend_of``); ``limiter``: the deployment's own quota
    (unset: none); ``breaker``: its own breaker (unset: the top-level
    ``[breaker]``, one instance per deployment); ``faults``: windows of this
    deployment only, applied IN ADDITION to the top-level ``faults`` (which hit
    every deployment)."""

    name: str = _opt("", required=True)
    weight: float = _opt(1.0, gt=0)
    backend: PartialBackend = _opt(PartialBackend())  # type: ignore[valid-type]
    limiter: DeploymentLimiterConfig | None = None
    breaker: BreakerSettings | None = None
    faults: list[FaultWindow] = _opt(list)

    def backend_of(self, base: BackendConfig) -> BackendConfig:
        """This deployment's backend: the top-level ``base`` with its own keys laid over."""
        return overlay(base, self.backend)

    def breaker_of(self, base: Any) -> Any:
        """This deployment's breaker config: its own, else the top-level one."""
        return self.breaker if self.breaker is not None else base

    def faults_of(self, base: list[FaultWindow]) -> list[FaultWindow]:
        """The fault windows this deployment sees: the top-level ones and its own."""
        return [*base, *self.faults]


@dataclass(frozen=True)
class Targets:
    """Pass/fail thresholds (the seed's). A max of ``inf`` or a min of 0 is not checked."""

    p95_ms: float = _opt(150.0, gt=0)
    p99_ms: float = _opt(500.0, gt=0)
    min_rps: float = _opt(100.0, ge=0)
    max_error_rate: float = _opt(0.01, gt=0)  # strict "<", as the seed: 0 could never pass
    max_recovery_s: float = _opt(60.0, gt=0)
    # LLM targets (backend.model = "llm"; unset: not checked): P95 time to first token, P95 time
    # per output token, output tokens per second of the run (simrouter.llm_summary).
    ttft_p95_ms: float | None = _opt(None, gt=0)
    tpot_p95_ms: float | None = _opt(None, gt=0)
    min_output_tokens_per_s: float | None = _opt(None, ge=0)


@dataclass(frozen=True)
class MetricsConfig:
    """``window``: size of the rolling percentile window (the seed's 10,000);
    ``interval``: seconds per point of the time series."""

    window: int = _opt(10_000, ge=1)
    interval: float = _opt(1.0, gt=0)


# What ``simrouter live`` sends (docs/protocols.md); the simulation ignores it.
REQUEST_PATHS = {"simrouter": "/submit", "openai-chat": "/v1/chat/completions", "openai-completions": "/v1/completions", "http": "/"}
OPENAI_PROTOCOLS = ("openai-chat", "openai-completions")


@dataclass(frozen=True)
class RequestConfig:
    """``[request]``: the HTTP request ``simrouter live`` sends for each arrival.

    ``protocol``: ``simrouter`` (``POST /submit {"user": N}``, the reference
    service), ``openai-chat`` / ``openai-completions`` (OpenAI-compatible
    ``POST /v1/chat/completions`` / ``/v1/completions`` with ``model``,
    ``max_tokens`` and ``stream``), or ``http`` (any ``method``, a JSON ``body``
    template with ``{user}``, ``{seq}``, ``{prompt}``). ``path`` defaults per
    protocol (``REQUEST_PATHS``) and may carry a query string. ``headers`` values
    (and ``path``, ``body``) may name environment variables as ``${VAR}``, read at
    run time, never here: this object (and so every result's echoed config) keeps
    ``${VAR}`` literally. ``prompts``: a JSONL file, one prompt string or full
    body object per line, cycled. The checks are ``simrouter.protocols.check.check_request``.
    """

    protocol: Literal["simrouter", "openai-chat", "openai-completions", "http"] = "simrouter"
    path: str | None = None
    method: str | None = None
    model: str | None = None
    stream: bool | None = None
    max_tokens: int | None = _opt(None, ge=1)
    headers: dict[str, str] | None = None
    body: str | None = None
    prompts: str | None = _opt(None, path=True)  # relative to the scenario file

    def __post_init__(self) -> None:
        check_request(self)

    @property
    def effective_path(self) -> str:
        return self.path if self.path is not None else REQUEST_PATHS[self.protocol]

    @property
    def effective_method(self) -> str:
        return self.method if self.method is not None else "POST"

    @property
    def effective_stream(self) -> bool:
        """Streamed (SSE) answers: the openai protocols' default; never for the others."""
        return self.protocol in OPENAI_PROTOCOLS and self.stream is not False


# Seconds of warm-up, or "auto": chosen per run by MSER-5 (simrouter.warmup).
Warmup = typing.Union[float, Literal["auto"]]


@dataclass(frozen=True)
class Scenario:
    """Everything one simulated (or live) run needs, except the seed."""

    name: str = "custom"
    description: str = ""
    duration: float = _opt(60.0, gt=0)
    warmup: Warmup = _opt(0.0, ge=0)
    workload: WorkloadConfig = _opt(WorkloadConfig())
    limiter: LimiterConfig = _opt(LimiterConfig())
    breaker: BreakerSettings = _opt(BreakerConfig())
    backend: BackendConfig = _opt(BackendConfig())
    router: RouterConfig = _opt(RouterConfig())
    faults: list[FaultWindow] = _opt(list)
    deployments: list[DeploymentConfig] = _opt(list)  # none: the single [backend]
    targets: Targets = _opt(Targets())
    metrics: MetricsConfig = _opt(MetricsConfig())
    request: RequestConfig = _opt(RequestConfig())

    def __post_init__(self) -> None:
        _check_consistency(self)
        warn_units(self)  # a latency typed in milliseconds (config.units)

    def replace(self, overrides: typing.Iterable[str]) -> "Scenario":
        """A copy with ``section.key=value`` overrides applied and re-validated."""
        return build(Scenario, apply_overrides(to_dict(self), overrides, Scenario))

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# ---------------------------------------------------------------- cross-field checks


def _check_consistency(s: Scenario) -> None:
    w = s.workload
    if s.warmup != "auto" and s.warmup >= s.duration:
        raise ConfigError("warmup", f"must be shorter than duration ({s.duration} s), got {s.warmup}")
    if not math.isfinite(s.duration):
        raise ConfigError("duration", "must be finite (simulated seconds)")
    if w.model == "sequential" and w.users != 1:
        raise ConfigError("workload.users", f"the sequential model sends from exactly one user; set workload.users = 1 (got {w.users})")
    if w.model == "open":
        if w.stages and w.rate:
            raise ConfigError("workload.stages", "give either workload.rate or workload.stages, not both")
        if not w.stages and not w.rate > 0:
            raise ConfigError("workload.rate", "the open model needs a rate > 0 (arrivals per second) or stages")
        _check_open_volume(s)
    else:
        if w.stages or w.rate:
            name = "workload.stages" if w.stages else "workload.rate"
            raise ConfigError(name, f"only the open model uses arrival rates; workload.model is {w.model!r}")
        if w.max_requests:
            raise ConfigError("workload.max_requests", f"only the open model uses it; a {w.model} user sends workload.requests_per_user requests")
        if w.requests_per_user == 0 and w.think_time.can_be_zero:
            raise ConfigError(
                "workload.think_time",
                "with requests_per_user = 0 (run until duration) a closed user needs a think time that is never 0, "
                "or instant rejections could repeat forever at one simulated instant; accepted: a constant > 0, "
                "an exponential, lognormal or gamma (cv small enough that draws never underflow to 0), "
                f"or an empirical or mixture with no 0 among its values; got a {w.think_time.spec()['dist']!r} distribution that can give 0",
            )
        if w.users * w.requests_per_user > MAX_REQUESTS:
            raise ConfigError(
                "workload.requests_per_user",
                f"users x requests_per_user = {w.users * w.requests_per_user:,} requests, over the limit of {MAX_REQUESTS:,} per run",
            )
    t = s.targets
    if math.isfinite(t.p95_ms) and t.p99_ms < t.p95_ms:
        raise ConfigError("targets.p99_ms", f"must be >= targets.p95_ms ({t.p95_ms}) or inf (unchecked), got {t.p99_ms}")
    f = s.backend.failures
    if f.processing + f.timeout + f.validation > 1:
        raise ConfigError("backend.failures", "processing + timeout + validation must add up to at most 1")
    _check_llm(s)
    _check_faults([(f"faults.{i}", window) for i, window in enumerate(s.faults)])
    _check_deployments(s)


def _check_faults(windows: list[tuple[str, FaultWindow]]) -> None:
    """Each window is a real interval that changes something, and none overlaps
    another (``windows``: (field name, window), all seen by one backend)."""
    previous_end, previous_name = -1.0, None
    for name, window in sorted(windows, key=lambda item: item[1].start):
        if window.end <= window.start:
            raise ConfigError(f"{name}.end", f"must be after start ({window.start}), got {window.end}")
        if window.is_noop:
            raise ConfigError(
                name,
                "a fault window needs error_rate, hang_rate, reset_rate or cut_stream_rate > 0, latency_factor != 1, or added_latency / per_chunk_latency > 0",
            )
        if window.start < previous_end:
            what = f"fault window {previous_name.partition('.')[2]}" if previous_name.startswith("faults.") else previous_name
            raise ConfigError(f"{name}.start", f"overlaps {what}; fault windows must not overlap (a deployment's own faults add to the top-level ones)")
        previous_end, previous_name = window.end, name


def _check_deployments(s: Scenario) -> None:
    """Names unique and non-empty; each deployment's effective backend, limiter and
    fault windows consistent (errors name ``deployments.N.field``)."""
    seen: dict[str, int] = {}
    for i, deployment in enumerate(s.deployments):
        where = f"deployments.{i}"
        if not deployment.name.strip():
            raise ConfigError(f"{where}.name", "must be a non-empty name (it labels the deployment's figures)")
        if deployment.name in seen:
            raise ConfigError(f"{where}.name", f"{deployment.name!r} is already the name of deployments.{seen[deployment.name]}; names must be unique")
        seen[deployment.name] = i
        try:
            backend = deployment.backend_of(s.backend)
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc.field}", exc.message) from None
        if backend.is_llm != s.backend.is_llm:  # requests carry tokens for every deployment or for none
            raise ConfigError(f"{where}.backend.model", f'every deployment runs the top-level backend.model ({"llm" if s.backend.is_llm else "delay"!r}): set it in [backend] (accepted: "delay", "llm")')
        if backend.is_llm:
            _check_llm_deployment(backend, deployment, where)
        for name in ("max_num_seqs", "max_num_batched_tokens", "step_time", "kv_cache_tokens"):
            if not backend.is_llm and getattr(backend, name) is not None:
                raise ConfigError(f"{where}.backend.{name}", 'only the LLM backend uses it (backend.model = "llm")')
        f = backend.failures
        if f.processing + f.timeout + f.validation > 1:
            raise ConfigError(f"{where}.backend.failures", "processing + timeout + validation must add up to at most 1")
        if deployment.backend.failures is not None and deployment.backend.failures.validation is not None:
            raise ConfigError(f"{where}.backend.failures.validation", "validation is drawn once per logical request at the router: set it in the top-level [backend.failures]")
        for name in ("tokens_per_minute", "tokens_burst"):
            if not backend.is_llm and deployment.limiter is not None and getattr(deployment.limiter, name) is not None:
                raise ConfigError(f"{where}.limiter.{name}", 'a token limit needs backend.model = "llm" (requests carry tokens only there)')
        _check_faults([*((f"faults.{j}", w) for j, w in enumerate(s.faults)), *((f"{where}.faults.{j}", w) for j, w in enumerate(deployment.faults))])


def _check_llm_deployment(backend, deployment, where: str) -> None:
    """An LLM deployment's merged backend and its token limit (``_check_llm``'s rules)."""
    if backend.max_num_batched_tokens < backend.max_num_seqs:
        raise ConfigError(f"{where}.backend.max_num_batched_tokens", f"must be >= max_num_seqs ({backend.max_num_seqs}), as vLLM requires; got {backend.max_num_batched_tokens}")
    limiter = deployment.limiter
    if limiter is not None and limiter.tokens_burst is not None and limiter.tokens_per_minute is None:
        raise ConfigError(f"{where}.limiter.tokens_burst", "needs limiter.tokens_per_minute")


def _check_open_volume(s: Scenario) -> None:
    """Some stage sends, and the expected arrivals fit in one run (or are capped)."""
    from ..workload import open_schedule

    schedule, start, expected = open_schedule(s), 0.0, 0.0
    for end, rate in schedule:
        expected += rate * max(0.0, end - start)
        start = end
    w = s.workload
    if w.stages and expected == 0:
        raise ConfigError("workload.stages", f"no stage within duration ({s.duration} s) has a rate > 0: the run would send nothing")
    if not w.max_requests and expected > MAX_REQUESTS:
        raise ConfigError(
            "workload.stages" if w.stages else "workload.rate",
            f"expects {expected:,.0f} arrivals (rate x duration), over the limit of {MAX_REQUESTS:,} per run; "
            "lower the rate or duration (rates are per second), or cap the run with workload.max_requests",
        )


def _check_llm(s: Scenario) -> None:
    """The LLM backend's keys: only with ``backend.model = "llm"``, and consistent."""
    b = s.backend
    llm_keys = ("max_num_seqs", "max_num_batched_tokens", "step_time", "kv_cache_tokens")
    if not b.is_llm:
        for name in llm_keys:
            if getattr(b, name) is not None:
                raise ConfigError(f"backend.{name}", 'only the LLM backend uses it; set backend.model = "llm" (accepted: "delay", "llm")')
        for name in ("ttft_p95_ms", "tpot_p95_ms", "min_output_tokens_per_s"):
            if getattr(s.targets, name) is not None:
                raise ConfigError(f"targets.{name}", 'a token target needs backend.model = "llm"')
        for name in ("tokens_per_minute", "tokens_burst"):
            if getattr(s.limiter, name) is not None:
                raise ConfigError(f"limiter.{name}", 'a token limit needs backend.model = "llm" (requests carry tokens only there)')
        return
    seqs, budget = b.max_num_seqs, b.max_num_batched_tokens
    if budget < seqs:
        raise ConfigError("backend.max_num_batched_tokens", f"must be >= backend.max_num_seqs ({seqs}), as vLLM requires, so every running sequence can decode in a step; got {budget}")
    if s.limiter.tokens_burst is not None and s.limiter.tokens_per_minute is None:
        raise ConfigError("limiter.tokens_burst", "needs limiter.tokens_per_minute")
    if s.workload.tokens is not None and s.workload.tokens.trace and s.workload.model != "open":
        raise ConfigError("workload.tokens.trace", f"a trace gives arrival times: it needs workload.model = \"open\", got {s.workload.model!r}")
