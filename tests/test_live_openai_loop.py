"""`simrouter live` against `serve --protocol openai` over real HTTP on loopback: requests
built by the protocol encoder, answers decoded (streamed and whole), every error kind
counted as the service counted it, incomplete streams, SSE error events, Retry-After and
x-ratelimit-* recorded, --map body rules, and secrets never written anywhere."""

import asyncio
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from simrouter.config import scenario_from_dict
from simrouter.errors import ConfigError
from simrouter.live.classify import INCOMPLETE_STREAM, LIVE_KIND_NAMES
from simrouter.live.loadgen import LiveOptions, LoadGenerator, run_live
from simrouter.live.openai_service import OpenAIService
from simrouter.live.service import start_service
from simrouter.outcomes import KIND_NAMES
from simrouter.protocols.answers import AnswerClassifier

QUIET = {"limiter": {"algorithm": "none"}, "breaker": {"preset": "none"}}
NO_FAILURES = {"processing": 0, "timeout": 0, "validation": 0}
SECRET = "sk-live-test-9f8e7d6c5b4a"


def constant(value):
    return {"dist": "constant", "value": value}


def scenario(request=None, backend=None, workload=None, **sections):
    data = {
        "duration": 30,
        **QUIET,
        **sections,
        "workload": {"model": "sequential", "users": 1, "requests_per_user": 12, "think_time": constant(0), **(workload or {})},
        "backend": {"failures": dict(NO_FAILURES), "ttft": constant(0.02), "tpot": constant(0.005), "output_tokens": constant(6), **(backend or {})},
        "request": {"protocol": "openai-chat", "model": "m", **(request or {})},
    }
    return scenario_from_dict(data)


class OpenAIThread:
    """``serve --protocol openai`` on its own loop in a thread, on a free loopback port."""

    def __init__(self, s, seed=1):
        self.service = OpenAIService(s, seed=seed)
        self._ready = threading.Event()

    def __enter__(self):
        def main():
            async def serve():
                self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
                runner, self.url = await start_service(self.service, "127.0.0.1", 0, shutdown_timeout=0.1)
                self._ready.set()
                try:
                    await self._stop.wait()
                finally:
                    await runner.cleanup()

            asyncio.run(serve())

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the service did not start"
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def counts(self):
        return self.service.router.metrics()["requests"]


def live(s, **options):
    with OpenAIThread(s) as svc:
        result = run_live(s, svc.url, LiveOptions(handle_signals=False, **options))
        return result, svc.counts()


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_streamed_answers_give_ttft_itl_tpot_and_exact_tokens(protocol, client):
    result, _ = live(scenario({"protocol": protocol}), client=client)
    s = result.summary
    n = s["requests"]["succeeded"]
    assert n == s["requests"]["sent"] == 12
    assert s["tokens"] == {"prompt": s["tokens"]["prompt"], "output": 6 * n, "output_per_s": pytest.approx(6 * n / s["throughput"]["window_s"]), "source": "usage"}
    assert s["tokens"]["prompt"] > 0
    assert s["ttft_ms"]["count"] == n and s["tpot_ms"]["count"] == n and s["itl_ms"]["count"] == 5 * n
    # The service waits 20 ms to the first token and 5 ms per further token: the generator
    # measures no less (the upper bounds leave room for a machine shared with other runs).
    assert 20.0 <= s["ttft_ms"]["p50"] < 60.0
    assert 5.0 <= s["itl_ms"]["p50"] < 20.0 and 5.0 <= s["tpot_ms"]["p50"] < 20.0
    assert s["latency_ms"]["p50"] >= s["ttft_ms"]["p50"] + 5 * 5.0 - 0.5
    timing = result.token_timing()  # per request: e2e = ttft + (n - 1) tpot
    e2e = result.done[timing["rows"]] - result.sent[timing["rows"]]
    np.testing.assert_allclose(e2e, timing["ttft"] + 5 * timing["tpot"], atol=1e-6)
    assert result.summary["live"]["protocol"] == protocol and result.summary["live"]["stream"] is True
    frame = result.to_frame()
    np.testing.assert_allclose(np.sort(frame["ttft_ms"].to_numpy()), np.sort(timing["ttft"] * 1000.0))
    assert (frame["output_tokens"] == 6).all()


def test_whole_answers_have_ttft_equal_to_latency_and_usage_tokens():
    result, _ = live(scenario({"stream": False}))
    s = result.summary
    assert s["requests"]["succeeded"] == 12 and s["tokens"]["output"] == 72 and s["tokens"]["source"] == "usage"
    timing = result.token_timing()
    np.testing.assert_allclose(timing["ttft"], result.done[timing["rows"]] - result.sent[timing["rows"]])
    assert s["itl_ms"]["count"] == 0 and s["tpot_ms"]["count"] == 12


