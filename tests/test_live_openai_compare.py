"""`compare` and `calibrate` with `protocol = "openai-chat"` targets: compare starts
`serve --protocol openai` itself; calibrate fits backend.ttft and backend.tpot from a
streaming run, and the service run with the fitted scenario streams alike."""

import json
import subprocess
import sys

import numpy as np
import pytest

from simrouter.config import load_scenario, scenario_from_dict
from simrouter.live.calibrate import read_token_samples
from simrouter.live.compare import compare
from simrouter.live.loadgen import LiveOptions

from test_live_openai_loop import live

TTFT = {"dist": "lognormal", "p50": 0.040, "p99": 0.100}
TPOT = {"dist": "lognormal", "p50": 0.020, "p99": 0.040}


def streaming(requests=120, ttft=TTFT, tpot=TPOT):
    return {
        "duration": 60,
        "limiter": {"algorithm": "none"},
        "breaker": {"preset": "none"},
        "workload": {"model": "closed", "users": 4, "requests_per_user": requests // 4, "think_time": {"dist": "constant", "value": 0}},
        "backend": {"capacity": 8, "failures": {"processing": 0, "timeout": 0, "validation": 0}, "ttft": ttft, "tpot": tpot,
                    "output_tokens": {"dist": "constant", "value": 5}},
        "request": {"protocol": "openai-chat", "model": "m"},
    }


def test_compare_starts_serve_openai_for_an_openai_scenario():
    data = streaming(requests=40)
    del data["backend"]["tpot"]  # no decoding time: the simulated latency is the whole answer
    s = scenario_from_dict(data)
    comparison = compare(s, seed=2, replications=2, options=LiveOptions(handle_signals=False))
    summary = comparison.live.summary
    assert summary["requests"]["succeeded"] == 40 and summary["tokens"]["output"] == 200
    assert summary["ttft_ms"]["count"] == 40
    assert comparison.row("latency_ms.p50").live is not None
    assert comparison.to_dict()["live"]["live"]["protocol"] == "openai-chat"


def test_compare_notes_that_decoding_time_is_not_simulated():
    s = scenario_from_dict(streaming(requests=20))
    comparison = compare(s, seed=2, replications=2, options=LiveOptions(handle_signals=False))
    assert any("backend.tpot is not simulated" in note for note in comparison.live.summary["live"]["notes"])


def test_calibrate_fits_ttft_and_tpot_the_service_streams_with(tmp_path):
    s = scenario_from_dict(streaming())
    result, _ = live(s)
    source = tmp_path / "live.json"
    source.write_text(json.dumps(result.to_dict()))
    samples = read_token_samples(source)
    assert samples["ttft"].size == 120 and samples["tpot"].size == 120
    out = tmp_path / "calibrated.toml"
    run = subprocess.run([sys.executable, "-m", "simrouter", "calibrate", "--from", str(source), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "backend.ttft" in run.stdout and "backend.tpot" in run.stdout
    calibrated = load_scenario(out)
    rng = np.random.default_rng(0)
    ttft = calibrated.backend.ttft.sample(rng, 20000)
    # The fit is of TTFT as measured (the service's draw plus HTTP and loop overhead, < 3 ms here).
    # Median of 120 (sigma 0.39): standard error ~4.5 %; the overhead adds a few percent.
    assert np.median(ttft) == pytest.approx(0.040, rel=0.25)
    tpot = calibrated.backend.tpot.sample(rng, 20000)
    # A request's tpot is the mean of its 4 gaps (mean 20.9 ms), plus the service's timer lateness (~1 ms).
    assert np.median(tpot) == pytest.approx(0.0209, rel=0.25)
    again, _ = live(calibrated)  # the service understands the fitted backend.ttft / tpot
    assert again.summary["ttft_ms"]["p50"] == pytest.approx(result.summary["ttft_ms"]["p50"], rel=0.25)
