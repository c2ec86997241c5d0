"""`serve --protocol openai` over real HTTP on loopback, its answers decoded by the protocol
layer (simrouter.protocols) with aiohttp as the client: streamed and whole answers, every
error kind, incomplete streams and SSE error events, Retry-After, and secrets never written."""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import aiohttp
import pytest
from multidict import CIMultiDict

from simrouter.config import scenario_from_dict
from simrouter.errors import ConfigError
from simrouter.live.classify import UNEXPECTED_STATUS
from simrouter.outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from simrouter.protocols.answers import INCOMPLETE_STREAM, AnswerClassifier
from simrouter.protocols.encode import RequestEncoder
from simrouter.protocols.env import redact
from simrouter.protocols.stream import COMPLETE, StreamAccumulator, summarize_completion
from openai_fixture import running_openai as running

QUIET = {"limiter": {"algorithm": "none"}, "breaker": {"preset": "none"}}
NO_FAILURES = {"processing": 0, "timeout": 0, "validation": 0}


def scenario(backend=None, request=None, **sections):
    backend = {"failures": dict(NO_FAILURES), "ttft": {"dist": "constant", "value": 0.0}, **(backend or {})}
    data = {**QUIET, **sections, "backend": backend, "request": {"protocol": "openai-chat", "model": "m", **(request or {})}}
    return scenario_from_dict(data)




async def send(session, url, encoded, protocol="openai-chat", classifier=AnswerClassifier()):
    """One request; (Answer, StreamSummary, start, end) as the generator would measure them."""
    start = time.monotonic()
    async with session.request(encoded.method, url + encoded.path, headers=CIMultiDict(encoded.headers), data=encoded.body) as resp:
        if resp.status == 200 and resp.content_type == "text/event-stream":
            acc = StreamAccumulator(protocol)
            async for piece in resp.content.iter_any():
                acc.feed(piece, time.monotonic())
            end = time.monotonic()
            summary = acc.finish(end)
            return classifier.classify_stream(resp.status, resp.headers, summary), summary, start, end
        body = await resp.read()
        end = time.monotonic()
        summary = summarize_completion(body, protocol, at=end) if resp.status == 200 else None
        return classifier.classify(resp.status, resp.headers, body), summary, start, end


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# ---------------------------------------------------------------- success


def test_streamed_chat_ttft_itl_tokens():
    s = scenario({"ttft": {"dist": "constant", "value": 0.05}, "tpot": {"dist": "constant", "value": 0.01}, "output_tokens": {"dist": "constant", "value": 5}})

    async def main():
        async with running(s) as (session, url, _):
            return await send(session, url, RequestEncoder(s.request, environ={}).encode(1, 0))

    answer, summary, start, end = run(main())
    assert answer.kind == SUCCESS and summary.outcome == COMPLETE and summary.done
    assert (summary.output_tokens, summary.tokens_source, summary.content_chunks, summary.finish_reason) == (5, "usage", 5, "stop")
    assert summary.prompt_tokens >= 1 and len(summary.itl) == 4
    assert summary.ttft(start) >= 0.049 and sum(summary.itl) >= 0.039  # the service's own sleeps: lower bounds
    assert summary.tpot(end) >= 0.0095


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_whole_answers_and_max_tokens(protocol):
    s = scenario({"output_tokens": {"dist": "constant", "value": 50}}, {"protocol": protocol, "stream": False, "max_tokens": 3})

    async def main():
        async with running(s) as (session, url, _):
            return await send(session, url, RequestEncoder(s.request, environ={}).encode(0, 0), protocol)

    answer, summary, start, end = run(main())
    assert answer.kind == SUCCESS
    assert (summary.output_tokens, summary.tokens_source, summary.finish_reason, summary.outcome) == (3, "usage", "length", COMPLETE)


def test_streamed_completions_and_models_and_openai_shaped_404():
    s = scenario({"output_tokens": {"dist": "constant", "value": 2}}, {"protocol": "openai-completions"})

    async def main():
        async with running(s) as (session, url, _):
            streamed = await send(session, url, RequestEncoder(s.request, environ={}).encode(0, 0), "openai-completions")
            async with session.get(url + "/v1/models") as resp:
                models = await resp.json()
            async with session.get(url + "/v2/nothing") as resp:
                missing = resp.status, await resp.json()
            async with session.get(url + "/v1/chat/completions") as resp:
                wrong_method = resp.status, resp.headers.get("Allow")
            other_model = await send(session, url, RequestEncoder(scenario(request={"model": "x"}).request, environ={}).encode(0, 0))
            return streamed, models, missing, wrong_method, other_model

    (answer, summary, *_), models, missing, wrong_method, other_model = run(main())
    assert answer.kind == SUCCESS and summary.output_tokens == 2
    assert [m["id"] for m in models["data"]] == ["m"]
    assert missing[0] == 404 and missing[1]["error"]["code"] == "unknown_url"
    assert wrong_method == (405, "POST")
    assert other_model[0].kind == UNEXPECTED_STATUS and other_model[0].error_code == "model_not_found"


