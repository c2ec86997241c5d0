"""``simrouter calibrate --from live.json``: fit the backend latency, write a scenario."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, seed_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser("calibrate", help="fit lognormal, gamma and empirical latency (and, from a streaming run, TTFT and TPOT) to a live run (or a sample file) and write a scenario")
    parser.add_argument("--from", dest="source", required=True, type=Path, metavar="PATH", help="a live run's JSON (simrouter live --json) or a file of latencies, one per line")
    parser.add_argument("--unit", choices=("s", "ms"), default="s", help="unit of a sample file (default s)")
    parser.add_argument("--scenario", default=None, help="scenario to put the fit into (default: the live run's config, else the defaults)")
    parser.add_argument("--family", default="auto", choices=("auto", "lognormal", "gamma", "empirical"), help="use this family instead of the best fit")
    parser.add_argument("--out", type=Path, default=Path("calibrated.toml"), help="scenario TOML to write (default calibrated.toml)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the fit report as JSON")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the hold-out split (default 0)")
    parser.add_argument(
        "--timeouts", type=int, default=None, metavar="N",
        help="N more requests timed out (known only to take longer than --timeout): fitted as right-censored "
        "(default: from a live JSON, its timeouts scaled to the sample; 0 for a sample file)",
    )
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="the timeout of --timeouts, seconds (default: the run's router.timeout)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..live.calibrate import MIN_SAMPLE, QUANTILES, Censoring, base_scenario, calibrate, calibrated_scenario, read_censoring, read_sample, read_token_samples
    from .common import write_json

    sample, config = read_sample(args.source, args.unit)
    censoring = read_censoring(args.source, int(sample.size)) if config is not None else Censoring()
    if args.timeouts is not None or args.timeout is not None:
        timeout = args.timeout
        if timeout is None:
            timeout = ((config or {}).get("router") or {}).get("timeout")
            if timeout is None:
                raise ConfigError("--timeout", "expected the timeout (seconds) of --timeouts: the sample has no run config to take router.timeout from")
        censoring = Censoring(censoring.count if args.timeouts is None else args.timeouts, float(timeout))
    calibration = calibrate(sample, seed=args.seed, family=args.family, censored=censoring.count, censor_at=censoring.at)
    tokens = {}
    if config is not None:
        for name, values in read_token_samples(args.source).items():
            if values.size >= MIN_SAMPLE:
                tokens[name] = calibrate(values, seed=args.seed, family=args.family)
            elif values.size:
                print(f"note: backend.{name} not fitted: {values.size} samples, at least {MIN_SAMPLE} needed")
    scenario = calibrated_scenario(base_scenario(args.scenario, config), calibration, args.out, tokens)
    censored = f" and {censoring.count} timeouts > {censoring.at:g} s (censored)" if censoring.count else ""
    title = f"latency fit to {calibration.sample_size} samples{censored} (fit error: hold-out Kolmogorov-Smirnov distance; KS p: test on the whole sample)"
    table = Table(title=title)
    table.add_column("family")
    table.add_column("fit error", justify="right")
    table.add_column("KS p", justify="right")
    for q in QUANTILES:
        table.add_column(f"P{q} err", justify="right")
    table.add_column("parameters")
    for fit in calibration.fits:
        mark = " (chosen)" if fit is calibration.best else ""
        spec = fit.to_dict()["spec"]
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.items() if k != "dist")
        pvalue = "-" if fit.ks_pvalue is None else f"{fit.ks_pvalue:.3f}"
        errors = (fit.quantile_errors[f"p{q}"] for q in QUANTILES)
        table.add_row(fit.family + mark, f"{fit.ks_holdout:.4f}", pvalue, *("> timeout" if e is None else f"{e:+.1%}" for e in errors), params)
    Console().print(table)
    if censoring.count:
        observed = censoring.count / (calibration.sample_size + censoring.count)
        fitted = ", ".join(f"{f.family} {f.censored_fraction:.1%}" for f in calibration.fits if f.family != "empirical")
        print(f"over the timeout: {observed:.1%} observed; fitted {fitted}")
        if calibration.best.family == "empirical":
            print("note: the empirical fit cannot go beyond the timeout: its tail is cut there (both parametric families were rejected)")
    for name, fitted in tokens.items():
        spec = fitted.best.to_dict()["spec"]
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.items() if k != "dist")
        print(f"backend.{name}: {fitted.best.family} ({params}) from {fitted.sample_size} samples, hold-out KS {fitted.best.ks_holdout:.4f}")
    written = ", ".join([f"backend.latency = {calibration.best.family}"] + [f"backend.{name} = {fitted.best.family}" for name, fitted in tokens.items()])
    print(f"wrote {args.out} (scenario {scenario.name!r}, {written})")
    if args.json is not None:
        write_json({**calibration.to_dict(), **{name: fitted.to_dict() for name, fitted in tokens.items()}}, args.json)
    return EXIT_OK
