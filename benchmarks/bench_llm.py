"""Speed of the LLM backend (sim/llm_backend.py): one hour of chat traffic.

One hour of open Poisson traffic at 10 req/s (36,000 requests), prompts
lognormal (P50 400, P99 3000 tokens), outputs exponential with mean 150 tokens
(about 5.4M output tokens), into one vLLM-like server (max_num_seqs 64,
max_num_batched_tokens 8192, step_time 6 ms + 20 us per prefill token + 0.1 ms
per decoding sequence), summary included. Measured against the delay model
(``backend.model`` unset: the fast engine, the default latency, 64 slots) on
the same arrivals (same seed: the arrival stream is the same), in alternating
rounds, medians reported; the ratio is the figure to watch (the machine is
shared and noisy). Goal: the LLM run under 10 s on one core.

    python benchmarks/bench_llm.py [--rounds N] [--hours H] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import simrouter

GOAL_S = 10.0


def overrides(hours: float, llm: bool) -> list[str]:
    common = [
        'workload.model="open"', "workload.rate=10", f"duration={3600 * hours}", "workload.users=100",
        'limiter.algorithm="none"', "router.timeout=60", "backend.capacity=64",
        'workload.tokens.prompt={dist="lognormal", p50=400, p99=3000}', 'workload.tokens.output={dist="exponential", mean=150}',
    ]
    if not llm:
        return common
    return [*common, 'backend.model="llm"', "backend.max_num_seqs=64", "backend.max_num_batched_tokens=8192",
            "backend.step_time={base=0.006, per_prefill_token=0.00002, per_decode_token=0.0001}"]


def timed(hours: float, llm: bool) -> tuple[float, float, dict]:
    """(wall s, CPU s of this process, summary): on a shared machine the CPU time is
    what one core spent, the wall time includes waiting for it."""
    started, cpu = time.perf_counter(), time.process_time()
    result = simrouter.simulate("baseline", seed=1, overrides=overrides(hours, llm))
    summary = result.summary
    return time.perf_counter() - started, time.process_time() - cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    llm_s, delay_s, llm_cpu = [], [], []
    summary = None
    for _ in range(args.rounds):
        wall, cpu, summary = timed(args.hours, llm=True)
        llm_s.append(wall)
        llm_cpu.append(cpu)
        delay_s.append(timed(args.hours, llm=False)[0])
    llm_wall, delay_wall = statistics.median(llm_s), statistics.median(delay_s)
    tokens = summary["tokens"]["output"]
    figures = {
        "requests": summary["requests"]["sent"],
        "output_tokens": tokens,
        "steps": summary["batch"]["steps"],
        "llm_wall_s": llm_wall,
        "llm_cpu_s": statistics.median(llm_cpu),
        "delay_wall_s": delay_wall,
        "ratio_llm_over_delay": llm_wall / delay_wall,
        "output_tokens_per_wall_s": tokens / llm_wall,
        "steps_per_wall_s": summary["batch"]["steps"] / llm_wall,
        "goal_s": GOAL_S * args.hours,
        "goal_met": llm_wall < GOAL_S * args.hours,
    }
    for key, value in figures.items():
        print(f"{key:>26}: {value:,.3f}" if isinstance(value, float) else f"{key:>26}: {value}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
