"""Fit the backend latency distribution to measured latencies, and write a scenario.

``calibrate(sample_s, censored=k, censor_at=c)`` fits three families to a
sample of latencies (seconds), of which ``k`` more are known only to be longer
than ``c`` (requests that timed out: right-censored):

* ``lognormal``: maximum likelihood (uncensored: median = exp(mean ln x),
  sigma = sd ln x; censored: ``scipy.stats.lognorm.fit`` on
  ``scipy.stats.CensoredData``, location 0);
* ``gamma``: maximum likelihood with location 0 (``scipy.stats.gamma.fit``,
  on ``CensoredData`` when censored), written as mean and cv;
* ``empirical``: the values themselves (resampled by the simulator). It cannot
  represent what lies beyond ``c``: with censored values it is only chosen when
  both parametric families are rejected, and the report says its tail is cut.

Why censoring: fitting the successes alone cuts the tail at the router's
timeout (a lognormal with P99 4.0 s and 6 % over a 1.6 s timeout is fitted with
a P99 of ~2 s, that can never time out); the censored likelihood uses the
timeouts as "longer than ``c``" and recovers the tail
(``tests/test_live_analysis_calibrate.py``).

With censoring, the KS statistics compare the uncensored values with the fitted
distribution conditioned on ``x <= c``; the report also gives the censored
fraction observed and the fitted one (``P(X > c)``), and quantiles of the
sample beyond the uncensored part are ``None`` (only known to be > ``c``).

The *fit error* of a family is measured out of sample, so the empirical family
cannot score by reproducing its own data: the sample is split at random in two
halves (seeded), the family is fitted on one half and its Kolmogorov-Smirnov
distance to the other half taken (two-sample for empirical), both ways round,
and the two distances averaged. The report also gives each family's relative
error at P50/P90/P95/P99 against the whole sample, and, for the parametric
families, the KS test's p-value on the whole sample.

Choice: a parametric family extrapolates the tail and the load the planner
cannot produce, so the best is the parametric family with the smaller fit error
among those the KS test does not reject (p >= ``ALPHA``); when the data reject
both, the empirical distribution. (With fitted parameters the p-value is
conservative, Lilliefors: a family is kept a little more easily.)

The sample should be *service* times: a live run without queueing (the
``baseline`` scenario, or a load well under capacity) measures them plus the
router's small overhead; under load the latencies also contain queueing, which
the simulator adds by itself.

Samples come from a live JSON (``live.latency_sample_s``, successes only) or a
text file with one value per line (``unit``: ``s`` or ``ms``). From a live JSON,
``read_censoring`` takes the timeouts: the measured ``requests.timeouts`` (the
router's 504s) and ``client_timeouts``, scaled to the sample (it is a random
subset of the successes), censored at ``router.timeout``. A backend hang
(``backend.failures.timeout``) also ends as a timeout and is counted the same
way: the live run cannot tell them apart.

Token timing (a streaming run of ``protocol = "openai-chat"`` /
``"openai-completions"``): ``read_token_samples`` takes ``live.ttft_sample_s``
(time to first token from the actual send) and ``live.tpot_sample_s`` (time per
output token) of the successes; each (when it has at least ``MIN_SAMPLE``
values > 0) is fitted the same way, without censoring, and written as
``backend.ttft`` and ``backend.tpot``: the distributions ``simrouter serve
--protocol openai`` streams with (``simrouter.live.openai_service``).
``backend.latency`` stays the end-to-end fit, the figure the simulation models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..config import Scenario, load_scenario, scenario_from_dict
from ..distributions import Distribution, Empirical, Gamma, Lognormal
from ..errors import ConfigError
from .tomlfile import scenario_toml

FAMILIES = ("lognormal", "gamma", "empirical")
QUANTILES = (50, 90, 95, 99)
MIN_SAMPLE = 20
ALPHA = 0.05


@dataclass(frozen=True)
class Censoring:
    """``count`` latencies known only to exceed ``at`` seconds (timeouts)."""

    count: int = 0
    at: float = math.inf

    def __post_init__(self):
        if self.count < 0:
            raise ConfigError("--timeouts", f"expected a count >= 0, got {self.count}")
        if self.count and not (0 < self.at < math.inf):
            raise ConfigError("--timeout", f"expected the timeout in seconds (> 0, finite) for {self.count} censored values, got {self.at}")

    def part(self, size: int, total: int) -> "Censoring":
        """The share of the censored values that goes with ``size`` of ``total`` uncensored ones."""
        return Censoring(int(round(self.count * size / total)) if total else 0, self.at)


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted to the sample."""

    family: str
    distribution: Distribution  # fitted on the whole sample
    ks_holdout: float  # fit error: KS distance, fitted on one half, judged on the other
    quantile_errors: dict  # relative error at P50/P90/P95/P99 vs the whole sample
    ks_pvalue: float | None  # KS test of the whole-sample fit (None: empirical)
    censored_fraction: float | None = None  # fitted P(X > timeout) (None: no censoring)

    def to_dict(self) -> dict:
        spec = self.distribution.spec()
        if self.family == "empirical":
            spec = {"dist": "empirical", "values": f"{len(self.distribution.values)} values"}
        return {
            "family": self.family, "spec": spec, "ks_holdout": self.ks_holdout, "ks_pvalue": self.ks_pvalue,
            "quantile_errors": self.quantile_errors, "censored_fraction": self.censored_fraction,
        }


