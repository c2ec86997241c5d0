"""Interrupts and crashes: completed work is written, statuses are documented, sweeps resume.

Real signals go to real processes (``subprocess.Popen``), each waited on with a bounded
timeout, only after a marker says work has completed:

* ``run --replications``: SIGINT -> 130, SIGTERM -> 143, and the JSON holds every
  replication completed. The marker is a line per completed replication, printed by a
  three-line wrapper around ``simrouter.cli.main`` (``MARKED_RUN``), since the
  command itself prints nothing until it ends;
* ``sweep`` (two worker processes): the marker is the checkpoint ``NAME.partial.csv``
  growing; after the signal the table holds every completed run, the checkpoint is
  gone, the workers are gone, and ``--resume`` runs only the rest, ending with the
  same table as an uninterrupted sweep;
* ``live``: SIGINT once the service has answered some requests -> 130, and the JSON
  counts every request (in flight ones as ``interrupted``).

A point that raises (``crashing_point``, put in place of ``sweeps.point_metrics``; the
worker processes are forked, so they see it) is marked failed with its error and the
sweep completes, on the serial executor and on processes; a worker process that dies
outright fails the runs it takes with it, and the sweep still completes.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import simrouter.sweeps as sweeps_module
from simrouter.cli import EXIT_RUNS_FAILED, main
from simrouter.live.service_thread import serving
from simrouter.sweepfile import load_sweep
from simrouter.sweeps import ERROR_COLUMN, aggregate, completed_runs, sweep

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
WAIT = 60  # seconds: the most any process here may take to finish after its signal

MARKED_RUN = """
import sys, simrouter.replications as r
real = r.replication_output
def marked(*args):
    output = real(*args)
    print("replication done", flush=True)
    return output
r.replication_output = marked
from simrouter.cli import main
sys.exit(main(sys.argv[1:]))
"""


def interrupt(command: list[str], ready, sig: int):
    """Start ``command``, let ``ready(process)`` wait for its marker, send ``sig``:
    (exit status, stdout, stderr, seconds from the signal to the exit)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready(process)
        signalled = time.monotonic()
        process.send_signal(sig)
        out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out, err, time.monotonic() - signalled


