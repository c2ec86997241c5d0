"""``simrouter calibrate``: fitting latency families and writing a usable scenario.

Samples are drawn here from known distributions (fixed seeds), so each fit is
checked against the truth with tolerances of about 3.5 standard errors of the
maximum-likelihood estimate, and the family chosen is the one the data came from
(for the bimodal sample, where no parametric family fits, the empirical one).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import simrouter
from simrouter.cli import main
from simrouter.distributions import Empirical, Gamma, Lognormal
from simrouter.errors import ConfigError
from simrouter.live.calibrate import calibrate, calibrated_scenario

N = 4000


def test_lognormal_sample_is_fitted_and_chosen():
    rng = np.random.default_rng(11)
    median, sigma = 0.045, 0.7
    sample = median * np.exp(sigma * rng.standard_normal(N))
    result = calibrate(sample)
    fit = result.fit("lognormal").distribution
    assert isinstance(fit, Lognormal)
    # Standard errors: ln(median) sigma / sqrt(N) = 0.011; sigma sigma / sqrt(2N) = 0.008.
    assert abs(math.log(fit.median / median)) < 3.5 * sigma / math.sqrt(N)
    assert abs(fit.sigma - sigma) < 3.5 * sigma / math.sqrt(2 * N)
    assert result.best.family == "lognormal"
    assert result.fit("lognormal").ks_holdout < result.fit("gamma").ks_holdout


def test_gamma_sample_is_fitted_and_chosen():
    rng = np.random.default_rng(12)
    mean, cv = 0.040, 0.5
    shape = 1 / cv**2
    sample = rng.gamma(shape, mean / shape, N)
    result = calibrate(sample)
    fit = result.fit("gamma").distribution
    assert isinstance(fit, Gamma)
    assert abs(fit.mean / mean - 1) < 3.5 * cv / math.sqrt(N)  # SE of the mean: cv / sqrt(N) relative
    assert abs(fit.cv - cv) < 0.03
    assert result.best.family == "gamma"


def test_bimodal_sample_chooses_empirical():
    rng = np.random.default_rng(13)
    sample = np.concatenate([rng.lognormal(math.log(0.02), 0.1, N // 2), rng.lognormal(math.log(0.2), 0.1, N // 2)])
    result = calibrate(sample)
    assert result.best.family == "empirical"
    assert result.fit("lognormal").ks_pvalue < 0.05 and result.fit("gamma").ks_pvalue < 0.05
    assert result.fit("empirical").ks_holdout < 0.05 < result.fit("lognormal").ks_holdout
    # Quantile errors are reported against the whole sample: the empirical fit is exact.
    assert all(abs(e) < 1e-12 for e in result.fit("empirical").quantile_errors.values())


def test_family_can_be_forced_and_bad_input_is_a_config_error():
    sample = np.random.default_rng(14).gamma(4, 0.01, 200)
    assert calibrate(sample, family="lognormal").best.family == "lognormal"
    with pytest.raises(ConfigError, match="sample"):
        calibrate([0.01] * 5)
    with pytest.raises(ConfigError, match="--family"):
        calibrate(sample, family="weibull")


def test_cli_from_live_json_writes_a_scenario_that_simulates_the_fitted_backend(tmp_path, capsys):
    rng = np.random.default_rng(15)
    sample = 0.030 * np.exp(0.4 * rng.standard_normal(3000))
    base = simrouter.load_scenario("baseline", ["workload.requests_per_user=2000", "limiter.algorithm=none", "duration=1000"])
    live_json = tmp_path / "live.json"
    live_json.write_text(json.dumps({"live": {"latency_sample_s": sample.tolist()}, "config": base.to_dict()}))
    out = tmp_path / "calibrated.toml"
    assert main(["calibrate", "--from", str(live_json), "--out", str(out), "--json", str(tmp_path / "fit.json")]) == 0
    assert "backend.latency = lognormal" in capsys.readouterr().out
    scenario = simrouter.load_scenario(out)
    assert scenario.workload.requests_per_user == 2000  # the live run's config, kept
    assert isinstance(scenario.backend.latency, Lognormal)
    report = json.loads((tmp_path / "fit.json").read_text())
    assert report["best"] == "lognormal" and {f["family"] for f in report["fits"]} == {"lognormal", "gamma", "empirical"}
    # Sequential, no queueing: the simulated latency IS the fitted service time.
    simulated = simrouter.simulate(scenario, seed=1).summary["latency_ms"]
    assert simulated["p50"] == pytest.approx(np.percentile(sample, 50) * 1000, rel=0.05)
    assert simulated["p95"] == pytest.approx(np.percentile(sample, 95) * 1000, rel=0.08)


def test_sample_file_in_ms_and_empirical_fit_written_beside_the_toml(tmp_path):
    rng = np.random.default_rng(16)
    values_ms = np.round(np.concatenate([rng.normal(20, 1, 500), rng.normal(80, 2, 500)]), 3)
    sample_file = tmp_path / "latencies.txt"
    sample_file.write_text("\n".join(f"{v:.3f}" for v in values_ms))
    out = tmp_path / "emp.toml"
    assert main(["calibrate", "--from", str(sample_file), "--unit", "ms", "--scenario", "baseline", "--out", str(out)]) == 0
    scenario = simrouter.load_scenario(out)
    latency = scenario.backend.latency
    assert isinstance(latency, Empirical)
    assert (tmp_path / "emp.latency.txt").exists()
    assert np.median(latency.values) == pytest.approx(np.median(values_ms) / 1000, rel=1e-6)


def test_calibrated_scenario_round_trips_every_field(tmp_path):
    base = simrouter.load_scenario("breaker-failure")
    result = calibrate(np.random.default_rng(17).lognormal(math.log(0.05), 0.5, 500))
    written = calibrated_scenario(base, result, tmp_path / "bf.toml")
    assert written.replace([]).to_dict() | {"backend": None} == base.to_dict() | {"backend": None}
    assert written.faults == base.faults and written.backend.capacity == base.backend.capacity


def test_cli_rejects_a_json_that_is_not_a_live_run(tmp_path):
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(simrouter.simulate("baseline", seed=1).to_dict()))
    assert main(["calibrate", "--from", str(path), "--out", str(tmp_path / "x.toml")]) == 2
