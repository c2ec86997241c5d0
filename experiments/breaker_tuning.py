"""How long should the breaker stay open, and after how many failures should it trip?

The ``breaker-failure`` scenario (150 req/s, the backend fails every call from
30 s to 45 s) swept over ``breaker.open_duration`` (the wait before a probe) and
``breaker.failure_threshold`` (consecutive failures that trip it). For each
setting, replicated with common random numbers:

* ``breaker.recovery_s``: from the end of the outage until the breaker closed
  for good (the target is < 60 s);
* ``requests.breaker_rejected``: requests refused while it was open, most of
  them *after* the backend had healed when the wait is long;
* ``requests.failures``: failed backend calls over the run: the background
  0.2 %, plus those before the trip and every failed probe during the outage.

A short wait recovers fast but lets a failed probe through every wait during
the outage; a long wait protects the backend and turns healthy traffic away.

Writes ``breaker_tuning.csv`` (the aggregated sweep) and ``breaker_tuning.png``.

    python experiments/breaker_tuning.py            # well under a minute on 2 cores
    python experiments/breaker_tuning.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Panel, parse_args, plot_panels, run_sweep, save  # noqa: E402

NAME = "breaker_tuning"
METRICS = ["breaker.recovery_s", "requests.breaker_rejected", "requests.failures", "breaker.trips", "error_rate"]
GRID = {"breaker": {"failure_threshold": [2, 5, 8], "open_duration": [2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0]}}
QUICK_GRID = {"breaker": {"failure_threshold": [2, 8], "open_duration": [5.0, 30.0, 60.0]}}
RECOVERY_TARGET_S = 60.0

PANELS = [
    Panel("breaker.recovery_s", "recovery after the outage, s", target=RECOVERY_TARGET_S),
    Panel("requests.breaker_rejected", "requests rejected by the open breaker"),
    Panel("requests.failures", "failed backend calls"),
]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(__doc__.splitlines()[0], argv, replications=10)
    spec, summary = run_sweep({"name": NAME, "scenario": "breaker-failure", "metrics": METRICS, "grid": QUICK_GRID if args.quick else GRID}, args)
    recovery = summary[summary["metric"] == "breaker.recovery_s"]
    print(recovery[["breaker.failure_threshold", "breaker.open_duration", "mean", "ci_low", "ci_high", "n"]].to_string(index=False))

    title = f"Breaker settings in a 15 s outage at 150 req/s ({spec.replications} replications a point)"
    save(summary, plot_panels(summary, "breaker.open_duration", "breaker.failure_threshold", "breaker.open_duration, s", title, PANELS), args.out, NAME)
    return summary


if __name__ == "__main__":
    main()
