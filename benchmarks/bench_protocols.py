"""Per-request cost of the protocol codecs the load generator will call (no network).

    .venv/bin/python benchmarks/bench_protocols.py [--n N]

Prints microseconds per request (best of 5 runs) for: encoding a chat request, decoding + accumulating
a 64-token streamed answer (one read per chunk, and the whole body in one read), and
classifying a 200 and a 429 with an error body; and, for scale on a loaded machine,
``json.loads`` of one chunk (the stream rows cost about 3-4 of those per chunk). Budget: at 1,000 req/s on one core
the codecs together should stay well under 1 ms per request.
"""

from __future__ import annotations

import argparse
import json
import time

from simrouter.config import scenario_from_dict
from simrouter.protocols.answers import AnswerClassifier
from simrouter.protocols.encode import RequestEncoder
from simrouter.protocols.stream import StreamAccumulator


def per_call_us(fn, n: int, repeats: int = 5) -> float:
    """Best of ``repeats`` runs of ``n`` calls (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    request = scenario_from_dict({"request": {"protocol": "openai-chat", "model": "m", "max_tokens": 64, "headers": {"Authorization": "Bearer ${K}"}}}).request
    encoder = RequestEncoder(request, environ={"K": "sk-x"}, prompts=[f"prompt {i}" for i in range(100)])
    chunks = [b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]}).encode() + b"\n\n" for _ in range(64)]
    chunks.append(b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":64}}\n\ndata: [DONE]\n\n')
    whole = b"".join(chunks)

    def stream_reads(i):
        acc = StreamAccumulator()
        for k, piece in enumerate(chunks):
            acc.feed(piece, float(k))
        acc.finish()

    def stream_one_read(i):
        acc = StreamAccumulator()
        acc.feed(whole, 0.0)
        acc.finish()

    classifier = AnswerClassifier()
    error = b'{"error": {"message": "m", "type": "requests", "code": "rate_limit_exceeded"}}'
    one_chunk = chunks[0][6:-2].decode()
    rows = [
        ("reference: json.loads of one chunk", per_call_us(lambda i: json.loads(one_chunk), n * 10)),
        ("encode chat request", per_call_us(lambda i: encoder.encode(i % 50, i), n * 10)),
        ("stream, 65 reads (64 tokens + usage/[DONE])", per_call_us(stream_reads, n)),
        ("stream, one read", per_call_us(stream_one_read, n)),
        ("classify 200", per_call_us(lambda i: classifier.kind(200), n * 10)),
        ("classify 429 with body and headers", per_call_us(lambda i: classifier.classify(429, {"Retry-After": "1"}, error), n * 10)),
    ]
    for name, us in rows:
        print(f"{name:48s} {us:8.2f} us")


if __name__ == "__main__":
    main()
