"""The built-in ``failover`` scenario, replication by replication, with and without fallbacks.

West fails every call in [30, 90) s. Per replication and per ``router.max_fallbacks``
(2, the scenario's, and 0): the success rate of the measured requests, west's share of
the attempts routed in [36, 90) s (after its first cooldown: only the attempts that
trip it again) and in [95, 150) s (after the fault and its cooldown), and west's
breaker recovery (s after the fault's end). Writes ``failover_outage.csv`` and a
PNG of the success rates.

    python experiments/failover_outage.py --replications 6
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import simrouter
from common import new_figure, parse_args, save

WEST = 1


def west_share(result, t0: float, t1: float) -> float:
    """West's share of the attempts routed (to some deployment) with send time in [t0, t1)."""
    log = result.attempt_log
    routed = (log.sent >= t0) & (log.sent < t1) & (log.deployment >= 0)
    return np.count_nonzero(log.deployment[routed] == WEST) / np.count_nonzero(routed)


def run(args) -> pd.DataFrame:
    rows = []
    for fallbacks in (2, 0):
        for replication in range(args.replications):
            result = simrouter.simulate("failover", seed=args.seed, replication=replication, overrides=[f"router.max_fallbacks={fallbacks}"])
            s = result.summary
            rows.append({
                "max_fallbacks": fallbacks,
                "replication": replication,
                "success": s["requests"]["succeeded"] / s["requests"]["sent"],
                "west_share_outage": west_share(result, 36.0, 90.0),
                "west_share_after": west_share(result, 95.0, 150.0),
                "west_recovery_s": s["deployments"][WEST]["breaker"]["recovery_s"],
                "passed": result.passed,
            })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv, replications=6)
    table = run(args)
    figure, (axes,) = new_figure(1, "failover: west down 30-90 s")
    for fallbacks, group in table.groupby("max_fallbacks"):
        axes.plot(group["replication"], group["success"] * 100, "o-", label=f"max_fallbacks = {fallbacks}")
    axes.set(xlabel="replication", ylabel="success (%)")
    axes.legend()
    save(table, figure, args.out, "failover_outage")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