# ---------------------------------------------------------------- every error kind


def test_rate_limited_with_retry_after_and_ratelimit_headers():
    s = scenario(limiter={"algorithm": "token_bucket", "rate": 0.5, "burst": 1, "scope": "per_user"})

    async def main():
        async with running(s) as (session, url, _):
            enc = RequestEncoder(s.request, environ={})
            first = await send(session, url, enc.encode(7, 0))
            second = await send(session, url, enc.encode(7, 1))
            other_user = await send(session, url, enc.encode(8, 2))
            return first[0], second[0], other_user[0]

    first, second, other_user = run(main())
    assert (first.kind, second.kind, other_user.kind) == (SUCCESS, RATE_LIMITED, SUCCESS)
    assert (second.error_type, second.error_code, second.retry_after_s) == ("requests", "rate_limit_exceeded", 2.0)
    assert second.ratelimit["x-ratelimit-remaining-requests"] == "0" and second.ratelimit["x-ratelimit-limit-requests"] == "1"


@pytest.mark.parametrize(
    "sections, kind, error_code",
    [
        ({"backend": {"failures": {**NO_FAILURES, "processing": 1.0}}}, FAILURE, "server_error"),
        ({"backend": {"failures": {**NO_FAILURES, "validation": 1.0}}}, VALIDATION, "invalid_request"),
        ({"backend": {"ttft": {"dist": "constant", "value": 2.0}}, "router": {"timeout": 0.05}}, TIMEOUT, "timeout"),
    ],
)
def test_backend_error_kinds(sections, kind, error_code):
    s = scenario(sections.get("backend"), **{k: v for k, v in sections.items() if k != "backend"})

    async def main():
        async with running(s) as (session, url, _):
            return await send(session, url, RequestEncoder(s.request, environ={}).encode(0, 0))

    answer = run(main())[0]
    assert (answer.kind, answer.error_code) == (kind, error_code)


def test_queue_full_and_breaker_rejected():
    full = scenario({"ttft": {"dist": "constant", "value": 0.3}, "capacity": 1, "queue_limit": 0})
    tripping = scenario({"failures": {**NO_FAILURES, "processing": 1.0}}, breaker={"preset": "default", "failure_threshold": 1, "half_open_max_calls": 1, "success_threshold": 1})

    async def main():
        async with running(full) as (session, url, _):
            enc = RequestEncoder(full.request, environ={})
            kinds = sorted(a.kind for a, *_ in await asyncio.gather(send(session, url, enc.encode(0, 0)), send(session, url, enc.encode(1, 1))))
        async with running(tripping) as (session, url, _):
            enc = RequestEncoder(tripping.request, environ={})
            first, second = (await send(session, url, enc.encode(0, 0)))[0], (await send(session, url, enc.encode(0, 1)))[0]
        return kinds, first, second

    kinds, first, second = run(main())
    assert kinds == [SUCCESS, QUEUE_FULL]
    assert (first.kind, second.kind, second.error_code) == (FAILURE, BREAKER_REJECTED, "breaker_open")


def test_malformed_request_is_validation():
    s = scenario()

    async def main():
        async with running(s) as (session, url, service):
            async with session.post(url + "/v1/chat/completions", json={"model": "m", "messages": "hi"}) as resp:
                answer = AnswerClassifier().classify(resp.status, resp.headers, await resp.read())
            async with session.post(url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}], "user": "alice"}) as resp:
                named = AnswerClassifier().classify(resp.status, resp.headers, await resp.read())
            async with session.get(url + "/metrics") as resp:
                return answer, named, (await resp.json())["requests"]

    answer, named, requests = run(main())
    assert (answer.kind, answer.error_type) == (VALIDATION, "invalid_request_error")
    assert named.kind == VALIDATION  # a user key the limiter cannot use
    assert (requests["sent"], requests["validation_errors"]) == (2, 2)


