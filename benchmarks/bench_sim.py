"""simrouter's simulation speed and memory against a bare SimPy M/M/c queue (``make bench``).

One command, one process tree, one run. Four measurements; the speed ones are
repeated in alternating rounds and reported as medians, and every comparison is
a ratio of two figures measured in this same run (the machine is shared and
noisy, so absolute rates drift while paired ratios hold):

1. **M/M/8 at rho 0.8** (exponential service, mean 1 s, arrivals 6.4/s), the
   same number of requests through ``bare_simpy_mmc.run_mmc`` (one SimPy
   process per request, ``simpy.Resource``) and through ``simrouter.simulate``
   (open Poisson workload, no limiter, breaker, failures or timeout) including
   its summary. Goal: ratio >= 1.
2. **The full ``concurrent`` scenario scaled to 1,000,000 requests** (10 closed
   users x 100,000 requests; per-user token bucket, default breaker, 5 s router
   timeout, processing and validation failures, a 15 s outage and a 30 s 20x
   latency spike, every summary metric) against the bare queue processing
   1,000,000 requests. The users think 10 ms (exponential) between requests:
   with no think time a user rejected at once (breaker open, rate limited)
   resends at the same instant, so an outage would flush every remaining
   request in zero simulated time and the run would measure rejections only.
   Goal: ratio >= 1.
3. **Memory**: the same scenario at 10,000,000 requests in a subprocess (this
   script with ``--memory-child``), peak RSS from ``resource.getrusage``.
   Percentiles stay exact (17 bytes per request: two float64 and one int8
   column, no Python object per request). Goal: < 1 GiB.
4. **Sweep scaling**: a 16-point sweep (4 capacities x 4 limiter rates, 2
   replications, equal-sized runs) through ``simrouter.sweep`` on a process pool
   of 1 and of 2 workers, pool start-up included. Goal: >= 1.8x.

``--quick`` shrinks every size (seconds instead of minutes); ``--json PATH``
also writes the figures. Exit status 0 whether or not a goal is met.

    python benchmarks/bench_sim.py [--quick] [--rounds N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_simpy_mmc import run_mmc

import simrouter
from simrouter import BackendConfig, BreakerConfig, Exponential, Failures, LimiterConfig, RouterConfig, Scenario, WorkloadConfig, theory
from simrouter.executors import open_executor
from simrouter.sweepfile import sweep_from_dict

LAM, MU, C = 6.4, 1.0, 8  # M/M/8 at rho 0.8
USERS = 10
FULL_SET = [
    "duration=1e9",
    'workload.think_time={ dist = "exponential", mean = 0.01 }',
    "faults=[{ start = 600.0, end = 615.0, error_rate = 1.0 }, { start = 3000.0, end = 3030.0, latency_factor = 20.0 }]",
]
SIZES = {  # (M/M/8 requests, full-scenario requests, memory-run requests, sweep requests per run)
    "default": (200_000, 1_000_000, 10_000_000, 80_000),
    "quick": (50_000, 200_000, 1_000_000, 20_000),
}


def mmc_scenario(requests: int) -> Scenario:
    return Scenario(
        name="M/M/8",
        duration=1e9,
        workload=WorkloadConfig(model="open", rate=LAM, arrival="poisson", users=1, max_requests=requests),
        limiter=LimiterConfig(algorithm="none"),
        breaker=BreakerConfig(preset="none"),
        backend=BackendConfig(capacity=C, queue_limit=10**9, latency=Exponential(1.0 / MU), failures=Failures(0, 0, 0)),
        router=RouterConfig(timeout=math.inf),
    )


def full_scenario(requests: int) -> Scenario:
    return simrouter.load_scenario("concurrent", overrides=[f"workload.users={USERS}", f"workload.requests_per_user={requests // USERS}", *FULL_SET])


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def paired_rounds(rounds: int, baseline, candidate) -> dict:
    """Alternate ``baseline()`` and ``candidate()``; medians of their times and of
    the per-round speed ratios (baseline time / candidate time)."""
    base_times, cand_times, ratios, values = [], [], [], None
    for _ in range(rounds):
        base_time, base_value = timed(baseline)
        cand_time, cand_value = timed(candidate)
        base_times.append(base_time)
        cand_times.append(cand_time)
        ratios.append(base_time / cand_time)
        values = (base_value, cand_value)
    return {"baseline_s": statistics.median(base_times), "candidate_s": statistics.median(cand_times), "ratio": statistics.median(ratios), "ratios": ratios, "values": values}


def bench_mmc(requests: int, rounds: int) -> dict:
    scenario = mmc_scenario(requests)
    run = paired_rounds(rounds, lambda: run_mmc(requests, LAM, MU, C).mean(), lambda: simrouter.simulate(scenario, seed=1).summary["latency_ms"]["avg"] / 1000.0)
    bare_mean, sim_mean = run.pop("values")
    return {
        **run,
        "requests": requests,
        "baseline_rps": requests / run["baseline_s"],
        "simrouter_rps": requests / run["candidate_s"],
        "mean_response_s": {"bare": bare_mean, "simrouter": sim_mean, "theory": theory.mmc_response_mean(LAM, MU, C)},
    }


def bench_full(requests: int, rounds: int) -> dict:
    scenario = full_scenario(requests)
    run = paired_rounds(rounds, lambda: len(run_mmc(requests, LAM, MU, C)), lambda: simrouter.simulate(scenario, seed=1).to_dict())
    _, summary = run.pop("values")
    assert summary["requests"]["sent"] == requests, summary["requests"]
    return {
        **run,
        "requests": requests,
        "baseline_rps": requests / run["baseline_s"],
        "simrouter_rps": requests / run["candidate_s"],
        "outcomes": summary["requests"],
        "breaker_trips": summary["breaker"]["trips"],
        "recovery_s": summary["breaker"]["recovery_s"],
        "p99_ms": summary["latency_ms"]["p99"],
    }


def memory_child(requests: int) -> None:
    """Run in the subprocess: the full scenario at ``requests``; prints JSON."""
    before = _high_water_mib()
    wall, summary = timed(lambda: simrouter.simulate(full_scenario(requests), seed=1).to_dict())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"requests": summary["requests"]["sent"], "wall_s": wall, "peak_rss_mib": peak, "peak_rss_own_mib": _high_water_mib(),
                      "rss_before_run_mib": before, "p99_ms": summary["latency_ms"]["p99"]}))


def _high_water_mib() -> float | None:
    """This process's own peak RSS (VmHWM). ``ru_maxrss`` also keeps the parent's
    peak at the time of the fork, so the parent runs the memory child first, small."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def bench_memory(requests: int) -> dict:
    child = subprocess.run([sys.executable, __file__, "--memory-child", str(requests)], capture_output=True, text=True, check=True)
    return json.loads(child.stdout)