def fit_family(family: str, values: np.ndarray, censoring: Censoring = Censoring()) -> Distribution:
    """Maximum likelihood fit of ``family`` to ``values`` plus ``censoring.count`` values > ``censoring.at``."""
    data = scipy_stats.CensoredData(uncensored=values, right=np.full(censoring.count, censoring.at)) if censoring.count else None
    if family == "lognormal":
        if data is None:
            logs = np.log(values)
            return Lognormal(float(np.exp(logs.mean())), float(logs.std()))
        sigma, _, scale = scipy_stats.lognorm.fit(data, floc=0)
        return Lognormal(float(scale), float(sigma))
    if family == "gamma":
        shape, _, scale = scipy_stats.gamma.fit(values if data is None else data, floc=0)
        return Gamma(float(shape * scale), float(1 / math.sqrt(shape)))
    if family == "empirical":
        return Empirical(np.sort(values), "inline")
    raise ConfigError("--family", f"expected one of {', '.join(FAMILIES)}, got {family!r}")


def _frozen(dist: Distribution):
    if isinstance(dist, Lognormal):
        return scipy_stats.lognorm(dist.sigma, scale=dist.median)
    shape = 1 / dist.cv**2
    return scipy_stats.gamma(shape, scale=dist.mean / shape)


def _cdf(dist: Distribution, censoring: Censoring = Censoring()):
    """The CDF the uncensored values follow: the fitted one, conditioned on ``x <= at``."""
    frozen = _frozen(dist)
    if not censoring.count:
        return frozen.cdf
    below = float(frozen.cdf(censoring.at))
    return lambda x: np.minimum(frozen.cdf(x) / below, 1.0) if below > 0 else np.ones_like(x)


def _quantiles(dist: Distribution, probabilities) -> np.ndarray:
    if isinstance(dist, Empirical):
        return np.percentile(dist.values, probabilities)
    if isinstance(dist, Lognormal):
        return scipy_stats.lognorm(dist.sigma, scale=dist.median).ppf(np.asarray(probabilities) / 100)
    shape = 1 / dist.cv**2
    return scipy_stats.gamma(shape, scale=dist.mean / shape).ppf(np.asarray(probabilities) / 100)


def holdout_error(family: str, train: np.ndarray, test: np.ndarray, censoring: Censoring = Censoring()) -> float:
    """KS distance of ``test`` to the family fitted on ``train`` (with ``censoring``: its share of the timeouts)."""
    if family == "empirical":
        return float(scipy_stats.ks_2samp(test, train).statistic)
    return float(scipy_stats.kstest(test, _cdf(fit_family(family, train, censoring), censoring)).statistic)


def cross_error(family: str, first: np.ndarray, second: np.ndarray, censoring: Censoring = Censoring()) -> float:
    """The hold-out error both ways round, averaged (each half fitted with its share of the censored values)."""
    total = first.size + second.size
    return (
        holdout_error(family, first, second, censoring.part(first.size, total))
        + holdout_error(family, second, first, censoring.part(second.size, total))
    ) / 2


def sample_quantiles(values: np.ndarray, censoring: Censoring, probabilities=QUANTILES) -> list[float | None]:
    """The sample's percentiles (numpy's linear interpolation) with the censored values
    above every other; None where a percentile reaches into them (only known: > ``at``)."""
    ordered = np.sort(values)
    n = ordered.size + censoring.count
    found = []
    for p in probabilities:
        position = p / 100 * (n - 1)
        upper = math.ceil(position)
        if upper >= ordered.size:
            found.append(None)
            continue
        lower = math.floor(position)
        found.append(float(ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)))
    return found


