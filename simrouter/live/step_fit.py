"""Fit the LLM backend's ``step_time`` to what a client saw of a streaming run.

``fit_step_time(record)`` takes a ``StreamRecord`` (``simrouter.live.stream_record``:
per request its send, first-token arrival, the gaps between its content chunks,
prompt and output tokens) and fits ``backend.step_time`` of the simulator's
model (``simrouter.sim.llm_backend``)::

    step = base + per_prefill_token x prefill tokens in the step + per_decode_token x sequences emitting a token

**Reconstructing the steps.** A continuously batching server emits one token for
every running sequence at the end of each step, so the chunks of all streams
arrive in bursts, one per step. Every chunk arrival of the run is sorted and
consecutive arrivals closer than ``tolerance`` (default: 0.4 x the 5th percentile
of the gaps, so that bursts one short step apart stay apart while a client's
jitter of up to about half a step stays inside its burst) form one step's
burst. Per burst:

* ``emitting``: the chunks in it (one per sequence that emitted a token): the
  batch occupancy at that instant as the client sees it;
* ``prefill``: the prompt tokens of the requests whose *first* chunk is in it
  (the step that completes a prefill emits the first token: vLLM, and
  docs/llm.md). Approximation: a prompt prefilled in chunks over several steps
  (``max_num_batched_tokens``) is counted whole in its last one;
* its duration: the median of the gaps ending in it (each decoding sequence's
  gap is one step: the previous burst's end to this one's).

**Two populations of observations**, each a row of the least squares:

* ``itl``: each burst with at least one decoding sequence (one row per step,
  not per gap: a step of 40 sequences counts once, so the rows are about
  independent and the big batches do not dominate);
* ``ttft``: each burst of first tokens only that began on an *idle* server (no
  request of the record in the system at the previous burst): it started when
  the earliest of those requests reached the engine, so its duration is first
  token - that send - ``first_token_overhead``.

**first_token_overhead** is the request's own way to the engine and back
(network, HTTP, the router's policies, the first chunk's way out), which the
simulator does not model: reported (a prediction of live TTFT adds it), not
written. A request that joined a *busy* server (its first token's step and the
one before both had decoding sequences) reached the engine during the step
before its own, else it would have joined that one: its overhead lies in
(start of that step - send, end of that step - send]. The overhead taken is the
middle of the longest stretch that the most requests' bounds hold (a request
that waited for a slot, or a pause, only leaves its bound out), when at least
``MIN_OVERHEAD_REQUESTS`` requests give bounds; its resolution is the distance
of the sends nearest a step's start (sub-millisecond at a few requests per
second over a minute), its bootstrap over those requests. The ``ttft`` rows
then have it subtracted. On a server too rarely busy for that, the ``ttft``
rows (at least ``MIN_TTFT_ROWS``) carry a fourth regressor, 1 for them and 0
for ``itl``, whose coefficient is the overhead; with neither, it is not
measured and the ``ttft`` rows are left out.

**The fit** is non-negative least squares (``scipy.optimize.nnls``; a negative
cost has no meaning), the columns scaled to unit norm for conditioning,
trimmed: rows whose residual is more than ``TRIM`` robust standard
deviations from the median residual (1.4826 x the median absolute deviation of
the rows kept) are left out and the rest refitted, until the rows kept no
longer change (at most 5 rounds).
Those are steps the model's regressors cannot describe (a prompt prefilled in
chunks, counted whole in one step and not at all in the others; a pause of the
server or of the client's machine): a handful of them, with the leverage of a
10,000-token prefill, would otherwise move every coefficient. Their count is
reported (``rows.trimmed``).
Uncertainty: a bootstrap over the rows (``bootstrap`` resamples, seeded):
standard error (the resamples' sd) and the 2.5-97.5 % percentile interval per
coefficient. Quality: R^2 over all rows and per population, and the residuals
(observed - fitted step) in ms: mean, sd, P5/P50/P95, and their RMS relative to
the mean step. Without prompt counts (a server that reports no ``usage``),
``per_prefill_token`` is not identifiable: it is fixed at 0 and a note says so.

The record needs no server metrics: it is what any streaming client of any
endpoint sees (``/metrics`` of simrouter's serve is not used). What the fit
cannot see: requests of other clients sharing the server, and steps in which
only prefill chunks ran (no chunk arrived): both go into the residuals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from ..errors import ConfigError
from .stream_record import StreamRecord

COEFFICIENTS = ("base", "per_prefill_token", "per_decode_token", "first_token_overhead")
STEP_TIME = COEFFICIENTS[:3]
MIN_STEPS = 20  # itl rows needed for a fit
MIN_TTFT_ROWS = 5  # below this, no first_token_overhead column
MIN_OVERHEAD_REQUESTS = 20  # requests joining a busy server needed to measure first_token_overhead from them
TOLERANCE_SHARE = 0.4  # of the 5th percentile gap
TRIM = 5.0  # robust standard deviations


@dataclass(frozen=True)
class Steps:
    """The reconstructed steps, one row per observation (module docstring)."""

    end: np.ndarray  # s
    duration: np.ndarray  # s
    prefill: np.ndarray  # prompt tokens completing their prefill in the step (-1: some unknown)
    emitting: np.ndarray  # sequences emitting a token
    decoding: np.ndarray  # of which decoding (not first tokens)
    population: np.ndarray  # "itl" | "ttft"
    bursts: int  # bursts found (steps seen), observations or not
    tolerance_s: float
    overhead_bounds: np.ndarray  # (lower, upper] of first_token_overhead, per request joining a busy server

    def subset(self, keep: np.ndarray) -> "Steps":
        """These steps without the rows where ``keep`` is False."""
        return Steps(**{k: (v[keep] if isinstance(v, np.ndarray) and k != "overhead_bounds" else v) for k, v in vars(self).items()})


def _grouped_median(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per group id (NaN for an empty group)."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, groups))
    groups, values = groups[order], values[order]
    starts = np.searchsorted(groups, np.arange(n_groups), side="left")
    stops = np.searchsorted(groups, np.arange(n_groups), side="right")
    has = stops > starts
    low = (starts + (stops - 1 - starts) // 2)[has]
    high = (starts + (stops - starts) // 2)[has]
    out[has] = (values[low] + values[high]) / 2
    return out


def default_tolerance(record: StreamRecord) -> float:
    """``TOLERANCE_SHARE`` x the 5th percentile of the gaps (0 without gaps)."""
    gaps = record.itl[record.itl > 0]
    return float(TOLERANCE_SHARE * np.percentile(gaps, 5)) if gaps.size else 0.0


def reconstruct_steps(record: StreamRecord, tolerance: float | None = None) -> Steps:
    """The steps of the run as the chunk bursts show them (module docstring)."""
    tol = default_tolerance(record) if tolerance is None else float(tolerance)
    if not tol >= 0:
        raise ConfigError("--tolerance", f"expected seconds >= 0, got {tolerance}")
    times, owner = record.token_times()
    first = np.zeros(times.size, dtype=bool)
    first[np.concatenate([[0], np.cumsum(record.chunks)[:-1]]).astype(np.int64)] = True
    gap = np.full(times.size, np.nan)
    gap[~first] = record.itl
    order = np.argsort(times, kind="stable")
    times, owner, first, gap = times[order], owner[order], first[order], gap[order]
    burst = np.concatenate([[0], np.cumsum(np.diff(times) > tol)]) if times.size else np.empty(0, np.int64)
    n = int(burst[-1]) + 1 if times.size else 0
    end = _grouped_median(burst, times, n)
    decoding = np.bincount(burst[~first], minlength=n)
    firsts = np.bincount(burst[first], minlength=n)
    prompts = record.prompt[owner[first]]
    prefill = np.bincount(burst[first], weights=np.maximum(prompts, 0), minlength=n)
    unknown = np.bincount(burst[first], weights=(prompts < 0).astype(float), minlength=n) > 0
    prefill = np.where(unknown, -1.0, prefill)
    duration = _grouped_median(burst[~first], gap[~first], n)
    itl = (decoding > 0) & np.isfinite(duration) & (duration > 0)
    # Bursts of first tokens only that began on an idle server: nobody of the record in
    # the system at the previous burst (sent before it, last chunk after it).
    previous = np.concatenate([[-np.inf], end[:-1]])
    sends = np.sort(record.sent)
    lasts = np.sort(record.last_token())
    in_system = np.searchsorted(sends, previous, side="left") - np.searchsorted(lasts, previous + tol, side="right")
    own_first = np.full(n, np.inf)
    np.minimum.at(own_first, burst[first], record.sent[owner[first]])
    latest_send = np.full(n, -np.inf)
    np.maximum.at(latest_send, burst[first], record.sent[owner[first]])
    ttft = (decoding == 0) & (firsts > 0) & (in_system <= 0) & (own_first > previous) & (latest_send < end)
    # A request joining a busy server: its first token's step k began when step k - 1
    # ended, and it reached the engine during step k - 1 (else it would have joined
    # that one, or waited for a slot): overhead in (start of k - 1 - send, end of k - 1 - send].
    k = burst[first]
    busy = (k >= 1) & itl[np.maximum(k - 1, 0)] & (decoding[k] > 0)
    sent = record.sent[owner[first]][busy]
    before = k[busy] - 1
    bounds = np.column_stack([end[before] - duration[before] - sent, end[before] - sent])
    duration = np.where(ttft, end - own_first, duration)
    rows = itl | ttft
    return Steps(
        end=end[rows], duration=duration[rows], prefill=prefill[rows], emitting=(decoding + firsts)[rows], decoding=decoding[rows],
        population=np.where(ttft[rows], "ttft", "itl"), bursts=n, tolerance_s=tol, overhead_bounds=bounds,
    )


def overhead_from_bounds(bounds: np.ndarray) -> float | None:
    """The overhead consistent with the most requests' (lower, upper] bounds: the middle of
    the longest stretch where the most intervals overlap (None: no stretch holds half of them)."""
    if bounds.shape[0] == 0:
        return None
    points = np.concatenate([bounds[:, 0], bounds[:, 1]])
    steps = np.concatenate([np.ones(bounds.shape[0]), -np.ones(bounds.shape[0])])
    order = np.argsort(points, kind="stable")
    points, count = points[order], np.cumsum(steps[order])
    best = count[:-1].max() if count.size > 1 else 0
    if best < bounds.shape[0] / 2:
        return None
    stretches = np.flatnonzero(count[:-1] == best)
    widths = points[stretches + 1] - points[stretches]
    i = stretches[np.argmax(widths)]
    return float(max((points[i] + points[i + 1]) / 2, 0.0))


@dataclass(frozen=True)
class StepTimeFit:
    """The fitted coefficients (s, s per token), their uncertainty and the fit's quality."""

    coefficients: dict
    standard_errors: dict
    intervals: dict  # coefficient -> [2.5 %, 97.5 %] of the bootstrap
    r2: float
    r2_by_population: dict
    residuals_ms: dict
    rows: dict  # population -> count
    requests: int
    steps: Steps
    occupancy: dict  # emitting sequences per itl row: mean, max
    bootstrap: int
    notes: list = field(default_factory=list)

    @property
    def step_time(self) -> dict:
        """``backend.step_time`` as the scenario writes it."""
        return {name: float(self.coefficients[name]) for name in STEP_TIME}

    def to_dict(self) -> dict:
        return {
            "fit": "step_time = base + per_prefill_token x prefill tokens + per_decode_token x sequences emitting (non-negative least squares)",
            "coefficients": self.coefficients, "standard_errors": self.standard_errors, "ci95": self.intervals,
            "bootstrap": self.bootstrap, "r2": self.r2, "r2_by_population": self.r2_by_population, "residuals_ms": self.residuals_ms,
            "rows": self.rows, "requests": self.requests, "bursts": self.steps.bursts, "tolerance_ms": self.steps.tolerance_s * 1000.0,
            "occupancy": self.occupancy, "notes": list(self.notes),
        }


