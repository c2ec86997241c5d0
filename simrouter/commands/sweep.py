"""``simrouter sweep FILE``: run a sweep file on local processes or Dask.

Writes the tidy table (one row per point and replication) to ``--out``
(``.csv`` or ``.parquet``) and the aggregated table (one row per point and
metric, with 95 % intervals) beside it as ``NAME.summary.csv|parquet``, and
prints the aggregated means. A Ctrl-C writes the runs completed so far to the
same files and exits with status 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import EXIT_INTERRUPTED, EXIT_OK

TABLE_SUFFIXES = (".csv", ".parquet")


def register(subparsers) -> None:
    from ..executors import EXECUTOR_KINDS

    parser = subparsers.add_parser("sweep", help="run a parameter sweep file (grid of overrides x replications) on processes or Dask")
    parser.add_argument("file", type=Path, help="the sweep file (TOML: scenario, [grid], [[points]], replications, metrics)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core)")
    parser.add_argument("--executor", choices=EXECUTOR_KINDS, default="processes", help="processes (default), dask (a LocalCluster unless --dask-address), or serial (this process)")
    parser.add_argument("--dask-address", metavar="tcp://HOST:PORT", help="an existing Dask scheduler to run on (with --executor dask)")
    parser.add_argument("--out", type=Path, metavar="PATH", help="write the tidy table to PATH (.csv or .parquet) and the aggregated one to PATH's stem + .summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..executors import open_executor
    from ..sweepfile import load_sweep
    from ..sweeps import SweepInterrupted, aggregate, sweep

    if args.out is not None and args.out.suffix not in TABLE_SUFFIXES:
        raise ConfigError("--out", f"expected a file ending in {' or '.join(TABLE_SUFFIXES)}, got {str(args.out)!r}")
    spec = load_sweep(args.file)
    try:
        with open_executor(args.executor, args.workers, args.dask_address) as executor:
            table = sweep(spec, executor=executor, progress=not args.no_progress)
    except SweepInterrupted as exc:
        if args.out is not None:
            written = write_tables(exc.partial, aggregate(exc.partial, spec), args.out)
            print(f"simrouter: interrupted; kept {len(exc.partial)} of {spec.runs} runs in {', '.join(map(str, written))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = aggregate(table, spec)
    print_aggregate(summary, spec)
    if args.out is not None:
        written = write_tables(table, summary, args.out)
        print("wrote " + ", ".join(map(str, written)))
    return EXIT_OK


def summary_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.summary{out.suffix}")


def write_tables(table, summary, out: Path) -> list[Path]:
    """Write the tidy and aggregated tables as CSV or Parquet (by ``out``'s suffix)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out, summary_path(out)]
    for frame, path in zip((table, summary), paths):
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
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
