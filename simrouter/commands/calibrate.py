"""``simrouter calibrate --from live.json``: fit the backend latency, write a scenario.

``--fit step-time --from streams.json``: fit the LLM backend's ``step_time`` to a
streaming run's record (``simrouter live --streams``; ``simrouter.live.step_fit``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, seed_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser("calibrate", help="fit lognormal, gamma and empirical latency (and, from a streaming run, TTFT and TPOT) to a live run (or a sample file) and write a scenario")
    parser.add_argument(
        "--from", dest="source", required=True, type=Path, metavar="PATH",
        help="a live run's JSON (simrouter live --json) or a file of latencies, one per line; "
        "--fit step-time: a streaming run's record (simrouter live --streams PATH)",
    )
    parser.add_argument(
        "--fit", choices=("latency", "step-time"), default="latency",
        help="latency (default): backend.latency (and ttft/tpot) distributions; step-time: backend.model = \"llm\" "
        "and backend.step_time by least squares on the streams' inter-token gaps and first tokens against batch occupancy",
    )
    parser.add_argument("--tolerance", type=float, default=None, metavar="MS", help="--fit step-time: chunks closer than this are one step (default: 1/4 of the 5th percentile gap, at most 2)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N", help="--fit step-time: bootstrap resamples for the standard errors (default 200)")
    parser.add_argument("--unit", choices=("s", "ms"), default="s", help="unit of a sample file (default s)")
    parser.add_argument("--scenario", default=None, help="scenario to put the fit into (default: the live run's config, else the defaults)")
    parser.add_argument("--family", default="auto", choices=("auto", "lognormal", "gamma", "empirical"), help="use this family instead of the best fit")
    parser.add_argument("--out", type=Path, default=Path("calibrated.toml"), help="scenario TOML to write (default calibrated.toml)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the fit report as JSON")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the hold-out split, or of --fit step-time's bootstrap (default 0)")
    parser.add_argument(
        "--timeouts", type=int, default=None, metavar="N",
        help="N more requests timed out (known only to take longer than --timeout): fitted as right-censored "
        "(default: from a live JSON, its timeouts scaled to the sample; 0 for a sample file)",
    )
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="the timeout of --timeouts, seconds (default: the run's router.timeout)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.fit == "step-time":
        return handle_step_time(args)
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


def handle_step_time(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..live import stream_record
    from ..live.calibrate import base_scenario
    from ..live.step_fit import COEFFICIENTS, calibrated_llm_scenario, fit_step_time
    from .common import write_json

    if args.tolerance is not None and not args.tolerance >= 0:
        raise ConfigError("--tolerance", f"expected milliseconds >= 0, got {args.tolerance}")
    record = stream_record.read(args.source)
    fit = fit_step_time(record, tolerance=None if args.tolerance is None else args.tolerance / 1000.0, bootstrap=args.bootstrap, seed=args.seed)
    scenario = calibrated_llm_scenario(base_scenario(args.scenario, record.config), fit, args.out)
    title = (
        f"step_time fit to {fit.requests} streams: {fit.rows['itl']} decoding steps, {fit.rows['ttft']} first-token steps on an idle server "
        f"(non-negative least squares; bootstrap of {fit.bootstrap})"
    )
    table = Table(title=title)
    for column in ("coefficient", "value", "std. error", "95 % interval"):
        table.add_column(column, justify="left" if column == "coefficient" else "right")
    for name in COEFFICIENTS:
        value = fit.coefficients[name]
        if value is None:
            continue
        error, interval = fit.standard_errors[name], fit.intervals[name]
        table.add_row(name, f"{value:.4g}", "-" if error is None else f"{error:.2g}", "-" if interval is None else f"{interval[0]:.4g} .. {interval[1]:.4g}")
    Console().print(table)
    r = fit.residuals_ms
    by = ", ".join(f"{p} {v:.3f}" for p, v in fit.r2_by_population.items() if v is not None)
    print(f"R^2 {fit.r2:.4f} ({by}); residuals (observed - fitted step, ms): mean {r['mean']:+.3f}, sd {r['sd']:.3f}, P5 {r['p5']:+.3f}, P95 {r['p95']:+.3f}; RMS {r['relative_rms']:.1%} of the mean step")
    print(f"occupancy: {fit.occupancy['mean_emitting']:.1f} sequences emitting per step on average, at most {fit.occupancy['max_emitting']}")
    for note in fit.notes:
        print(f"note: {note}")
    print(f"wrote {args.out} (scenario {scenario.name!r}, backend.model = llm, backend.step_time = {fit.step_time})")
    if args.json is not None:
        write_json(fit.to_dict(), args.json)
    return EXIT_OK