@pytest.mark.parametrize("fault, kind", [("stream_cut", INCOMPLETE_STREAM), ("stream_error", FAILURE)])
def test_broken_streams(fault, kind):
    s = scenario({"output_tokens": {"dist": "constant", "value": 6}, "failures": {**NO_FAILURES, fault: 1.0}})

    async def main():
        async with running(s) as (session, url, _):
            return await send(session, url, RequestEncoder(s.request, environ={}).encode(0, 0))

    answer, summary, *_ = run(main())
    assert answer.kind == kind
    assert not summary.done and summary.finish_reason is None and 1 <= summary.content_chunks <= 5
    assert summary.tokens_source == "chunks"  # no usage chunk: counted from the chunks
    if fault == "stream_error":
        assert answer.error_code == "server_error"


# ---------------------------------------------------------------- the CLI and secrets

SECRET = "sk-g-test-7c1d2e9f4b"


def test_serve_protocol_openai_cli_and_secrets_never_written(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "scenario.toml"
    config.write_text(
        textwrap.dedent(
            """
            duration = 2
            [workload]
            users = 2
            requests_per_user = 3
            [limiter]
            algorithm = "none"
            [backend]
            ttft = { dist = "constant", value = 0.01 }
            output_tokens = { dist = "constant", value = 3 }
            [backend.failures]
            processing = 0.0
            validation = 0.0
            [request]
            protocol = "openai-chat"
            model = "m"
            headers = { Authorization = "Bearer ${G_TEST_SECRET}", X-Api-Key = "${G_TEST_SECRET}" }
            """
        )
    )
    env = {**os.environ, "G_TEST_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simrouter", "serve", "--protocol", "openai", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split("listening on ")[1].split()[0]
        s = scenario_from_dict(json.loads(json.dumps(__import__("simrouter").load_scenario(config).to_dict())))
        encoder = RequestEncoder(s.request, environ={"G_TEST_SECRET": SECRET})
        assert ("Authorization", f"Bearer {SECRET}") in encoder.encode(0, 0).headers

        async def main():
            async with aiohttp.ClientSession() as session:
                answers = [await send(session, url, encoder.encode(u, u)) for u in range(3)]
                async with session.get(url + "/metrics") as resp:
                    metrics = await resp.text()
            return answers, metrics

        answers, metrics = run(main())
        assert all(a.kind == SUCCESS and summary.output_tokens == 3 for a, summary, *_ in answers)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    (tmp_path / "metrics.json").write_text(metrics)
    (tmp_path / "echo.json").write_text(json.dumps(s.to_dict()))
    (tmp_path / "answers.txt").write_text(repr(answers))
    with pytest.raises(ConfigError) as info:  # a missing variable: named, no value shown
        RequestEncoder(scenario(request={"headers": {"A": "${G_TEST_SECRET}", "B": "${G_TEST_UNSET}"}}).request, environ={"G_TEST_SECRET": SECRET})
    (tmp_path / "error.txt").write_text(str(info.value))
    assert "G_TEST_UNSET" in str(info.value)
    (tmp_path / "redacted.txt").write_text(redact(f"echoed: Bearer {SECRET}", encoder.secrets))
    result = subprocess.run([sys.executable, "-m", "simrouter", "run", str(config), "--json", str(tmp_path / "run.json")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    written = {path.name: path.read_text() for path in tmp_path.iterdir() if path.is_file()}
    written |= {"serve stdout": line + out, "serve stderr": err, "run output": result.stdout + result.stderr, "log": caplog.text}
    assert set(written) >= {"metrics.json", "echo.json", "answers.txt", "error.txt", "redacted.txt", "run.json", "scenario.toml"}
    leaked = [name for name, text in written.items() if SECRET in text]
    assert leaked == []
    assert "${G_TEST_SECRET}" in written["echo.json"] and "${G_TEST_SECRET}" in written["redacted.txt"]


def test_prompts_dataset_reaches_the_service(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps("x" * 40) + "\n" + json.dumps({"messages": [{"role": "user", "content": "y" * 8}], "max_tokens": 1}) + "\n")
    s = scenario(request={"prompts": str(tmp_path / "p.jsonl"), "stream": False})

    async def main():
        async with running(s) as (session, url, _):
            enc = RequestEncoder(s.request, environ={})
            return [(await send(session, url, enc.encode(0, seq)))[1] for seq in range(3)]

    first, second, third = run(main())
    assert (first.prompt_tokens, second.prompt_tokens, third.prompt_tokens) == (10, 2, 10)
    assert (second.output_tokens, second.finish_reason) == (1, "length")  # the body line's own max_tokens
