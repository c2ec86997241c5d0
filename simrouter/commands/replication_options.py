"""``--replications``, ``--precision`` and friends, for ``simrouter run``.

With any of them ``run`` simulates independent replications
(``simrouter.replications.replicate``) and reports means with 95 % intervals;
without them it runs once, as before. A Ctrl-C keeps the replications already
completed: they are written to ``--json`` (marked ``"interrupted": true``)
before the command exits with status 130.
"""

from __future__ import annotations

import argparse


def add_replication_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("replications (means and 95 % confidence intervals)")
    group.add_argument("--replications", type=int, metavar="R", help="run R independent replications of the seed and report their means and 95 %% t-intervals (with --precision: the first R, default 5)")
    group.add_argument("--precision", type=float, metavar="P", help="sequential stopping: add replications until each checked target's 95 %% half-width is within P of its mean (0.05 = 5 %%)")
    group.add_argument("--max-replications", type=int, metavar="N", help="with --precision: stop after N replications even if not precise enough (default 100)")
    group.add_argument("--precision-metric", action="append", metavar="KEY", help="with --precision: watch this figure (e.g. latency_ms.p95) instead of the targets' (repeatable)")


def replicated(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) is not None for name in ("replications", "precision", "max_replications", "precision_metric"))


def simulate_replicated(scenario, args: argparse.Namespace):
    """The ReplicatedResult the options ask for; on Ctrl-C, write what is done to --json."""
    from ..replications import ReplicationsInterrupted, replicate
    from .common import write_json

    from ..report.progress import progress_bar

    try:
        with progress_bar(None, f"{scenario.name}: replications") as advance:
            return replicate(
                scenario,
                seed=args.seed,
                replications=args.replications,
                precision=args.precision,
                max_replications=args.max_replications,
                precision_metrics=args.precision_metric,
                on_replication=lambda done, planned: advance(),
            )
    except ReplicationsInterrupted as exc:
        if exc.partial is not None and args.json is not None:
            write_json(exc.partial.to_dict(), args.json)
        raise


def replication_note(result) -> str:
    """One line saying what the dashboard's figures are."""
    text = (
        f"Means of {result.replications} replications (seed {result.seed}), latency percentiles pooled over all of them; "
        "± is the 95 % half-width (t-interval; sectioning for percentiles); targets are judged on these figures."
    )
    precision = result.precision
    if precision is not None:
        worst = max(precision["achieved"].items(), key=lambda item: item[1], default=(None, 0.0))
        verdict = "reached" if precision["converged"] else f"NOT reached after the maximum of {precision['max_replications']}"
        text += f"\nPrecision {precision['target']:.1%}: {verdict} with {result.replications} replications"
        if worst[0] is not None:
            text += f" (widest: {worst[0]} ±{worst[1]:.1%})"
        text += "."
    return text
