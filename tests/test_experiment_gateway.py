"""The gateway-strategies experiment runs (``--quick``), saves its CSV and PNG, and
orders the strategies as queueing theory says it must."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


@pytest.fixture(scope="module")
def quick_table(tmp_path_factory):
    """The experiment's quick run (seed 1, 2 replications of 40 s per strategy), once."""
    out = tmp_path_factory.mktemp("gateway_strategies")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXPERIMENTS))
        module = importlib.import_module("gateway_strategies")
        table = module.main(["--quick", "--workers", "2", "--out", str(out)])
    return module, table.set_index("strategy"), out


def test_it_writes_the_csv_and_a_real_plot(quick_table):
    module, table, out = quick_table
    csv, png = out / f"{module.NAME}.csv", out / f"{module.NAME}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    written = pd.read_csv(csv).set_index("strategy")
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    assert list(table.index) == list(module.ROUTING_STRATEGIES)
    for column in ("mean_ms", "p95_ci_low", "p99_ci_high", "error_rate", "share_small", "share_small_ci_low"):
        assert column in table.columns


def test_weighted_random_routing_is_independent_mmc_queues(quick_table):
    # Weights proportional to capacity split the Poisson stream into Poisson streams:
    # deployment i is M/M/c_i at utilisation 0.8 (Erlang C). 15 %: the spread of this
    # quick run's estimate over seeds was within 12 %.
    module, table, _ = quick_table
    row = table.loc["simple-shuffle"]
    assert row["mean_ci_low"] <= row["theory_mean_ms"] <= row["mean_ci_high"]
    assert row["mean_ms"] == pytest.approx(row["theory_mean_ms"], rel=0.15)
    assert row["p95_ms"] == pytest.approx(row["theory_p95_ms"], rel=0.15)
    assert row["error_rate"] == 0.0
    for name, slots in module.DEPLOYMENTS:
        assert row[f"share_{name}"] == pytest.approx(slots / module.TOTAL_SLOTS, abs=0.02)


def test_round_robin_has_exact_shares_and_beats_random_routing(quick_table):
    # Round-robin gives each deployment regular arrivals (the 2-slot one every 11th
    # request): GI/M/c with less variable gaps than Poisson waits less.
    module, table, _ = quick_table
    row = table.loc["round-robin"]
    for name, slots in module.DEPLOYMENTS:
        assert row[f"share_{name}"] == pytest.approx(slots / module.TOTAL_SLOTS, abs=0.002)
    assert row["mean_ms"] < 0.95 * table.loc["simple-shuffle", "mean_ms"]


def test_usage_based_routing_ignores_capacity_and_overloads_the_small_deployment(quick_table):
    # Lowest requests this minute: every deployment gets a quarter, 88 req/s, and the
    # 2-slot one serves at most 40 req/s: its queue grows for the whole run.
    module, table, _ = quick_table
    row = table.loc["usage-based"]
    for name, _ in module.DEPLOYMENTS:
        assert row[f"share_{name}"] == pytest.approx(0.25, abs=0.005)
    assert row["mean_ms"] > 10 * table.loc["simple-shuffle", "mean_ms"]


def test_failover_outage_fallbacks_carry_the_outage(tmp_path, capsys):
    """``experiments/failover_outage.py``: per replication, fallbacks lift success above
    the run without them (99.8-99.9 % against 99.2-99.4 % over 6 replications), and
    west's share drops to about 1 % during the outage and comes back to about 1/3."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXPERIMENTS))
        module = importlib.import_module("failover_outage")
        assert module.main(["--replications", "2", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    table = pd.read_csv(tmp_path / "failover_outage.csv")
    with_fallbacks = table[table.max_fallbacks == 2].set_index("replication")
    without = table[table.max_fallbacks == 0].set_index("replication")
    assert (with_fallbacks.success > without.success + 0.004).all()
    assert (table.west_share_outage < 0.02).all()
    assert table.west_share_after.between(0.28, 0.39).all()
    assert (tmp_path / "failover_outage.png").stat().st_size > 5000