def test_every_error_kind_is_counted_as_the_service_counted_it():
    s = scenario(
        backend={"failures": {"processing": 0.2, "timeout": 0.1, "validation": 0.1}, "hang_time": 0.3, "capacity": 1, "queue_limit": 0},
        workload={"model": "closed", "users": 4, "requests_per_user": 40, "think_time": constant(0.04)},
        router={"timeout": 0.15},
        limiter={"algorithm": "token_bucket", "scope": "global", "rate": 40, "burst": 3},
        breaker={"preset": "none"},
    )
    result, counts = live(s)
    requests = result.summary["requests"]
    for kind in KIND_NAMES:
        assert requests[kind] == counts[kind], kind
    assert requests["unexpected_status"] == requests["protocol_errors"] == 0
    for kind in ("succeeded", "rate_limited", "failures", "validation_errors", "timeouts", "queue_full"):
        assert requests[kind] > 0, kind
    codes = result.summary["live"]["error_codes"]
    assert codes["rate_limit_exceeded"] == requests["rate_limited"]
    assert codes["server_error"] == requests["failures"] and codes["timeout"] == requests["timeouts"]
    assert codes["queue_full"] == requests["queue_full"]


def test_breaker_rejections_are_read_from_503_breaker_open():
    s = scenario(
        backend={"failures": {"processing": 1.0, "timeout": 0, "validation": 0}},
        workload={"requests_per_user": 30},
        breaker={"preset": "default", "failure_threshold": 3, "open_duration": 60},
    )
    result, counts = live(s)
    requests = result.summary["requests"]
    assert requests["breaker_rejected"] == counts["breaker_rejected"] > 0
    assert requests["failures"] == counts["failures"] > 0
    assert result.summary["live"]["error_codes"]["breaker_open"] == requests["breaker_rejected"]


