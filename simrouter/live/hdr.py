"""HdrHistogram latency summaries: 3 significant digits, mergeable across processes.

Latencies are recorded in whole microseconds from 1 us to one hour. A histogram
is written to JSON as its standard compressed base64 encoding (``encode``), which
any HdrHistogram implementation decodes; ``merge`` adds encoded histograms from
several generator processes before taking percentiles.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50, 90, 95, 99, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def histogram(latency_s: np.ndarray) -> HdrHistogram:
    """A histogram of latencies given in seconds."""
    hist = new_histogram()
    micros = np.clip(np.rint(np.asarray(latency_s) * 1e6), LOWEST_US, HIGHEST_US).astype(np.int64)
    values, counts = np.unique(micros, return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist()):
        hist.record_value(value, count)
    return hist


def stats(hist: HdrHistogram) -> dict:
    """P50/P90/P95/P99/P99.9, max, min, avg (ms) and count, like ``metrics.latency_stats``."""
    count = hist.get_total_count()
    keys = [f"p{p:g}".replace(".", "_") for p in PERCENTILES]
    if count == 0:
        return {**{k: None for k in keys}, "max": None, "min": None, "avg": None, "count": 0}
    ms = 1e-3
    values = hist.get_percentile_to_value_dict(list(PERCENTILES))  # one pass over the buckets
    figures = {k: values[p] * ms for k, p in zip(keys, PERCENTILES)}
    figures.update(max=hist.get_max_value() * ms, min=hist.get_min_value() * ms, avg=hist.get_mean_value() * ms, count=int(count))
    return figures


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def merge(encoded: list[str]) -> HdrHistogram:
    """One histogram from several encoded ones (e.g. one per generator process)."""
    total = new_histogram()
    for text in encoded:
        total.add(HdrHistogram.decode(text.encode("ascii")))
    return total