@dataclass(frozen=True)
class Calibration:
    """Every family's fit, the best one, and the sample's own percentiles."""

    sample_size: int
    sample_quantiles_ms: dict
    fits: list[FamilyFit]
    best: FamilyFit
    censoring: Censoring = Censoring()

    def fit(self, family: str) -> FamilyFit:
        return next(f for f in self.fits if f.family == family)

    def to_dict(self) -> dict:
        censored = self.censoring.count
        return {
            "sample_size": self.sample_size,
            "censored": {"count": censored, "at_s": self.censoring.at if censored else None, "fraction": censored / (self.sample_size + censored)},
            "sample_quantiles_ms": self.sample_quantiles_ms,
            "fit_error": "Kolmogorov-Smirnov distance to a held-out half of the sample (both halves, averaged)",
            "choice": f"parametric family with the smaller fit error among those the KS test keeps (p >= {ALPHA}), else empirical",
            "fits": [f.to_dict() for f in self.fits],
            "best": self.best.family,
        }

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "family": f.family, "ks_holdout": f.ks_holdout, "ks_pvalue": f.ks_pvalue, "censored_fraction": f.censored_fraction,
                    **{f"err_p{q}": f.quantile_errors[f"p{q}"] for q in QUANTILES},
                }
                for f in self.fits
            ]
        )


def calibrate(sample_s, seed: int = 0, family: str = "auto", censored: int = 0, censor_at: float = math.inf) -> Calibration:
    """Fit lognormal, gamma and empirical to ``sample_s`` (seconds) plus ``censored`` latencies
    known only to exceed ``censor_at`` s, and choose (module docstring), or take ``family`` when given."""
    censoring = Censoring(int(censored), float(censor_at))
    values = np.asarray(sample_s, dtype=float)
    values = values[np.isfinite(values)]
    not_positive = int(np.count_nonzero(values <= 0))
    if not_positive:
        raise ConfigError("sample", f"expected latencies > 0 (seconds), got {not_positive} of {values.size} <= 0")
    if values.size < MIN_SAMPLE:
        raise ConfigError("sample", f"expected at least {MIN_SAMPLE} latencies > 0 (seconds), got {values.size} usable values")
    if censoring.count and np.any(values > censoring.at):
        over = int(np.count_nonzero(values > censoring.at))
        raise ConfigError("--timeout", f"{over} of {values.size} latencies exceed the timeout {censoring.at:g} s: a timeout is the most an answered request can take")
    if family != "auto" and family not in FAMILIES:
        raise ConfigError("--family", f"expected auto or one of {', '.join(FAMILIES)}, got {family!r}")
    order = np.random.default_rng(seed).permutation(values.size)
    half = values.size // 2
    train, test = values[order[:half]], values[order[half:]]
    observed = sample_quantiles(values, censoring)
    fits = []
    for name in FAMILIES:
        fitted = fit_family(name, values, censoring)
        predicted = _quantiles(fitted, QUANTILES)
        errors = {f"p{q}": (None if o is None else float((p - o) / o)) for q, p, o in zip(QUANTILES, predicted, observed)}
        pvalue = None if name == "empirical" else float(scipy_stats.kstest(values, _cdf(fitted, censoring)).pvalue)
        beyond = None
        if censoring.count:
            beyond = 0.0 if name == "empirical" else float(_frozen(fitted).sf(censoring.at))
        fits.append(FamilyFit(name, fitted, cross_error(name, train, test, censoring), errors, pvalue, beyond))
    if family == "auto":
        adequate = [f for f in fits if f.ks_pvalue is not None and f.ks_pvalue >= ALPHA]
        best = min(adequate, key=lambda f: f.ks_holdout) if adequate else fits[-1]
    else:
        best = next(f for f in fits if f.family == family)
    quantiles_ms = {f"p{q}": (None if v is None else float(v * 1000)) for q, v in zip(QUANTILES, observed)}
    return Calibration(int(values.size), quantiles_ms, fits, best, censoring)