def wait_for(condition, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- run --replications


@pytest.mark.parametrize("sig, status", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_run_replications_writes_the_completed_ones_on_a_signal(tmp_path, sig, status):
    out = tmp_path / "partial.json"
    command = [sys.executable, "-c", MARKED_RUN, "run", "breaker-failure", "--replications", "400", "--json", str(out), "--set", "duration=20"]

    def three_done(process):
        for _ in range(3):
            assert process.stdout.readline() == "replication done\n"

    code, rest, err, _ = interrupt(command, three_done, sig)
    assert code == status, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "simrouter: interrupted"
    markers = 3 + rest.count("replication done")
    data = json.loads(out.read_text())
    # A replication that finished as the signal came may be lost, never one from before.
    assert markers - 1 <= data["replications"] <= markers
    assert data["interrupted"] is True and len(data["replications_detail"]) == data["replications"]
    assert [d["replication"] for d in data["replications_detail"]] == list(range(data["replications"]))


# ---------------------------------------------------------------- sweeps


SWEEP = """
scenario = "breaker-failure"
seed = 3
replications = 3
metrics = ["latency_ms.p95", "error_rate", "breaker.state"]
[set]
duration = 40.0
[grid]
backend.capacity = [3, 4, 6, 8, 12, 16]
workload.rate = [100, 150]
"""


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def full_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "grid.toml"
    path.write_text(SWEEP)
    return sweep(load_sweep(path))


def data_rows(path: Path) -> int:
    try:
        return max(0, path.read_text().count("\n") - 1)
    except FileNotFoundError:
        return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig, status", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_sweep_keeps_completed_runs_on_a_signal_and_resumes(sweep_file, tmp_path, full_table, sig, status, capsys):
    out = tmp_path / "results.csv"
    checkpoint = tmp_path / "results.partial.csv"
    command = [sys.executable, "-m", "simrouter", "sweep", str(sweep_file), "--workers", "2", "--out", str(out), "--no-progress"]
    workers = []

    def four_done(process):
        wait_for(lambda: data_rows(checkpoint) >= 4 or process.poll() is not None, "4 completed runs")
        workers.extend(children(process.pid))

    code, _, err, _ = interrupt(command, four_done, sig)
    assert code == status, err
    assert "Traceback" not in err and "--resume runs the others" in err
    assert not checkpoint.exists() and (tmp_path / "results.summary.csv").exists()
    assert workers and not any(alive(pid) for pid in workers)
    kept = pd.read_csv(out)
    assert 4 <= len(kept) < len(full_table)
    # Every kept run is exactly the run an uninterrupted sweep makes.
    expected = full_table.set_index(["point", "replication"]).loc[list(zip(kept["point"], kept["replication"]))].reset_index()
    pd.testing.assert_frame_equal(kept, expected, check_dtype=False)

    assert main(["sweep", str(sweep_file), "--executor", "serial", "--out", str(out), "--no-progress", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming: {len(kept)} of {len(full_table)} runs already done" in err
    pd.testing.assert_frame_equal(pd.read_csv(out), full_table, check_dtype=False)


def test_resume_runs_only_what_is_missing(sweep_file, full_table, monkeypatch):
    spec = load_sweep(sweep_file)
    half = full_table.iloc[::2]
    done = completed_runs(half, spec)
    assert set(done) == set(zip(half["point"], half["replication"]))
    ran = []
    real = sweeps_module.point_metrics

    def counting(scenario, seed, replication, metrics):
        ran.append(replication)
        return real(scenario, seed, replication, metrics)

    monkeypatch.setattr(sweeps_module, "point_metrics", counting)
    table = sweep(spec, done=done)
    assert len(ran) == len(full_table) - len(half)
    pd.testing.assert_frame_equal(table, full_table)


def test_resume_refuses_a_table_from_another_sweep(sweep_file, full_table, tmp_path, capsys):
    other = full_table.copy()
    other.loc[0, "backend.capacity"] = 99
    out = tmp_path / "other.csv"
    other.to_csv(out, index=False)
    assert main(["sweep", str(sweep_file), "--executor", "serial", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "backend.capacity = 99" in err
    assert main(["sweep", str(sweep_file), "--resume"]) == 2
    assert "--resume: needs --out" in capsys.readouterr().err


def test_resume_reads_a_checkpoint_cut_mid_line(sweep_file, full_table, tmp_path, capsys):
    """A sweep killed outright (SIGKILL) leaves only its checkpoint, maybe with half a line."""
    out = tmp_path / "killed.csv"
    text = full_table.iloc[:5].assign(**{ERROR_COLUMN: ""}).to_csv(index=False)
    (tmp_path / "killed.partial.csv").write_text(text + "0,2,3,3,100,12.5")  # a torn last line
    assert main(["sweep", str(sweep_file), "--executor", "serial", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "resuming: 5 of 36 runs already done" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(out), full_table, check_dtype=False)


# ---------------------------------------------------------------- crashing points


REAL_POINT_METRICS = sweeps_module.point_metrics


def crashing_point(scenario, seed, replication, metrics):
    """``sweeps.point_metrics``, except that the capacity-4 points raise."""
    if scenario.backend.capacity == 4:
        raise ValueError(f"boom at capacity 4, replication {replication}")
    return REAL_POINT_METRICS(scenario, seed, replication, metrics)


def dying_point(scenario, seed, replication, metrics):
    """Kills its worker process outright on the capacity-4 points."""
    if scenario.backend.capacity == 4:
        os._exit(1)
    return REAL_POINT_METRICS(scenario, seed, replication, metrics)


@pytest.fixture
def crashing(monkeypatch):
    return lambda fn: monkeypatch.setattr(sweeps_module, "point_metrics", fn)


def assert_failed_only_at_capacity_4(table, full_table):
    failed = table[ERROR_COLUMN] != ""
    assert list(table.loc[failed, "backend.capacity"].unique()) == [4]
    assert all(error.startswith("ValueError: boom at capacity 4") for error in table.loc[failed, ERROR_COLUMN])
    assert table.loc[failed, ["latency_ms.p95", "error_rate"]].isna().all().all()
    ok = table.loc[~failed].drop(columns=ERROR_COLUMN).reset_index(drop=True)
    pd.testing.assert_frame_equal(ok, full_table[full_table["backend.capacity"] != 4].reset_index(drop=True))


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "processes"])
def test_a_point_that_raises_is_marked_failed_and_the_rest_completes(sweep_file, full_table, crashing, workers):
    crashing(crashing_point)
    spec = load_sweep(sweep_file)
    if workers is None:
        table = sweep(spec)
    else:
        with cf.ProcessPoolExecutor(workers) as pool:
            table = sweep(spec, executor=pool)
    assert len(table) == len(full_table)
    assert_failed_only_at_capacity_4(table, full_table)
    summary = aggregate(table, spec)
    assert set(summary.loc[summary["backend.capacity"] == 4, "n"]) == {0}  # failed runs are left out
    assert set(summary.loc[summary["backend.capacity"] != 4, "n"]) == {3}


def test_cli_sweep_with_a_failing_point_exits_3_and_resume_fills_it(sweep_file, full_table, crashing, tmp_path, capsys, monkeypatch):
    crashing(crashing_point)
    out = tmp_path / "failing.csv"
    assert main(["sweep", str(sweep_file), "--executor", "serial", "--out", str(out), "--no-progress"]) == EXIT_RUNS_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "6 of 36 runs failed" in err and "boom at capacity 4" in err
    written = pd.read_csv(out)
    written[ERROR_COLUMN] = written[ERROR_COLUMN].fillna("")
    assert_failed_only_at_capacity_4(written, full_table)
    monkeypatch.setattr(sweeps_module, "point_metrics", REAL_POINT_METRICS)  # the bug is fixed
    assert main(["sweep", str(sweep_file), "--executor", "serial", "--out", str(out), "--no-progress", "--resume"]) == 0
    assert "resuming: 30 of 36 runs already done" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(out), full_table, check_dtype=False)


def test_a_worker_that_dies_fails_its_runs_and_the_sweep_completes(sweep_file, full_table, crashing):
    crashing(dying_point)
    spec = load_sweep(sweep_file)
    with cf.ProcessPoolExecutor(2) as pool:
        table = sweep(spec, executor=pool)
    assert len(table) == len(full_table)
    failed = table[ERROR_COLUMN] != ""
    assert failed.any() and all("BrokenProcessPool" in error for error in table.loc[failed, ERROR_COLUMN])
    assert not (table.loc[~failed, "backend.capacity"] == 4).any()
    ok = table.loc[~failed].drop(columns=ERROR_COLUMN).set_index(["point", "replication"])
    pd.testing.assert_frame_equal(ok, full_table.set_index(["point", "replication"]).loc[ok.index], check_dtype=False)


# ---------------------------------------------------------------- live


def test_live_sigint_writes_every_request_and_exits_130(tmp_path):
    import simrouter

    overrides = ["backend.latency=0.05", "workload.requests_per_user=0", "duration=60", "workload.think_time=0.01",
                 "backend.failures.processing=0.0", "backend.failures.validation=0.0"]
    out = tmp_path / "cut.json"
    answered = []
    with serving(simrouter.load_scenario("concurrent", overrides)) as svc:
        argv = [sys.executable, "-m", "simrouter", "live", "concurrent", "--target", svc.url, "--json", str(out)]
        for item in overrides:
            argv += ["--set", item]

        def forty_answered(process):
            wait_for(lambda: svc.service.recorder.answered >= 40, "40 answered requests")
            answered.append(svc.service.recorder.answered)

        code, _, err, stopped_after = interrupt(argv, forty_answered, signal.SIGINT)
    assert code == 130, err
    assert stopped_after < 10  # not the 60 s the scenario asked for
    data = json.loads(out.read_text())
    requests = data["requests"]
    assert data["live"]["cut_short"] is True and data["live"]["interrupted_by"] == "SIGINT"
    assert requests["sent"] == sum(v for k, v in requests.items() if k != "sent")
    assert requests["interrupted"] <= 10  # at most one in flight per user
    assert requests["succeeded"] >= answered[0] - 10
