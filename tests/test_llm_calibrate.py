"""``simrouter calibrate --fit step-time``: fitting ``backend.step_time`` to streams.

The streams are those a client of the simulated LLM server would have recorded
(``stream_record.from_simulation``: the same ``StreamRecord`` ``simrouter live
--streams`` writes), from runs with a known ``step_time``:

* exact streams: the reconstruction is exact (every step a burst of chunks, the
  prefill of the requests whose first token it emits), so the fit recovers the
  truth to rounding, except the few steps of a chunked prefill, which the trim
  must leave out;
* streams with a client's jitter (each chunk late by uniform [0, 2] ms, a third
  of the 6 ms base step; the loopback measured 0.2-1.3 ms on 10 ms sleeps):
  each coefficient within 5 % (measured at 4, 8, 16 req/s and seeds 1-3: base
  at most 0.2 % off, per_prefill_token 0.5 %, per_decode_token 1.6 %; with 3 ms
  of jitter, half a step, per_decode_token drifts to -20 % at 4 req/s);
* ``first_token_overhead`` (the request's own way to the engine and back, which
  the simulation does not have): 0 on exact streams, and the delay added to
  every first token when one is added, from the requests that joined a busy
  server (within 0.3 ms) or, on a mostly idle one, from its first-token steps.

The live twin (``serve --protocol openai`` running ``backend.model = "llm"`` in
real time): calibrated at one load, predicting another, in tests/test_llm_calibrate_twin.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from simrouter.cli import main
from simrouter.config import load_scenario
from simrouter.errors import ConfigError
from simrouter.live import stream_record
from simrouter.live.step_fit import fit_step_time, reconstruct_steps
from simrouter.live.stream_record import from_columns
from simrouter.sim.run import simulate

TRUTH = {"base": 0.006, "per_prefill_token": 2e-5, "per_decode_token": 1e-4}  # llm-chat's step_time


def simulated(rate: float, seed: int = 1, duration: float = 60.0, extra: tuple = ()):
    return simulate("llm-chat", seed=seed, overrides=[f"duration={duration}", f"workload.rate={rate}", *extra])


def jittered(record, rng, late_s: float):
    """``record`` with every chunk arriving late by uniform [0, late_s] s (a client's view)."""
    times, _ = record.token_times()
    times = times + rng.uniform(0.0, late_s, times.size)
    firsts = np.concatenate([[0], np.cumsum(record.chunks)[:-1]])
    gaps = [np.diff(times[f : f + c]) for f, c in zip(firsts, record.chunks)]
    return from_columns(record.sent, times[firsts], gaps, record.prompt, record.output, record.succeeded, record.measured, record.config)


def relative_errors(fit) -> dict:
    return {name: fit.coefficients[name] / value - 1 for name, value in TRUTH.items()}


def test_record_from_simulation_matches_the_run():
    result = simulated(8.0, duration=30.0)
    record = stream_record.from_simulation(result)
    ok = np.isfinite(result.llm.first_token)
    assert len(record) == int(ok.sum()) > 100
    # Each stream: as many chunks as output tokens, ending with the request.
    assert np.array_equal(record.chunks, result.llm.output_tokens[ok])
    assert np.allclose(record.last_token(), result.done[ok], rtol=0, atol=1e-9)
    # Every gap is one engine step: the pooled gaps are the run's own itl_ms.
    assert np.percentile(record.itl, 50) * 1000 == pytest.approx(result.summary["itl_ms"]["p50"], rel=1e-9)
    # Written and read back unchanged.
    again = from_columns(**{k: v for k, v in _columns(record).items()})
    assert np.array_equal(again.itl, record.itl) and np.array_equal(again.itl_start, record.itl_start)


def _columns(record) -> dict:
    data = record.to_dict()["requests"]
    return {"sent": data["sent"], "first_token": data["first_token"], "gaps": data["itl"], "prompt": data["prompt"], "output": data["output"],
            "succeeded": data["succeeded"], "measured": data["measured"]}


def test_exact_streams_recover_step_time():
    # Rate 16, seed 3: one 8,614-token prompt is prefilled in two chunks (budget 8192):
    # its two steps are the only ones the model's regressors cannot describe.
    result = simulated(16.0, seed=3)
    fit = fit_step_time(stream_record.from_simulation(result), bootstrap=20)
    assert max(abs(e) for e in relative_errors(fit).values()) < 1e-6
    assert fit.r2 > 0.999999
    assert fit.rows["trimmed"] == 2
    assert fit.rows["itl"] >= result.summary["batch"]["steps"] - 10
    assert fit.occupancy["max_emitting"] <= result.summary["batch"]["max_running"]


@pytest.mark.parametrize("rate", [4.0, 16.0])
def test_jittered_streams_recover_step_time_within_five_percent(rate):
    record = jittered(stream_record.from_simulation(simulated(rate, seed=2)), np.random.default_rng(2), 0.002)
    fit = fit_step_time(record, bootstrap=100)
    errors = relative_errors(fit)
    assert all(abs(e) < 0.05 for e in errors.values()), errors
    # The bootstrap's standard error is of the size of the error made (within a factor 10).
    se = fit.standard_errors["per_decode_token"] / TRUTH["per_decode_token"]
    assert se < 0.05 and abs(errors["per_decode_token"]) < 10 * se + 0.01
    assert 0.8 < fit.r2 < 1.0


def late_sends(record, overhead_s: float):
    """``record`` as if each request took ``overhead_s`` more to reach the engine and back."""
    return from_columns(record.sent - overhead_s, record.first_token, _columns(record)["gaps"], record.prompt, record.output, record.succeeded, record.measured)


def test_first_token_overhead_is_measured_from_requests_joining_a_busy_server():
    # A request joins the first step starting after it reached the engine: its send, the
    # step before and its own step bound the overhead; the most consistent value wins.
    # Resolution: the sends nearest a step start (sub-millisecond at 4 req/s over 60 s).
    record = stream_record.from_simulation(simulated(4.0, seed=4))
    exact = fit_step_time(record, bootstrap=50)
    assert exact.rows["overhead_requests"] >= 100
    assert exact.coefficients["first_token_overhead"] == pytest.approx(0.0, abs=3e-4)
    fit = fit_step_time(late_sends(record, 0.003), bootstrap=50)
    assert fit.coefficients["first_token_overhead"] == pytest.approx(0.003, abs=3e-4)
    low, high = fit.intervals["first_token_overhead"]
    assert low <= fit.coefficients["first_token_overhead"] <= high and high - low < 1e-3
    assert fit.step_time == pytest.approx(exact.step_time, rel=0.01)
    assert all(abs(e) < 0.01 for e in relative_errors(fit).values())


def test_first_token_overhead_from_idle_server_steps_when_the_server_is_rarely_busy():
    # 0.2 req/s: most requests find the server idle; their first step began at their
    # arrival, so first token - send = overhead + one step, a regressor of its own.
    record = stream_record.from_simulation(simulated(0.2, seed=4, duration=300.0))
    fit = fit_step_time(late_sends(record, 0.003), bootstrap=0)
    assert fit.rows["overhead_requests"] == 0 and fit.rows["ttft"] >= 20
    assert fit.coefficients["first_token_overhead"] == pytest.approx(0.003, rel=1e-6)
    assert max(abs(e) for e in relative_errors(fit).values()) < 1e-6


def test_without_prompt_counts_per_prefill_is_fixed_at_zero():
    record = stream_record.from_simulation(simulated(8.0, duration=30.0))
    unknown = from_columns(record.sent, record.first_token, _columns(record)["gaps"], np.full(len(record), -1), record.output, record.succeeded, record.measured)
    fit = fit_step_time(unknown, bootstrap=0)
    assert fit.coefficients["per_prefill_token"] == 0.0
    assert any("no prompt tokens" in note for note in fit.notes)
    assert fit.coefficients["base"] > TRUTH["base"]  # the mean prefill cost went into it


def test_bursts_are_steps():
    result = simulated(8.0, duration=30.0)
    steps = reconstruct_steps(stream_record.from_simulation(result))
    log = result.llm.steps
    assert steps.bursts == log["end"].size  # every step emitted a chunk of some stream
    itl = steps.population == "itl"
    index = np.searchsorted(log["end"], steps.end[itl] - 1e-9)  # arrivals rebuilt from the gaps: rounding
    assert np.allclose(steps.duration[itl], log["duration"][index], atol=1e-12)
    assert np.array_equal(steps.decoding[itl], log["decoded"][index])


def test_too_few_steps_is_a_config_error():
    record = stream_record.from_simulation(simulated(8.0, duration=30.0))
    few = from_columns(record.sent[:2], record.first_token[:2], [[0.01]] * 2, record.prompt[:2], record.output[:2], record.succeeded[:2], record.measured[:2])
    with pytest.raises(ConfigError) as error:
        fit_step_time(few)
    assert error.value.field == "--from" and "steps with decoding sequences" in error.value.message


def test_cli_writes_the_calibrated_scenario(tmp_path, capsys):
    result = simulated(8.0, seed=5, duration=60.0, extra=("backend.max_num_seqs=32",))
    record = jittered(stream_record.from_simulation(result), np.random.default_rng(5), 0.001)
    record.config = result.scenario.to_dict()
    path = record.write(tmp_path / "streams.json")
    out, report = tmp_path / "calibrated.toml", tmp_path / "fit.json"
    assert main(["calibrate", "--fit", "step-time", "--from", str(path), "--out", str(out), "--json", str(report), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "per_decode_token" in printed and "R^2" in printed
    scenario = load_scenario(out)
    assert scenario.backend.model == "llm"
    st = scenario.backend.step_time
    assert st.base == pytest.approx(TRUTH["base"], rel=0.05) and st.per_decode_token == pytest.approx(TRUTH["per_decode_token"], rel=0.05)
    # Everything else is the run's scenario.
    assert scenario.workload.rate == 8.0 and scenario.backend.max_num_seqs == 32 and scenario.duration == 60.0
    data = json.loads(report.read_text())
    assert data["rows"]["itl"] > 1000 and data["ci95"]["base"][0] <= data["coefficients"]["base"] <= data["ci95"]["base"][1]


def test_cli_rejects_a_file_that_is_not_a_stream_record(tmp_path, capsys):
    path = tmp_path / "live.json"
    path.write_text(json.dumps({"live": {"latency_sample_s": [0.1] * 30}}))
    with pytest.raises(ConfigError) as error:
        stream_record.read(path)
    assert error.value.field == "--from" and "--streams" in error.value.message
    assert main(["calibrate", "--fit", "step-time", "--from", str(path), "--out", str(tmp_path / "x.toml")]) == 2
    assert "--streams" in capsys.readouterr().err and not (tmp_path / "x.toml").exists()


STREAMING = """\
name = "stream-record"
duration = 3.0
[workload]
model = "open"
rate = 10.0
[request]
protocol = "openai-chat"
model = "m"
[backend]
ttft = { dist = "constant", value = 0.02 }
tpot = { dist = "constant", value = 0.005 }
output_tokens = { dist = "constant", value = 8 }
"""


def test_live_streams_writes_what_the_client_saw(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "s.toml"
    config.write_text(STREAMING)
    process = subprocess.Popen(
        [sys.executable, "-m", "simrouter", "serve", "--protocol", "openai", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "listening on " in line, process.stderr.read()
        url = line.split("listening on ", 1)[1].split()[0]
        streams, live_json = tmp_path / "streams.json", tmp_path / "live.json"
        assert main(["live", str(config), "--target", url, "--json", str(live_json), "--streams", str(streams)]) == 0
    finally:
        process.terminate()
        process.communicate(timeout=10)
    record, live = stream_record.read(streams), json.loads(live_json.read_text())
    assert len(record) == live["requests"]["succeeded"] > 10 and record.succeeded.all()
    assert (record.output == 8).all() and (record.chunks == 8).all() and (record.prompt > 0).all()
    assert (record.first_token > record.sent).all() and record.config["name"] == "stream-record" and record.target == url
    # The same gaps as the run's own ITL figure (HDR: 3 significant digits).
    assert np.percentile(record.itl, 50) * 1000 == pytest.approx(live["itl_ms"]["p50"], rel=0.01)
