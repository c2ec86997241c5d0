"""simrouter's start-up cost as a whole process (``make bench-startup``).

Three commands, each a fresh interpreter, timed from spawn to exit (wall time):

* ``python -c pass``: the interpreter alone, the baseline every figure is set against;
* ``python -c "import simrouter"``: the package and everything it imports;
* ``python -m simrouter run baseline --json OUT``: the shortest real use (the
  built-in ``baseline`` scenario simulated, its dashboard printed, its JSON written).

The three are run in alternating rounds (the machine is shared and noisy, so
every round measures all three under the same load) and reported as medians,
with each command's excess over the bare interpreter and the ratio to it.
Goal: ``simrouter run baseline`` under 0.5 s as a whole process.

    python benchmarks/bench_startup.py [--rounds N] [--json out.json]

It times the ``simrouter`` importable from this interpreter (set ``PYTHONPATH``
to time another checkout). Exit status 0 whether or not the goal is met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_RUN_S = 0.5


def commands(json_out: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "import simrouter": [python, "-c", "import simrouter"],
        "simrouter run baseline": [python, "-m", "simrouter", "run", "baseline", "--json", str(json_out)],
    }


def wall_time(argv: list[str]) -> float:
    """Seconds from spawning ``argv`` to its exit (output discarded); it must succeed."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        argvs = commands(Path(tmp) / "baseline.json")
        times: dict[str, list[float]] = {name: [] for name in argvs}
        for argv in argvs.values():  # warm the file cache and bytecode once, untimed
            wall_time(argv)
        for _ in range(rounds):
            for name, argv in argvs.items():
                times[name].append(wall_time(argv))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9; medians reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    times = measure(args.rounds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    bare = medians["python -c pass"]
    print(f"Whole-process wall time, median of {args.rounds} rounds ({sys.executable})")
    print(f"{'command':<26s}{'median s':>10s}{'min s':>8s}{'over bare s':>13s}{'x bare':>8s}")
    for name, values in times.items():
        print(f"{name:<26s}{medians[name]:10.3f}{min(values):8.3f}{medians[name] - bare:13.3f}{medians[name] / bare:8.2f}")
    run = medians["simrouter run baseline"]
    verdict = "met" if run < GOAL_RUN_S else "NOT met"
    print(f"\nGoal: simrouter run baseline < {GOAL_RUN_S} s: {run:.3f} s, {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "median_s": medians, "times_s": times, "goal_s": GOAL_RUN_S}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
