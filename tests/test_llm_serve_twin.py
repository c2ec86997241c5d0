"""The live twin of the LLM backend: ``compare`` of simulated and live TTFT / ITL.

``simrouter compare`` starts ``serve --protocol openai`` (a subprocess on a free
loopback port) for an LLM scenario: the service runs the simulation's own
batching scheduler in real time (``simrouter.live.llm_engine``) and streams each
step's tokens; ``simrouter live`` sends the scenario's open Poisson workload
with openai-chat streaming; the scenario is simulated for 20 replications.

Load and step sizes (``TWIN``): 10 req/s for 30 s (about 280 measured
requests), prompts lognormal P50 200 / P99 1000 tokens, outputs exponential
with mean 20, ``max_num_seqs`` 32: about 13 sequences running on average
(mean_running / max_num_seqs ~ 0.4), hardly ever a queue. Steps are
50 ms + 50 us per prefill token + 0.5 ms per emitting sequence: ~64 ms at
that batch, so the event loop's timer granularity (~1 ms: epoll waits in whole
milliseconds) and loopback HTTP (~1 ms each way) are a few percent of a TTFT
(~110 ms) and of an ITL (~60 ms), even at a few times that overhead on a loaded
machine, and the ITL P95 (a step with a long prompt's prefill) is set by the
model, not by timer jitter.

The 10 % tolerance, and against what
------------------------------------
The service draws the same arrivals, tokens and outcomes as simulated
replication 0 (common random numbers: ``sim_paired``), so live minus paired is
what the real clock adds (HTTP, the loop, the timer), without the sampling
noise of one 300-request run: one run's TTFT P95 falls within +/- 16 % of the
pooled one (its prediction interval), ITL P95 +/- 15 %, more than the tolerance. The paired figure is
therefore held to 10 %: the engine keeps step timing honest when it is within
10 % of the exact timeline at P50 and P95 of TTFT and ITL. Measured on this
2-core machine (shared, load average 1.5-2.5; seeds 1, 2, 3): TTFT -1.6 to
+5.6 % (P50 +3.5 to +6 ms: loopback HTTP, the handler, the first step's lag;
a request may also miss or make a step boundary), ITL -3.2 to +2.4 %; the
service's steps ended 0.9 ms after their deadlines on average; against the
pooled percentiles, up to 13.5 % (seed 3's ITL P95: the run's own sampling
noise), every verdict "yes" (docs/llm.md).

The unpaired check is the table's own verdict: the live figure lies inside the prediction interval of one run around the pooled
simulated percentile (Bonferroni over the table's rows), i.e. not "no".
"""

from __future__ import annotations

import math

import pytest

from simrouter.config import scenario_from_dict
from simrouter.live.compare import compare
from simrouter.live.loadgen import LiveOptions

TOLERANCE = 0.10  # live vs paired replication 0 (module docstring)
COMPARED = ("ttft_ms.p50", "ttft_ms.p95", "itl_ms.p50", "itl_ms.p95")
REPLICATIONS = 20
TWIN = {
    "name": "llm-twin",
    "duration": 30.0,
    "warmup": 2.0,
    "workload": {
        "model": "open",
        "rate": 10.0,
        "users": 20,
        "tokens": {"prompt": {"dist": "lognormal", "p50": 200, "p99": 1000}, "output": {"dist": "exponential", "mean": 20}},
    },
    "limiter": {"algorithm": "none"},
    "breaker": {"preset": "none"},
    "backend": {
        "model": "llm",
        "max_num_seqs": 32,
        "max_num_batched_tokens": 2048,
        "step_time": {"base": 0.050, "per_prefill_token": 0.00005, "per_decode_token": 0.0005},
        "failures": {"processing": 0, "timeout": 0, "validation": 0},
    },
    "router": {"timeout": 30.0},
    "request": {"protocol": "openai-chat", "model": "m", "stream": True},
    "targets": {"p95_ms": math.inf, "p99_ms": math.inf},
}


@pytest.fixture(scope="module")
def comparison():
    return compare(scenario_from_dict(TWIN), seed=1, replications=REPLICATIONS, options=LiveOptions(handle_signals=False))


def test_every_live_request_streamed_its_tokens(comparison):
    summary = comparison.live.summary
    assert summary["requests"]["sent"] >= 200
    assert summary["requests"]["succeeded"] == summary["requests"]["sent"]
    tokens = summary["tokens"]
    assert tokens["source"] == "usage"
    # The same requests as replication 0: the service drew replication 0's tokens per arrival.
    assert tokens["output"] == comparison.sim_summaries[0]["tokens"]["output"]
    assert tokens["prompt"] == comparison.sim_summaries[0]["tokens"]["prompt"]


@pytest.mark.parametrize("metric", COMPARED)
def test_live_ttft_and_itl_within_10_percent_of_the_paired_simulation(comparison, metric):
    row = comparison.row(metric)
    assert row.live is not None and row.sim_paired is not None
    assert abs(row.live - row.sim_paired) <= TOLERANCE * row.sim_paired, (metric, row.live, row.sim_paired, comparison.service_overhead)


@pytest.mark.parametrize("metric", COMPARED)
def test_live_inside_the_pooled_prediction_interval(comparison, metric):
    row = comparison.row(metric)
    # The simulated figure is the pooled percentile, inside its own sectioning interval.
    assert row.ci_low <= row.sim_mean <= row.ci_high
    assert row.verdict != "no", (metric, row)


def test_service_overhead_is_reported(comparison):
    overhead = comparison.service_overhead
    assert overhead["step_lag_ms"]["mean"] is not None and overhead["step_lag_ms"]["mean"] >= 0
    assert set(overhead["live_minus_paired_ms"]) >= set(COMPARED)
    assert any(note.startswith("service overhead:") for note in comparison.live.notes)
