"""Random-variate distributions for latency and think time, and block sampling.

A distribution is an immutable description (``Constant``, ``Exponential``,
``Lognormal``, ``Gamma``, ``Empirical``, ``Mixture``) that draws numpy arrays from a
``numpy.random.Generator``. All values are in seconds.

``VariateStream`` is what the engines use in their hot loop: it draws from one
distribution in numpy blocks and hands out one Python float per call, so a
million requests cost a few hundred numpy calls rather than a million scipy
calls.

Specifications come from TOML as tables, e.g.
``{ dist = "lognormal", p50 = 0.045, p99 = 0.234 }``; a bare number means a
constant. ``from_spec`` validates them and names the offending field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ConfigError

# Standard normal quantile at 0.99 (scipy.stats.norm.ppf(0.99)).
Z99 = 2.3263478740408408
# The smallest positive float64 (a subnormal): a draw below it is stored as 0.0.
SMALLEST_FLOAT = 5e-324
# A chance per draw of a float64 0.0 below this never shows in a run (at most 1e8 draws).
NEGLIGIBLE = 1e-15


class Distribution:
    """A non-negative random variate, in seconds."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def mean(self) -> float:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """The TOML table that rebuilds this distribution."""
        raise NotImplementedError

    @property
    def can_be_zero(self) -> bool:
        """Whether a draw can be exactly 0.0: P(X = 0) > 0 (an atom at 0), or the
        float64 draws underflow to 0.0 with a chance above ``NEGLIGIBLE`` per draw.
        (A continuous distribution on (0, inf) has P(X = 0) = 0 although its support
        starts at 0: exponential, lognormal and gamma cannot give 0 unless their
        scale is so small or their spread so wide that draws underflow.)"""
        raise NotImplementedError

    def cdf(self, x: float) -> float:
        """P(X <= x)."""
        raise NotImplementedError

    def quantile(self, p: float) -> float:
        """The p-quantile (0 < p < 1), by root finding on ``cdf`` unless overridden."""
        from scipy.optimize import brentq

        high = max(self.mean, 1e-9)
        while self.cdf(high) < p:
            high *= 2.0
        return float(brentq(lambda x: self.cdf(x) - p, 0.0, high, xtol=1e-12))


@dataclass(frozen=True)
class Constant(Distribution):
    value: float

    def sample(self, rng, size):
        return np.full(size, self.value)

    @property
    def mean(self):
        return self.value

    def spec(self):
        return {"dist": "constant", "value": self.value}

    @property
    def can_be_zero(self):
        return self.value == 0

    def cdf(self, x):
        return float(x >= self.value)

    def quantile(self, p):
        return self.value


@dataclass(frozen=True)
class Exponential(Distribution):
    mean_s: float

    def sample(self, rng, size):
        return rng.exponential(self.mean_s, size)

    @property
    def mean(self):
        return self.mean_s

    def spec(self):
        return {"dist": "exponential", "mean": self.mean_s}

    @property
    def can_be_zero(self):
        # P(X < SMALLEST_FLOAT) = 1 - exp(-SMALLEST_FLOAT / mean): negligible for any mean
        # a TOML file can state (mean >= SMALLEST_FLOAT / NEGLIGIBLE ~ 5e-309 s).
        return -math.expm1(-SMALLEST_FLOAT / self.mean_s) > NEGLIGIBLE

    def cdf(self, x):
        return -math.expm1(-max(x, 0.0) / self.mean_s)


@dataclass(frozen=True)
class Lognormal(Distribution):
    """exp(N(ln median, sigma^2)); built from (p50, p99) or (median, sigma)."""

    median: float
    sigma: float

    @classmethod
    def from_percentiles(cls, p50: float, p99: float) -> "Lognormal":
        return cls(p50, math.log(p99 / p50) / Z99)

    def sample(self, rng, size):
        return self.median * np.exp(self.sigma * rng.standard_normal(size))

    @property
    def mean(self):
        return self.median * math.exp(self.sigma**2 / 2)

    def quantile(self, p: float) -> float:
        from scipy.stats import norm

        return self.median * math.exp(self.sigma * norm.ppf(p))

    def cdf(self, x):
        # Phi(z) = erfc(-z / sqrt 2) / 2, exact, without importing scipy (a run's diagnosis reads it)
        return 0.5 * math.erfc(-math.log(x / self.median) / (self.sigma * math.sqrt(2.0))) if x > 0 else 0.0

    def spec(self):
        return {"dist": "lognormal", "median": self.median, "sigma": self.sigma}

    @property
    def can_be_zero(self):
        # P(median * exp(sigma Z) < SMALLEST_FLOAT) = Phi((ln SMALLEST_FLOAT - ln median) / sigma).
        z = (math.log(SMALLEST_FLOAT) - math.log(self.median)) / self.sigma
        return 0.5 * math.erfc(-z / math.sqrt(2.0)) > NEGLIGIBLE


@dataclass(frozen=True)
class Gamma(Distribution):
    """Gamma with the given mean and coefficient of variation (cv = 1: exponential)."""

    mean_s: float
    cv: float

    def sample(self, rng, size):
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean_s / shape, size)

    @property
    def mean(self):
        return self.mean_s

    def spec(self):
        return {"dist": "gamma", "mean": self.mean_s, "cv": self.cv}

    @property
    def can_be_zero(self):
        # Near 0 the gamma CDF is (x / scale)^shape / Gamma(shape + 1): with a large cv
        # (shape = 1 / cv^2 small) a real share of draws underflows to 0.0
        # (cv = 10: about 0.06 %; cv = 30: about 44 %).
        shape = 1.0 / self.cv**2
        scale = self.mean_s / shape
        log_p = shape * (math.log(SMALLEST_FLOAT) - math.log(scale)) - math.lgamma(shape + 1.0)
        return log_p > math.log(NEGLIGIBLE)

    def cdf(self, x):
        from scipy.stats import gamma

        shape = 1.0 / self.cv**2
        return float(gamma.cdf(x, shape, scale=self.mean_s / shape))


@dataclass(frozen=True, eq=False)
class Empirical(Distribution):
    """Resamples (with replacement) from observed values."""

    values: np.ndarray
    source: str = "inline"

    def sample(self, rng, size):
        return rng.choice(self.values, size)

    @property
    def mean(self):
        return float(self.values.mean())

    def spec(self):
        if self.source != "inline":
            return {"dist": "empirical", "file": self.source}
        return {"dist": "empirical", "values": self.values.tolist()}

    @property
    def can_be_zero(self):
        return bool(np.any(self.values == 0))

    def cdf(self, x):
        return float(np.mean(self.values <= x))

    def quantile(self, p):
        return float(np.quantile(self.values, p))


@dataclass(frozen=True)
class Mixture(Distribution):
    """With probability ``weights[i]`` a draw comes from ``components[i]``.

    Typical of AI backends: most calls take a short time, a few (cold starts,
    long generations) take far longer.
    """

    weights: tuple[float, ...]
    components: tuple[Distribution, ...]

    def sample(self, rng, size):
        choice = np.searchsorted(np.cumsum(self.weights[:-1]), rng.random(size), side="right")
        out = np.empty(size)
        for i, component in enumerate(self.components):
            picked = choice == i
            out[picked] = component.sample(rng, int(picked.sum()))
        return out

    @property
    def mean(self):
        return float(sum(w * c.mean for w, c in zip(self.weights, self.components)))

    def cdf(self, x):
        return float(sum(w * c.cdf(x) for w, c in zip(self.weights, self.components)))

    def spec(self):
        return {"dist": "mixture", "components": [{"weight": w, **c.spec()} for w, c in zip(self.weights, self.components)]}

    @property
    def can_be_zero(self):
        return any(component.can_be_zero for component in self.components)  # every weight is > 0


DIST_NAMES = ("constant", "exponential", "lognormal", "gamma", "empirical", "mixture")


def from_spec(spec: Any, field: str, base_dir: Path | None = None) -> Distribution:
    """Build a distribution from its TOML form; ``field`` names it in errors."""
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(_non_negative(float(spec), field))
    if not isinstance(spec, dict):
        raise ConfigError(
            field, f"expected a number or a table like {{ dist = \"lognormal\", p50 = 0.045, p99 = 0.234 }}, got {spec!r}"
        )
    kind = spec.get("dist")
    if kind not in DIST_NAMES:
        raise ConfigError(f"{field}.dist", f"expected one of {', '.join(DIST_NAMES)}, got {kind!r}")
    params = {k: v for k, v in spec.items() if k != "dist"}
    builder = _BUILDERS[kind]
    return builder(params, field, base_dir)


def _take(params: dict, allowed: set[str], field: str, kind: str) -> None:
    from .errors import unknown_key_message

    for key in params:
        if key not in allowed:
            raise ConfigError(f"{field}.{key}", unknown_key_message(key, sorted(allowed), f"a {kind} distribution"))


def _number(params: dict, key: str, field: str) -> float:
    if key not in params:
        raise ConfigError(f"{field}.{key}", "is required")
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field}.{key}", f"expected a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond the float range
        value = math.inf
    if not math.isfinite(value):
        raise ConfigError(f"{field}.{key}", f"expected a finite number, got {value}")
    return value


def _non_negative(value: float, field: str) -> float:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(field, f"expected a finite number >= 0, got {value}")
    return value


def _positive(value: float, field: str) -> float:
    if not value > 0:
        raise ConfigError(field, f"expected a number > 0, got {value}")
    return value


def _constant(params, field, base_dir):
    _take(params, {"value"}, field, "constant")
    return Constant(_non_negative(_number(params, "value", field), f"{field}.value"))


def _exponential(params, field, base_dir):
    _take(params, {"mean"}, field, "exponential")
    return Exponential(_positive(_number(params, "mean", field), f"{field}.mean"))


def _lognormal(params, field, base_dir):
    _take(params, {"p50", "p99", "median", "sigma"}, field, "lognormal")
    if "p50" in params or "p99" in params:
        if "median" in params or "sigma" in params:
            raise ConfigError(field, "give either p50 and p99, or median and sigma, not both")
        p50 = _positive(_number(params, "p50", field), f"{field}.p50")
        p99 = _number(params, "p99", field)
        if not p99 > p50:
            raise ConfigError(f"{field}.p99", f"must be greater than p50 ({p50}), got {p99}")
        return Lognormal.from_percentiles(p50, p99)
    median = _positive(_number(params, "median", field), f"{field}.median")
    sigma = _positive(_number(params, "sigma", field), f"{field}.sigma")
    return Lognormal(median, sigma)


def _gamma(params, field, base_dir):
    _take(params, {"mean", "cv"}, field, "gamma")
    mean = _positive(_number(params, "mean", field), f"{field}.mean")
    cv = _positive(_number(params, "cv", field), f"{field}.cv")
    return Gamma(mean, cv)


def _empirical(params, field, base_dir):
    _take(params, {"file", "values"}, field, "empirical")
    if ("file" in params) == ("values" in params):
        raise ConfigError(field, "an empirical distribution takes exactly one of file (path to samples, one per line, seconds) or values (a list)")
    if "values" in params:
        raw, source = params["values"], "inline"
        if not isinstance(raw, list):
            raise ConfigError(f"{field}.values", f"expected a list of numbers, got {raw!r}")
    else:
        if not isinstance(params["file"], str):
            raise ConfigError(f"{field}.file", f"expected a path (a string), got {params['file']!r}")
        path = Path(params["file"])
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            raw = path.read_text(encoding="utf-8").split()
        except OSError as exc:
            raise ConfigError(f"{field}.file", f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{field}.file", f"{path} is not text: expected one number per line") from None
        source = str(path)
    try:
        values = np.asarray([float(v) for v in raw], dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(field, "samples must all be numbers (seconds)") from None
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ConfigError(field, "samples must be a non-empty list of finite numbers >= 0 (seconds)")
    return Empirical(values, source)


def _mixture(params, field, base_dir):
    _take(params, {"components"}, field, "mixture")
    components = params.get("components")
    if not isinstance(components, list) or len(components) < 2:
        raise ConfigError(f"{field}.components", "expected a list of at least two tables, each a distribution with a weight")
    weights, dists = [], []
    for i, item in enumerate(components):
        where = f"{field}.components.{i}"
        if not isinstance(item, dict):
            raise ConfigError(where, f"expected a table like {{ weight = 0.9, dist = \"lognormal\", p50 = 0.04, p99 = 0.2 }}, got {item!r}")
        weight = _positive(_number(item, "weight", where), f"{where}.weight")
        weights.append(weight)
        dists.append(from_spec({k: v for k, v in item.items() if k != "weight"}, where, base_dir))
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ConfigError(f"{field}.components", f"weights must add up to 1, got {sum(weights):g}")
    return Mixture(tuple(weights), tuple(dists))


_BUILDERS = {
    "constant": _constant,
    "exponential": _exponential,
    "lognormal": _lognormal,
    "gamma": _gamma,
    "empirical": _empirical,
    "mixture": _mixture,
}


class VariateStream:
    """One float at a time from ``draw(rng, n)``, drawn in growing numpy blocks.

    ``draw`` is usually a distribution's ``sample`` method; any function of
    (generator, size) returning an array works (e.g. integer user keys).
    ``next`` is the C-level ``__next__`` of an iterator over the blocks, so a
    draw in the hot loop costs no Python frame; blocks are drawn only when the
    previous one is used up, in the sizes ``first_block, 2 x ..., MAX_BLOCK``.
    """

    __slots__ = ("next",)

    MAX_BLOCK = 8192

    def __init__(self, draw: Callable[[np.random.Generator, int], np.ndarray], rng: np.random.Generator, first_block: int = 64):
        self.next: Callable[[], Any] = chain.from_iterable(_blocks(draw, rng, first_block, self.MAX_BLOCK)).__next__


def _blocks(draw, rng: np.random.Generator, block: int, max_block: int):
    """The successive blocks of a ``VariateStream``, as lists of Python numbers."""
    while True:
        yield draw(rng, block).tolist()
        block = min(block * 2, max_block)