def sweep_spec(requests_per_run: int) -> dict:
    return {
        "name": "bench-sweep",
        "scenario": "concurrent",
        "seed": 1,
        "replications": 2,
        "metrics": ["latency_ms.p95", "throughput.rps", "error_rate"],
        "set": {"workload": {"users": USERS, "requests_per_user": requests_per_run // USERS}, "duration": 1e9},
        "grid": {"backend": {"capacity": [8, 12, 16, 24]}, "limiter": {"rate": [20.0, 50.0, 100.0, 200.0]}},
    }


def bench_sweep(requests_per_run: int, rounds: int) -> dict:
    spec = sweep_from_dict(sweep_spec(requests_per_run))
    assert len(spec.points) == 16

    others: dict[int, list[float]] = {1: [], 2: []}

    def on(workers: int):
        def run():
            machine, own, started = _machine_cpu_s(), _own_cpu_s(), time.perf_counter()
            with open_executor("processes", workers) as executor:
                table = simrouter.sweep(spec, executor=executor)
            wall = time.perf_counter() - started
            others[workers].append(max(0.0, (_machine_cpu_s() - machine) - (_own_cpu_s() - own)) / wall)
            return table

        return run

    run = paired_rounds(rounds, on(1), on(2))
    one, two = run.pop("values")
    return {**run, "points": len(spec.points), "runs": spec.runs, "requests_per_run": requests_per_run, "same_table": bool(one.equals(two)),
            "other_processes_cores": {f"{w} worker{'s' if w > 1 else ''}": statistics.median(v) for w, v in others.items()}}


def _machine_cpu_s() -> float:
    """CPU seconds every process on the machine has used (``/proc/stat``: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children (the pool's workers, once shut down)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def report_memory(memory: dict) -> tuple[str, tuple]:
    line = (f"memory: concurrent {memory['requests']:,} requests in a subprocess (run first, while this process is small): "
            f"peak RSS {memory['peak_rss_mib']:,.0f} MiB (goal < 1024; {memory['rss_before_run_mib']:,.0f} MiB before the run), "
            f"{memory['wall_s']:.1f} s, {memory['requests'] / memory['wall_s']:,.0f} req/s; exact percentiles")
    return line, ("peak RSS MiB, 10M-request run" if memory["requests"] >= 10**7 else "peak RSS MiB", memory["peak_rss_mib"], memory["peak_rss_mib"] < 1024)


def report_mmc(mmc: dict) -> tuple[str, tuple]:
    m = mmc["mean_response_s"]
    line = (f"M/M/8 rho 0.8, {mmc['requests']:,} requests: bare SimPy {mmc['baseline_rps']:,.0f} req/s, simrouter {mmc['simrouter_rps']:,.0f} req/s: "
            f"{mmc['ratio']:.2f}x (goal >= 1.0); mean response bare {m['bare']:.4f} s, simrouter {m['simrouter']:.4f} s, theory {m['theory']:.4f} s")
    return line, ("M/M/8: simrouter / bare SimPy", mmc["ratio"], mmc["ratio"] >= 1.0)


def report_full(full: dict) -> tuple[str, tuple]:
    line = (f"full router: concurrent {full['requests']:,} requests: simrouter {full['simrouter_rps']:,.0f} req/s vs bare SimPy M/M/8 "
            f"{full['baseline_rps']:,.0f} req/s on as many: {full['ratio']:.2f}x (goal >= 1.0); outcomes {full['outcomes']}, "
            f"breaker trips {full['breaker_trips']}, recovery {full['recovery_s']} s")
    return line, ("full concurrent scenario / bare SimPy", full["ratio"], full["ratio"] >= 1.0)


def report_sweep(sweep: dict) -> tuple[str, tuple]:
    line = (f"sweep: {sweep['points']} points x 2 replications ({sweep['runs']} runs of {sweep['requests_per_run']:,} requests): "
            f"1 worker {sweep['baseline_s']:.2f} s, 2 workers {sweep['candidate_s']:.2f} s: {sweep['ratio']:.2f}x (goal >= 1.8; rounds "
            f"{', '.join(f'{r:.2f}' for r in sweep['ratios'])}); same table: {sweep['same_table']}; other processes kept "
            f"{sweep['other_processes_cores']['2 workers']:.2f} of the {os.cpu_count()} cores busy during the 2-worker runs")
    return line, ("sweep: 2 workers / 1", sweep["ratio"], sweep["ratio"] >= 1.8)


SECTIONS = ("memory", "mmc", "full", "sweep")  # memory first: its subprocess inherits this process's peak RSS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds instead of minutes")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per speed comparison (default 5, quick 3)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these measurements (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    mmc_n, full_n, memory_n, sweep_n = SIZES["quick" if args.quick else "default"]
    rounds = args.rounds or (3 if args.quick else 5)
    runs = {
        "memory": (lambda: bench_memory(memory_n), report_memory),
        "mmc": (lambda: bench_mmc(mmc_n, rounds), report_mmc),
        "full": (lambda: bench_full(full_n, max(1, rounds - 2)), report_full),
        "sweep": (lambda: bench_sweep(sweep_n, rounds), report_sweep),
    }
    print(f"simrouter simulation benchmark ({'quick' if args.quick else 'default'} sizes, medians of {rounds} alternating rounds; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)", flush=True)
    figures, goals = {}, []
    for section in SECTIONS:
        if args.only and section not in args.only:
            continue
        measure, report = runs[section]
        figures[section] = measure()
        line, goal = report(figures[section])
        print(line, flush=True)
        goals.append(goal)
    print("\n| figure | value | goal met |\n|---|---|---|")
    for name, value, met in goals:
        print(f"| {name} | {value:,.2f} | {'yes' if met else 'NO'} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"quick": args.quick, "rounds": rounds, **figures}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