def _design(steps: Steps, prefill_known: bool, overhead: bool) -> tuple[np.ndarray, list[str]]:
    names = ["base"] + (["per_prefill_token"] if prefill_known else []) + ["per_decode_token"] + (["first_token_overhead"] if overhead else [])
    columns = {"base": np.ones(steps.duration.size), "per_prefill_token": steps.prefill, "per_decode_token": steps.emitting.astype(float),
               "first_token_overhead": (steps.population == "ttft").astype(float)}
    return np.column_stack([columns[n] for n in names]), names


def _nnls(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    solution, _ = nnls(design / norms, y)
    return solution / norms


def _trimmed_nnls(design: np.ndarray, y: np.ndarray, rounds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, rows kept): NNLS without the rows beyond ``TRIM`` robust sds of the
    residuals, judged again against each refit until the rows kept no longer change."""
    keep = np.ones(y.size, dtype=bool)
    solution = _nnls(design, y)
    floor = 1e-9 * float(np.abs(y).max())  # exact data: rounding is not an outlier
    for _ in range(rounds):
        residual = y - design @ solution
        centre = float(np.median(residual[keep]))
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - centre)))
        again = np.abs(residual - centre) <= max(TRIM * spread, floor)
        if np.array_equal(again, keep) or again.sum() < max(MIN_STEPS, 2 * design.shape[1]):
            break
        keep = again
        solution = _nnls(design[keep], y[keep])
    return solution, keep


def _r2(y: np.ndarray, fitted: np.ndarray) -> float | None:
    if y.size < 2:
        return None
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - fitted) ** 2).sum()) / total if total > 0 else None


def fit_step_time(record: StreamRecord, *, tolerance: float | None = None, bootstrap: int = 200, seed: int = 0) -> StepTimeFit:
    """Fit ``step_time`` to ``record`` (module docstring)."""
    if bootstrap < 0:
        raise ConfigError("--bootstrap", f"expected a whole number >= 0, got {bootstrap}")
    steps = reconstruct_steps(record, tolerance)
    notes = []
    known = steps.prefill >= 0
    prefill_known = bool(np.mean(known) > 0.5) if known.size else False
    if prefill_known and not known.all():
        notes.append(f"{int((~known).sum())} steps left out: a request completing its prefill there reported no prompt tokens")
        steps = steps.subset(known)
    if not prefill_known:
        notes.append("the server reported no prompt tokens (usage): per_prefill_token fixed at 0, its cost goes into base and per_decode_token")
    n_itl = int(np.count_nonzero(steps.population == "itl"))
    if n_itl < MIN_STEPS:
        raise ConfigError(
            "--from", f"found {n_itl} steps with decoding sequences in {len(record)} streams (at least {MIN_STEPS} needed): "
            "run longer, or with more output tokens per request",
        )
    rng = np.random.default_rng(seed)
    ttft_rows = steps.population == "ttft"
    # first_token_overhead: from the requests that joined a busy server, else from the idle-server rows' own column.
    overhead, overhead_draws, overhead_source = None, None, None
    bounds = steps.overhead_bounds
    if bounds.shape[0] >= MIN_OVERHEAD_REQUESTS:
        overhead = overhead_from_bounds(bounds)
    if overhead is not None:
        overhead_source = f"the {bounds.shape[0]} requests that joined a busy server"
        steps = replace(steps, duration=np.where(ttft_rows, steps.duration - overhead, steps.duration))
        if bootstrap >= 2:
            overhead_draws = np.array([overhead_from_bounds(bounds[rng.integers(0, bounds.shape[0], bounds.shape[0])]) or 0.0 for _ in range(bootstrap)])
    column = overhead is None and int(ttft_rows.sum()) >= MIN_TTFT_ROWS
    if overhead is None and not column and ttft_rows.any():
        notes.append(f"{int(ttft_rows.sum())} first-token steps on an idle server left out: first_token_overhead not measured "
                     f"(fewer than {MIN_OVERHEAD_REQUESTS} requests joined a busy server, fewer than {MIN_TTFT_ROWS} an idle one)")
        steps = steps.subset(~ttft_rows)
    if column:
        overhead_source = f"the {int(ttft_rows.sum())} first-token steps on an idle server"
    design, names = _design(steps, prefill_known, column)
    solution, kept = _trimmed_nnls(design, steps.duration)
    trimmed = int((~kept).sum())
    if trimmed:
        notes.append(f"{trimmed} of {kept.size} steps left out of the fit: residual beyond {TRIM:g} robust standard deviations")
    steps = steps.subset(kept)
    design, y = design[kept], steps.duration
    n_itl = int(np.count_nonzero(steps.population == "itl"))
    n_ttft = int(steps.population.size - n_itl)
    fitted = design @ solution
    draws = np.empty((bootstrap, len(names)))
    for b in range(bootstrap):
        pick = rng.integers(0, y.size, y.size)
        draws[b] = _nnls(design[pick], y[pick])
    coefficients = dict.fromkeys(COEFFICIENTS, 0.0)
    coefficients.update(zip(names, map(float, solution)))
    coefficients["first_token_overhead"] = overhead if overhead is not None else (coefficients["first_token_overhead"] if column else None)
    errors = dict.fromkeys(COEFFICIENTS)
    intervals = dict.fromkeys(COEFFICIENTS)
    if bootstrap >= 2:
        columns = list(zip(names, draws.T)) + ([("first_token_overhead", overhead_draws)] if overhead_draws is not None else [])
        for name, values in columns:
            errors[name] = float(values.std(ddof=1))
            intervals[name] = [float(v) for v in np.percentile(values, [2.5, 97.5])]
    if overhead_source:
        notes.append(f"first_token_overhead (not in the scenario: the simulator does not model it) measured from {overhead_source}")
    residual = (y - fitted) * 1000.0
    itl_rows = steps.population == "itl"
    return StepTimeFit(
        coefficients=coefficients,
        standard_errors=errors,
        intervals=intervals,
        r2=_r2(y, fitted),
        r2_by_population={p: _r2(y[steps.population == p], fitted[steps.population == p]) for p in ("itl", "ttft")},
        residuals_ms={
            "mean": float(residual.mean()), "sd": float(residual.std()),
            **{f"p{q}": float(v) for q, v in zip((5, 50, 95), np.percentile(residual, [5, 50, 95]))},
            "relative_rms": float(np.sqrt((residual**2).mean()) / (y.mean() * 1000.0)),
        },
        rows={"itl": n_itl, "ttft": n_ttft, "trimmed": trimmed, "overhead_requests": int(bounds.shape[0]) if overhead is not None else 0},
        requests=len(record),
        steps=steps,
        occupancy={"mean_emitting": float(steps.emitting[itl_rows].mean()), "max_emitting": int(steps.emitting[itl_rows].max())},
        bootstrap=bootstrap,
        notes=notes,
    )


def calibrated_llm_scenario(base, fit: StepTimeFit, out: Path):
    """Write ``base`` (a Scenario) with ``backend.model = "llm"`` and the fitted
    ``step_time`` (everything else kept) to ``out`` (TOML) and return it, re-read."""
    from ..config import load_scenario
    from .tomlfile import scenario_toml

    data = base.to_dict()
    data["backend"] = {**data.get("backend", {}), "model": "llm", "step_time": fit.step_time}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    c, se = fit.coefficients, fit.standard_errors
    shown = ", ".join(f"{n} {c[n]:.4g}" + (f" +/- {se[n]:.2g}" if se[n] is not None else "") for n in STEP_TIME)
    header = (
        f"calibrated by simrouter calibrate --fit step-time from {fit.requests} streams "
        f"({fit.rows['itl']} decoding steps, {fit.rows['ttft']} first-token steps on an idle server)\n"
        f"backend.step_time: {shown} (s; bootstrap standard errors), R^2 {fit.r2:.3f}"
    )
    overhead = c["first_token_overhead"]
    if overhead is not None:
        header += f"\nfirst_token_overhead {overhead * 1000:.2f} ms (measured, not modelled: simulated TTFT + this = the client's TTFT)"
    if base.backend.max_num_seqs < fit.occupancy["max_emitting"]:
        header += f"\nnote: up to {fit.occupancy['max_emitting']} sequences emitted in one step, above backend.max_num_seqs = {base.backend.max_num_seqs}"
    out.write_text(scenario_toml(data, header))
    return load_scenario(out)
