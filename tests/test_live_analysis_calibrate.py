"""``calibrate`` with timeouts as right-censored values (issue 17, item 14).

The sample is drawn from a lognormal with a known tail: P99 = 4.0 s, and the
router's timeout at its 94th percentile (6 % of requests over it). The live run
only sees the 94 % that were answered, plus how many timed out. Fitting the
answered ones alone cuts the tail at the timeout; the censored maximum
likelihood fit recovers it. Tolerance: the fitted P99 within 15 % of the true
one, about 3.5 standard errors of ln P99 at n = 4000 (sigma 1.2: se(mu) =
0.019, se(sigma) = 0.013, se(ln P99) = sqrt(0.019^2 + (2.33 x 0.013)^2) ~ 0.037).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

import simrouter
from simrouter.cli import main
from simrouter.distributions import Lognormal
from simrouter.live.calibrate import calibrate

TRUE_P99_S = 4.0
SIGMA = 1.2
OVER_TIMEOUT = 0.06
N = 4000
MEDIAN_S = TRUE_P99_S / math.exp(SIGMA * stats.norm.ppf(0.99))
TIMEOUT_S = MEDIAN_S * math.exp(SIGMA * stats.norm.ppf(1 - OVER_TIMEOUT))


def answered_and_timed_out(seed: int = 21):
    latencies = MEDIAN_S * np.exp(SIGMA * np.random.default_rng(seed).standard_normal(N))
    answered = latencies[latencies <= TIMEOUT_S]
    return answered, N - answered.size


def p99(fit) -> float:
    assert isinstance(fit, Lognormal)
    return fit.median * math.exp(fit.sigma * stats.norm.ppf(0.99))


def test_the_censored_fit_recovers_the_tail_the_successes_alone_miss():
    answered, timed_out = answered_and_timed_out()
    assert 0.05 < timed_out / N < 0.07
    old = calibrate(answered)  # successes only: what calibrate did before
    new = calibrate(answered, censored=timed_out, censor_at=TIMEOUT_S)
    old_p99, new_p99 = p99(old.fit("lognormal").distribution), p99(new.fit("lognormal").distribution)
    assert abs(old_p99 / TRUE_P99_S - 1) > 0.30, old_p99  # cut at the timeout
    assert new_p99 == pytest.approx(TRUE_P99_S, rel=0.15), new_p99
    fit = new.fit("lognormal")
    assert fit.censored_fraction == pytest.approx(OVER_TIMEOUT, abs=0.015)  # the fit times out as often as the run did
    assert new.best.family == "lognormal"
    # The sample's own P95 and P99 lie beyond the timeout: unknown, not the largest answered value.
    assert new.sample_quantiles_ms["p99"] is None and new.sample_quantiles_ms["p95"] is None
    assert new.sample_quantiles_ms["p50"] == pytest.approx(np.percentile(np.concatenate([answered, np.full(timed_out, np.inf)]), 50) * 1000)
    assert fit.quantile_errors["p99"] is None and abs(fit.quantile_errors["p50"]) < 0.1


def test_without_timeouts_the_fit_is_unchanged():
    answered, _ = answered_and_timed_out()
    assert calibrate(answered, censored=0, censor_at=TIMEOUT_S).fit("lognormal").distribution == calibrate(answered).fit("lognormal").distribution


def test_a_sample_value_over_the_timeout_is_refused():
    answered, timed_out = answered_and_timed_out()
    with pytest.raises(simrouter.ConfigError, match="--timeout"):
        calibrate(answered, censored=timed_out, censor_at=float(np.median(answered)))


def test_cli_takes_the_timeouts_from_a_live_json(tmp_path, capsys):
    answered, timed_out = answered_and_timed_out()
    base = simrouter.load_scenario("baseline", [f"router.timeout={TIMEOUT_S}"])
    live = {
        "requests": {"sent": N, "succeeded": int(answered.size), "timeouts": timed_out},
        "live": {"latency_sample_s": answered.tolist()},
        "config": base.to_dict(),
    }
    path = tmp_path / "live.json"
    path.write_text(json.dumps(live))
    out = tmp_path / "calibrated.toml"
    assert main(["calibrate", "--from", str(path), "--out", str(out), "--json", str(tmp_path / "fit.json")]) == 0
    printed = capsys.readouterr().out
    assert f"{timed_out} timeouts" in printed and "over the timeout: 5.9% observed" in printed
    report = json.loads((tmp_path / "fit.json").read_text())
    assert report["censored"]["count"] == timed_out and report["censored"]["at_s"] == pytest.approx(TIMEOUT_S)
    latency = simrouter.load_scenario(out).backend.latency
    assert p99(latency) == pytest.approx(TRUE_P99_S, rel=0.15)


def test_cli_sample_file_with_explicit_timeouts(tmp_path, capsys):
    answered, timed_out = answered_and_timed_out()
    path = tmp_path / "latencies.txt"
    path.write_text("\n".join(repr(v) for v in answered.tolist()))
    out = tmp_path / "c.toml"
    argv = ["calibrate", "--from", str(path), "--out", str(out), "--family", "lognormal", "--timeouts", str(timed_out), "--timeout", repr(TIMEOUT_S)]
    assert main(argv) == 0
    assert p99(simrouter.load_scenario(out).backend.latency) == pytest.approx(TRUE_P99_S, rel=0.15)
    assert main(["calibrate", "--from", str(path), "--out", str(out), "--timeouts", "5"]) == 2  # no timeout to censor at
    assert "--timeout" in capsys.readouterr().err