def test_retry_after_and_ratelimit_headers_are_recorded():
    s = scenario(limiter={"algorithm": "token_bucket", "rate": 4, "burst": 2}, workload={"requests_per_user": 10})
    result, _ = live(s)
    limited = result.summary["requests"]["rate_limited"]
    assert limited >= 5
    limits = result.summary["live"]["rate_limits"]
    # The service's Retry-After is 1 s (at least one second), retry-after-ms the exact 250 ms: the precise one wins.
    assert limits["retry_after_s"] == {"count": limited, "min": 0.25, "max": 0.25, "last": 0.25}
    assert limits["x_ratelimit"]["count"] == limited
    assert limits["x_ratelimit"]["last"]["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize("fault, kind", [("stream_cut", "incomplete_stream"), ("stream_error", "failures")])
def test_cut_streams_and_sse_error_events_are_not_successes(fault, kind):
    failures = {**NO_FAILURES, fault: 1.0}
    result, counts = live(scenario(backend={"failures": failures, "output_tokens": constant(5)}))
    requests = result.summary["requests"]
    assert requests[kind] == 12 and requests["succeeded"] == 0
    assert counts["succeeded"] == 12  # the service recorded success at the first token
    assert result.summary["ttft_ms"]["count"] == 0  # token timing describes successes
    if kind == "incomplete_stream":
        assert any("incomplete_stream" in note for note in result.summary["live"]["notes"])
        assert result.summary["latency_ms"]["count"] == 12  # it took time on the target
    else:
        assert result.summary["live"]["error_codes"] == {"server_error": 12}


def test_incomplete_stream_is_a_kind_of_its_own():
    assert LIVE_KIND_NAMES[INCOMPLETE_STREAM] == "incomplete_stream"
    assert AnswerClassifier(["200=incomplete_stream"]).kind(200) == INCOMPLETE_STREAM


def test_map_rules_on_body_fields_and_unknown_forms():
    s = scenario(limiter={"algorithm": "token_bucket", "rate": 4, "burst": 1}, workload={"requests_per_user": 6})
    result, counts = live(s, rules=("429:error.code=rate_limit_exceeded=failures",))
    assert result.summary["requests"]["rate_limited"] == 0
    assert result.summary["requests"]["failures"] == counts["rate_limited"] > 0
    with pytest.raises(ConfigError, match="error.FIELD"):
        AnswerClassifier(["429:usage.total=1=failures"])
    with pytest.raises(ConfigError, match="--map"):
        AnswerClassifier(["429:error.code=x=nonsense"])


def test_dataset_prompts_are_sent_in_turn(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"a"\n"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"\n')
    s = scenario({"prompts": str(prompts)}, workload={"requests_per_user": 4})
    generator = LoadGenerator(s, "http://127.0.0.1:1", LiveOptions(handle_signals=False))
    bodies = [json.loads(generator.build_request(0, seq).body)["messages"][0]["content"] for seq in range(4)]
    assert bodies == ["a", "b" * 62, "a", "b" * 62]
    result, _ = live(s)
    assert result.summary["tokens"]["prompt"] == 2 * (1 + 16)  # prompt_tokens = ceil(chars / 4) per the service


def test_simrouter_protocol_request_is_unchanged():
    s = scenario_from_dict({"workload": {"users": 2}})
    generator = LoadGenerator(s, "http://u:p@127.0.0.1:1/api", LiveOptions(handle_signals=False))
    request = generator.build_request(1)
    assert (request.method, request.path, request.body) == ("POST", "/api/submit", b'{"user": 1}')
    assert dict(request.headers) == {"Content-Type": "application/json", "Authorization": "Basic dTpw"}


def test_unset_variable_is_a_configuration_error_naming_it(monkeypatch):
    monkeypatch.delenv("SIMROUTER_TEST_UNSET", raising=False)
    s = scenario({"headers": {"Authorization": "Bearer ${SIMROUTER_TEST_UNSET}"}})
    with pytest.raises(ConfigError, match="SIMROUTER_TEST_UNSET"):
        LoadGenerator(s, "http://127.0.0.1:1", LiveOptions(handle_signals=False))


# -- secrets, through the CLI against `serve --protocol openai` in a subprocess


def serve_process(config, *extra):
    process = subprocess.Popen(
        [sys.executable, "-m", "simrouter", "serve", "--protocol", "openai", "--config", str(config), "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    assert "listening on " in line, process.stderr.read()
    return process, line.split("listening on ", 1)[1].split()[0]


def stop(process):
    process.terminate()
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


SECRET_SCENARIO = """\
duration = 20
[workload]
model = "closed"
users = 2
requests_per_user = 10
think_time = {{ dist = "constant", value = 0.2 }}
[limiter]
algorithm = "token_bucket"
rate = 2
burst = 1
[backend]
ttft = {{ dist = "constant", value = 0.005 }}
tpot = {{ dist = "constant", value = 0.001 }}
[backend.failures]
processing = 0.2
stream_cut = 0.3
[request]
protocol = "openai-chat"
model = "m"
path = "/v1/chat/completions?key=${{SIMROUTER_TEST_KEY}}"
headers = {{ Authorization = "Bearer ${{SIMROUTER_TEST_KEY}}", X-Extra = "${{SIMROUTER_TEST_KEY}}" }}
{extra}
"""


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
def test_secrets_never_reach_json_report_or_logs(tmp_path, client):
    config = tmp_path / "s.toml"
    config.write_text(SECRET_SCENARIO.format(extra=""))
    process, url = serve_process(config)
    try:
        out = tmp_path / "out.json"
        env = {**os.environ, "SIMROUTER_TEST_KEY": SECRET, "COLUMNS": "200"}
        run = subprocess.run(
            [sys.executable, "-m", "simrouter", "live", str(config), "--target", url, "--json", str(out), "--client", client],
            capture_output=True, text=True, env=env, timeout=120,
        )
    finally:
        stop(process)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    requests = data["requests"]  # answers of every shape went through the run: success, 429, 500, cut streams
    assert requests["succeeded"] > 0 and requests["rate_limited"] > 0 and requests["failures"] + requests["incomplete_stream"] > 0, requests
    assert data["config"]["request"]["headers"]["Authorization"] == "Bearer ${SIMROUTER_TEST_KEY}"
    assert "TTFT" in run.stdout
    for name, text in (("json", out.read_text()), ("stdout", run.stdout), ("stderr", run.stderr)):
        assert SECRET not in text, name
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_an_error_carrying_a_secret_is_redacted(tmp_path, monkeypatch):
    from simrouter.commands.live import redacting

    monkeypatch.setenv("SIMROUTER_TEST_KEY", SECRET)
    s = scenario({"headers": {"Authorization": "Bearer ${SIMROUTER_TEST_KEY}"}})
    with pytest.raises(RuntimeError) as caught, redacting(s):
        raise OSError(f"cannot send Bearer {SECRET}")
    assert SECRET not in str(caught.value) and "${SIMROUTER_TEST_KEY}" in str(caught.value)
    with pytest.raises(ConfigError) as caught, redacting(s):
        raise ConfigError("request.path", f"bad {SECRET}")
    assert SECRET not in str(caught.value)


def test_unknown_map_form_is_a_clear_cli_error(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(SECRET_SCENARIO.format(extra=""))
    env = {**os.environ, "SIMROUTER_TEST_KEY": SECRET}
    run = subprocess.run(
        [sys.executable, "-m", "simrouter", "live", str(config), "--target", "http://127.0.0.1:9", "--map", "429:usage.tokens=3=failures"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert run.returncode == 2
    assert "--map" in run.stderr and "error.FIELD" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "simrouter", "live", str(config), "--target", "http://127.0.0.1:9"],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "SIMROUTER_TEST_KEY"}, timeout=60,
    )
    assert run.returncode == 2 and "SIMROUTER_TEST_KEY" in run.stderr and "is not set" in run.stderr

