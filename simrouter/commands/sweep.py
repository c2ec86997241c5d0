"""``simrouter sweep FILE``: run a sweep file on local processes or Dask.

Writes the tidy table (one row per point and replication) to ``--out``
(``.csv`` or ``.parquet``) and the aggregated table (one row per point and
metric, with 95 % intervals) beside it as ``NAME.summary.csv|parquet``, and
prints the aggregated means.

While it runs, each completed run is appended to the checkpoint
``NAME.partial.csv`` beside ``--out``. A Ctrl-C (SIGTERM) writes the runs
completed so far to ``--out`` and its summary, removes the checkpoint and exits
with status 130 (143); a run killed outright leaves the checkpoint. ``--resume``
keeps the successful runs found in ``--out`` and the checkpoint (after checking
they belong to this sweep file) and runs only the others. A run that fails gets
an ``error`` in its row; the sweep goes on and exits with status 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import interrupts
from .common import EXIT_OK, EXIT_RUNS_FAILED, write_atomically

TABLE_SUFFIXES = (".csv", ".parquet")


def register(subparsers) -> None:
    from ..executors import EXECUTOR_KINDS

    parser = subparsers.add_parser("sweep", help="run a parameter sweep file (grid of overrides x replications) on processes or Dask")
    parser.add_argument("file", type=Path, help="the sweep file (TOML: scenario, [grid], [[points]], replications, metrics)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core)")
    parser.add_argument("--executor", choices=EXECUTOR_KINDS, default="processes", help="processes (default), dask (a LocalCluster unless --dask-address), or serial (this process)")
    parser.add_argument("--dask-address", metavar="tcp://HOST:PORT", help="an existing Dask scheduler to run on (with --executor dask)")
    parser.add_argument("--out", type=Path, metavar="PATH", help="write the tidy table to PATH (.csv or .parquet) and the aggregated one to PATH's stem + .summary")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --out (or its .partial.csv checkpoint) and run only the others")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..executors import check_executor_options, open_executor
    from ..sweepfile import load_sweep
    from ..sweeps import ERROR_COLUMN, SweepInterrupted, aggregate, sweep
    from .sweep_checkpoint import Checkpoint, checkpoint_path, resumed_runs

    check_executor_options(args.executor, args.workers, args.dask_address)
    if args.out is not None and args.out.suffix not in TABLE_SUFFIXES:
        raise ConfigError("--out", f"expected a file ending in {' or '.join(TABLE_SUFFIXES)}, got {str(args.out)!r}")
    if args.resume and args.out is None:
        raise ConfigError("--resume", "needs --out: the table of the interrupted sweep")
    spec = load_sweep(args.file)
    done = resumed_runs(args.out, spec) if args.resume else {}
    checkpoint = None
    if args.executor == "dask" and not args.dask_address:  # say where it listens (simrouter.executors)
        print(f"simrouter: dask: a LocalCluster of {args.workers or 1} worker(s) bound to 127.0.0.1 (scheduler and workers), dashboard off; --dask-address uses another cluster", file=sys.stderr)
    try:
        with open_executor(args.executor, args.workers, args.dask_address) as executor:
            checkpoint = Checkpoint(checkpoint_path(args.out), spec, done) if args.out is not None else None
            table = sweep(spec, executor=executor, progress=not args.no_progress, done=done, on_result=checkpoint.add if checkpoint else None)
    except SweepInterrupted as exc:
        if args.out is not None:
            written = write_tables(exc.partial, aggregate(exc.partial, spec), args.out)
            checkpoint.remove()
            print(f"simrouter: interrupted; kept {len(exc.partial)} of {spec.runs} runs in {', '.join(map(str, written))} (--resume runs the others)", file=sys.stderr)
        return interrupts.exit_status()
    summary = aggregate(table, spec)
    print_aggregate(summary, spec)
    if args.out is not None:
        written = write_tables(table, summary, args.out)
        checkpoint.remove()
        print("wrote " + ", ".join(map(str, written)))
    failed = table[table[ERROR_COLUMN] != ""] if ERROR_COLUMN in table.columns else table.iloc[:0]
    if len(failed):
        first = failed.iloc[0]
        print(
            f"simrouter: {len(failed)} of {spec.runs} runs failed (first: point {first['point']} replication {first['replication']}: "
            f"{first[ERROR_COLUMN]}); their rows have an error",
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return EXIT_OK


def summary_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.summary{out.suffix}")


def write_tables(table, summary, out: Path) -> list[Path]:
    """Write the tidy and aggregated tables as CSV or Parquet (by ``out``'s suffix), atomically."""
    paths = [out, summary_path(out)]
    for frame, path in zip((table, summary), paths):
        if path.suffix == ".parquet":
            write_atomically(path, lambda temporary, frame=frame: frame.to_parquet(temporary, index=False), "--out")
        else:
            write_atomically(path, lambda temporary, frame=frame: frame.to_csv(temporary, index=False), "--out")
    return paths


def print_aggregate(summary, spec) -> None:
    """The mean ± half-width of each metric, one row per point."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.name}: means of {spec.replications} replications (± 95 % half-width), seed {spec.seed}")
    for key in spec.keys:
        table.add_column(key, justify="right", overflow="fold")
    metrics = list(dict.fromkeys(summary["metric"]))
    for metric in metrics:
        table.add_column(metric, justify="right", overflow="fold")
    per_point = len(metrics)
    for start in range(0, len(summary), per_point):
        group = summary.iloc[start : start + per_point]
        cells = [str(group.iloc[0][key]) for key in spec.keys]
        cells += ["—" if row.mean != row.mean else _mean_pm(row.mean, row.half_width) for row in group.itertuples()]
        table.add_row(*cells)
    Console().print(table)


def _mean_pm(mean: float, half_width: float) -> str:
    text = f"{mean:.4g}"
    return text if half_width != half_width else f"{text} ± {half_width:.2g}"