def read_sample(path: Path, unit: str = "s") -> tuple[np.ndarray, dict | None]:
    """(latencies in seconds, the run's config if ``path`` is a live JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--from", f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("--from", f"{path} is not text: expected a live run's JSON or one number per line") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            sample = np.asarray(data["live"]["latency_sample_s"], dtype=float)
        except (ValueError, KeyError, TypeError):
            raise ConfigError("--from", f"{path} is not a live run's JSON (simrouter live --json): no list of numbers live.latency_sample_s") from None
        return sample, data.get("config")
    if unit not in ("s", "ms"):
        raise ConfigError("--unit", f"expected s or ms, got {unit!r}")
    try:
        values = np.asarray([float(v) for v in text.split()], dtype=float)
    except ValueError:
        raise ConfigError("--from", f"{path}: expected one number per line") from None
    return values / (1000.0 if unit == "ms" else 1.0), None


def read_censoring(path: Path, sample_size: int) -> Censoring:
    """The timeouts of a live run's JSON as censored values for its ``sample_size`` sampled
    successes (module docstring); none for a sample file or a run without a finite timeout."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return Censoring()
    requests = data.get("requests") if isinstance(data, dict) else None
    timeout = ((data.get("config") or {}).get("router") or {}).get("timeout") if isinstance(data, dict) else None
    if not isinstance(requests, dict) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        return Censoring()
    succeeded = requests.get("succeeded") or 0
    timeouts = (requests.get("timeouts") or 0) + (requests.get("client_timeouts") or 0)
    if not timeouts or not succeeded:
        return Censoring()
    return Censoring(int(round(timeouts * sample_size / succeeded)), float(timeout))


def read_token_samples(path: Path) -> dict[str, np.ndarray]:
    """``{"ttft": ..., "tpot": ...}`` (seconds, values > 0) of a live run's JSON; empty
    arrays for a run without token timing (or a sample file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    live = data.get("live") if isinstance(data, dict) else None
    found = {}
    for name in TOKEN_FITS:
        values = live.get(f"{name}_sample_s") if isinstance(live, dict) else None
        try:
            array = np.asarray(values if isinstance(values, list) else [], dtype=float)
        except (TypeError, ValueError):
            raise ConfigError("--from", f"{path}: live.{name}_sample_s is not a list of numbers") from None
        found[name] = array[np.isfinite(array) & (array > 0)]
    return found


TOKEN_FITS = ("ttft", "tpot")  # backend.ttft, backend.tpot


def _spec(fit: FamilyFit, out: Path, name: str) -> dict:
    """The distribution spec of a fit; an empirical one's values go to ``<out stem>.<name>.txt``."""
    if fit.family != "empirical":
        return fit.distribution.spec()
    samples = out.with_name(f"{out.stem}.{name}.txt")
    samples.write_text("\n".join(repr(float(v)) for v in fit.distribution.values) + "\n")
    return {"dist": "empirical", "file": samples.name}


def calibrated_scenario(base: Scenario, calibration: Calibration, out: Path, tokens: dict[str, Calibration] | None = None) -> Scenario:
    """Write ``base`` with the best latency fit to ``out`` (TOML; an empirical fit's values
    go to ``<out stem>.latency.txt`` beside it) and return it, re-read from the file.
    ``tokens``: fits of ``ttft`` / ``tpot``, written as ``backend.ttft`` / ``backend.tpot``."""
    data = base.to_dict()
    best = calibration.best
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    backend = {**data.get("backend", {}), "latency": _spec(best, out, "latency")}
    errors = ", ".join(f"{f.family} {f.ks_holdout:.4f}" for f in calibration.fits)
    censored = f" and {calibration.censoring.count} timeouts (> {calibration.censoring.at:g} s, censored)" if calibration.censoring.count else ""
    header = f"calibrated by simrouter calibrate from {calibration.sample_size} latencies{censored}\nbackend.latency: {best.family} (fit error, hold-out KS: {errors})"
    for name, fitted in (tokens or {}).items():
        backend[name] = _spec(fitted.best, out, name)
        header += f"\nbackend.{name}: {fitted.best.family} from {fitted.sample_size} samples (hold-out KS {fitted.best.ks_holdout:.4f})"
    data["backend"] = backend
    out.write_text(scenario_toml(data, header))
    return load_scenario(out)


def base_scenario(scenario: str | None, config: dict | None) -> Scenario:
    """The scenario to calibrate: ``--scenario`` if given, else the live run's config, else defaults."""
    if scenario:
        return load_scenario(scenario)
    if config:
        return scenario_from_dict(config)
    return Scenario()
