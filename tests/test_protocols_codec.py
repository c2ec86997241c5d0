"""The protocol codecs without a network: request encoding, ${VAR}, redaction, the SSE
decoder (any split of a byte stream gives the same events), the stream accumulator and
the classification of answers."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simrouter.config import scenario_from_dict
from simrouter.errors import ConfigError
from simrouter.outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from simrouter.protocols.answers import INCOMPLETE_STREAM, KIND_NAMES, AnswerClassifier, retry_after_seconds
from simrouter.protocols.encode import RequestEncoder
from simrouter.protocols.env import Secrets, redact, resolve
from simrouter.protocols.sse import SSEDecoder, SSEEvent
from simrouter.protocols.stream import COMPLETE, ERROR, INCOMPLETE, StreamAccumulator, summarize_completion
from simrouter.live.classify import UNEXPECTED_STATUS


def request(**section):
    return scenario_from_dict({"request": section}).request


# ---------------------------------------------------------------- encoding


def test_chat_body_has_the_contract_fields():
    enc = RequestEncoder(request(protocol="openai-chat", model="m", max_tokens=7), environ={}, prompts=["say \"hi\""])
    r = enc.encode(user=3, seq=0)
    assert (r.method, r.path) == ("POST", "/v1/chat/completions")
    assert json.loads(r.body) == {
        "messages": [{"role": "user", "content": 'say "hi"'}],
        "model": "m",
        "max_tokens": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert ("Content-Type", "application/json") in r.headers and ("X-User-Id", "3") in r.headers


def test_completions_without_stream_sends_no_stream_options():
    enc = RequestEncoder(request(protocol="openai-completions", model="m", stream=False), environ={}, prompts=["a", "b"])
    bodies = [json.loads(enc.encode(0, seq).body) for seq in range(3)]
    assert [b["prompt"] for b in bodies] == ["a", "b", "a"]  # cycled
    assert all(b["stream"] is False and "stream_options" not in b and "max_tokens" not in b for b in bodies)


def test_full_body_lines_are_sent_with_missing_keys_added():
    enc = RequestEncoder(request(protocol="openai-chat", model="m"), environ={}, prompts=[{"messages": [], "temperature": 0, "model": "other"}])
    body = json.loads(enc.encode(0, 0).body)
    assert body == {"messages": [], "temperature": 0, "model": "other", "stream": True, "stream_options": {"include_usage": True}}


def test_simrouter_protocol_is_todays_submit():
    r = RequestEncoder(request(), environ={}).encode(user=5, seq=9)
    assert (r.method, r.path, r.body) == ("POST", "/submit", b'{"user": 5}')


def test_http_template_placeholders_and_query_path():
    section = request(protocol="http", method="PUT", path="/gen?x=1", body='{"u": {user}, "n": {seq}, "p": {prompt}}')
    r = RequestEncoder(section, environ={}, prompts=['quote " and {user}']).encode(user=2, seq=11)
    assert (r.method, r.path) == ("PUT", "/gen?x=1")
    assert json.loads(r.body) == {"u": 2, "n": 11, "p": 'quote " and {user}'}


def test_env_references_resolve_at_run_time_and_unset_names_the_variable():
    section = request(protocol="openai-chat", model="m", headers={"Authorization": "Bearer ${G_TEST_KEY}"})
    assert section.headers["Authorization"] == "Bearer ${G_TEST_KEY}"  # loading resolves nothing
    enc = RequestEncoder(section, environ={"G_TEST_KEY": "sk-123"})
    assert ("Authorization", "Bearer sk-123") in enc.encode(0, 0).headers
    assert redact("got sk-123 back", enc.secrets) == "got ${G_TEST_KEY} back"
    with pytest.raises(ConfigError) as info:
        RequestEncoder(section, environ={"OTHER": "sk-123"})
    assert info.value.field == "request.headers.Authorization" and "G_TEST_KEY" in str(info.value) and "sk-123" not in str(info.value)


def test_redact_plain_strings_longest_first_and_skips_empty():
    assert redact("abcd abc", ["abc", "abcd", ""]) == "[redacted] [redacted]"
    secrets = Secrets()
    assert resolve("x${A}y", {"A": ""}, "f", secrets) == "xy" and not secrets


# ---------------------------------------------------------------- SSE decoder

STREAM = (
    b"\xef\xbb\xbf: keep-alive\r\n"
    b"data: {\"a\": 1}\r\n\r\n"
    b"event: error\ndata: line one\ndata:line two\nid: 7\nretry: 30\n\n"
    b"data: x\rdata: y\r\r"
    b"nonsense-field: 1\n\n"
    b"data\n\n"
    b"data: [DONE]\n\n"
    b"data: unterminated"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("line one\nline two", "error", "7", 30),
    SSEEvent("x\ny", "message", "7", 30),
    SSEEvent("", "message", "7", 30),
    SSEEvent("[DONE]", "message", "7", 30),
]


def decode(pieces):
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.close(), decoder


def test_sse_decoder_spec_cases():
    events, decoder = decode([STREAM])
    assert events == EXPECTED
    assert events[-1].done and decoder.comments == 1 and decoder.pending  # "data: unterminated" is dropped


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_sse_decoder_any_split_gives_the_same_events(cuts):
    bounds = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *bounds], [*bounds, len(STREAM)])]
    assert decode(pieces)[0] == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab:\r\n é", max_size=8), max_size=8), st.data())
def test_sse_decoder_split_invariance_on_arbitrary_text(lines, data):
    raw = "".join(lines).encode()
    whole = decode([raw])[0]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    assert decode(pieces)[0] == whole


def test_crlf_split_across_reads_is_one_line_end():
    events, _ = decode([b"data: a\r", b"\n\r", b"\n"])
    assert events == [SSEEvent("a")]


# ---------------------------------------------------------------- stream accumulator


def chunk(content=None, finish=None, usage=None, role=False):
    delta = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    payload = {"object": "chat.completion.chunk", "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        payload["usage"] = usage
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def test_accumulator_ttft_itl_usage_and_done():
    acc = StreamAccumulator("openai-chat")
    acc.feed(chunk(role=True), 1.0)  # role only: not content
    acc.feed(chunk("Hel"), 1.5)
    acc.feed(chunk("lo") + chunk("!", finish="stop")[:10], 1.75)  # the third event spans two reads
    acc.feed(chunk("!", finish="stop")[10:] + chunk(usage={"prompt_tokens": 4, "completion_tokens": 5}), 2.0)
    acc.feed(b"data: [DONE]\n\n", 2.25)
    s = acc.finish(2.25)
    assert s.ttft(1.0) == 0.5 and s.itl == [0.25, 0.25]
    assert (s.output_tokens, s.tokens_source, s.prompt_tokens, s.finish_reason, s.outcome) == (5, "usage", 4, "stop", COMPLETE)
    assert s.tpot(2.25) == pytest.approx((2.25 - 1.5) / 4)


OPENAI_STREAM = (
    chunk(role=True) + chunk("Hel") + b": ping\r\n\r\n" + chunk("lo", finish="stop").replace(b"\n\n", b"\r\n\r\n")
    + chunk(usage={"prompt_tokens": 2, "completion_tokens": 2}) + b"data: [DONE]\n\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(OPENAI_STREAM)), max_size=10))
def test_accumulator_any_split_gives_the_same_summary(cuts):
    bounds = sorted(set(cuts))
    acc = StreamAccumulator()
    for i, (a, b) in enumerate(zip([0, *bounds], [*bounds, len(OPENAI_STREAM)])):
        acc.feed(OPENAI_STREAM[a:b], float(i))
    s = acc.finish()
    assert (s.content_chunks, s.output_tokens, s.tokens_source, s.finish_reason, s.outcome, s.malformed) == (2, 2, "usage", "stop", COMPLETE, 0)
    assert len(s.itl) == 1 and s.itl[0] >= 0 and s.first_token_at is not None


def test_accumulator_counts_chunks_without_usage_and_flags_incomplete():
    acc = StreamAccumulator("openai-completions")
    for i in range(3):
        acc.feed(b'data: {"choices": [{"text": "t", "finish_reason": null}]}\n\n', float(i))
    s = acc.finish(3.0)
    assert (s.output_tokens, s.tokens_source, s.outcome) == (3, "chunks", INCOMPLETE)


def test_accumulator_error_event_and_error_data():
    acc = StreamAccumulator()
    acc.feed(chunk("a") + b'event: error\ndata: {"error": {"type": "server_error", "code": "server_error"}}\n\n', 1.0)
    assert acc.finish().outcome == ERROR
    acc = StreamAccumulator()
    acc.feed(b'data: {"error": {"message": "m", "code": "rate_limit_exceeded"}}\n\n', 1.0)
    s = acc.finish()
    assert s.outcome == ERROR and AnswerClassifier().classify_stream(200, {}, s).kind == RATE_LIMITED


def test_summarize_whole_completion():
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}], "usage": {"prompt_tokens": 2, "completion_tokens": 9}})
    s = summarize_completion(body.encode(), at=3.0)
    assert (s.output_tokens, s.tokens_source, s.finish_reason, s.outcome, s.ttft(1.0)) == (9, "usage", "length", COMPLETE, 2.0)


# ---------------------------------------------------------------- classification


def err(type_=None, code=None):
    return json.dumps({"error": {"message": "no key sk-secret leaks", "type": type_, "param": None, "code": code}}).encode()


@pytest.mark.parametrize(
    "status, headers, body, kind",
    [
        (200, {}, b"{}", SUCCESS),
        (429, {}, err("requests", "rate_limit_exceeded"), RATE_LIMITED),
        (429, {}, err("insufficient_quota", "insufficient_quota"), FAILURE),
        (400, {}, err("invalid_request_error"), VALIDATION),
        (422, {}, b"{}", VALIDATION),
        (500, {}, err("server_error", "server_error"), FAILURE),
        (502, {}, b"bad gateway", FAILURE),
        (503, {"X-Simrouter-Reason": "queue-full"}, err("server_overloaded", "queue_full"), QUEUE_FULL),
        (503, {}, err("service_unavailable"), BREAKER_REJECTED),
        (504, {}, err("timeout", "timeout"), TIMEOUT),
        (401, {}, err("invalid_request_error", "invalid_api_key"), UNEXPECTED_STATUS),
    ],
)
def test_default_classification(status, headers, body, kind):
    assert AnswerClassifier().kind(status, headers, body) == kind


def test_answer_records_fields_retry_after_and_ratelimit_headers_not_the_message():
    headers = {"Retry-After": "3", "x-ratelimit-remaining-requests": "0", "X-RateLimit-Reset-Tokens": "6m0s", "Server": "x"}
    answer = AnswerClassifier().classify(429, headers, err("requests", "rate_limit_exceeded"))
    assert (answer.kind_name, answer.error_type, answer.error_code, answer.retry_after_s) == ("rate_limited", "requests", "rate_limit_exceeded", 3.0)
    assert answer.ratelimit == {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-tokens": "6m0s"}
    assert "sk-secret" not in repr(answer)
    assert AnswerClassifier().classify(429, [("retry-after-ms", "250"), ("Retry-After", "1")]).retry_after_s == 0.25


def test_simrouter_protocol_keeps_todays_defaults():
    assert AnswerClassifier(openai_rules=False).kind(400) == UNEXPECTED_STATUS
    assert AnswerClassifier(openai_rules=False).kind(503, {"x-simrouter-reason": "queue-full"}) == QUEUE_FULL


def test_retry_after_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_map_rules_on_body_fields_come_first_and_are_checked():
    c = AnswerClassifier(["429:error.code=insufficient_quota=rate_limited", "200=incomplete_stream"])
    assert c.kind(429, {}, err(code="insufficient_quota")) == RATE_LIMITED
    assert c.kind(200) == INCOMPLETE_STREAM and KIND_NAMES[INCOMPLETE_STREAM] == "incomplete_stream"
    assert c.kind(429, {}, b"not json") == RATE_LIMITED  # falls through to the defaults
    with pytest.raises(ConfigError, match="KIND one of"):
        AnswerClassifier(["429:error.code=x=nope"])
    with pytest.raises(ConfigError, match="HTTP status"):
        AnswerClassifier(["42:error.code=x=failures"])


def test_vllm_error_shape_is_read():
    body = json.dumps({"object": "error", "message": "m", "type": "BadRequestError", "code": 400}).encode()
    answer = AnswerClassifier(["400:error.type=BadRequestError=failures"]).classify(400, {}, body)
    assert (answer.kind, answer.error_type, answer.error_code) == (FAILURE, "BadRequestError", "400")
