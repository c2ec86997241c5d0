"""Issue 15, point 4: config --toml round trip, init template, quiet broken pipe,
--label on plot files and report titles, make notebook, Dask on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import simrouter
from simrouter.cli import main

ROOT = Path(__file__).resolve().parents[1]
SIMROUTER = [sys.executable, "-m", "simrouter.cli"]


@pytest.mark.parametrize("name", simrouter.builtin_names())
def test_config_toml_is_read_back_and_reproduced_byte_for_byte(name, tmp_path, capsys):
    assert main(["config", name, "--toml"]) == 0
    first = capsys.readouterr().out
    path = tmp_path / f"{name}.toml"
    path.write_text(first)
    assert main(["config", str(path), "--toml"]) == 0
    assert capsys.readouterr().out == first
    assert simrouter.load_scenario(path) == simrouter.load_scenario(name)


def test_a_run_of_the_toml_file_is_the_run_of_the_scenario(tmp_path, capsys):
    overrides = ["--set", "backend.capacity=8", "--set", "workload.requests_per_user=20"]
    assert main(["config", "concurrent", "--toml", *overrides]) == 0
    path = tmp_path / "variant.toml"
    path.write_text(capsys.readouterr().out)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["run", "concurrent", *overrides, "--json", str(a), "--label", "x"]) == 0
    assert main(["run", str(path), "--json", str(b), "--label", "x"]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_init_writes_a_commented_template_of_every_section(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    data = tomllib.loads(text)
    for section in ("workload", "limiter", "breaker", "backend", "router", "targets", "metrics", "request"):
        assert section in data
        assert f"\n[{section}]" in text
    assert "[backend.failures]" in text and "[router.retry]" in text and "# [[faults]]" in text
    assert sum(line.startswith("#") for line in text.splitlines()) > 60
    scenario = simrouter.load_scenario(path)
    assert scenario.name == "mine"
    assert scenario == simrouter.Scenario(name="mine", description=scenario.description)
    assert main(["init", str(path)]) == 2  # kept unless --force
    assert "exists" in capsys.readouterr().err
    assert main(["init", str(path), "--force"]) == 0
    assert main(["run", str(path), "--set", "workload.requests_per_user=5"]) == 0


@pytest.mark.parametrize("command", [["run", "concurrent"], ["config", "concurrent"]])
def test_a_closed_pipe_ends_the_command_quietly(command, tmp_path):
    # The reader is gone before the command writes: every write hits a closed pipe.
    read, write = os.pipe()
    os.close(read)
    process = subprocess.run([*SIMROUTER, *command], stdout=write, stderr=subprocess.PIPE, cwd=tmp_path, timeout=120)
    os.close(write)
    assert process.returncode == 0, process.stderr
    assert process.stderr == b""


def test_plot_files_and_report_titles_carry_the_label(tmp_path):
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    base = ["run", "concurrent", "--set", "workload.requests_per_user=20", "--plot", str(plots)]
    assert main([*base, "--set", "backend.capacity=8"]) == 0
    assert main([*base, "--set", "backend.capacity=4"]) == 0
    assert main([*base, "--label", "four-slots", "--json", str(tmp_path / "four.json")]) == 0
    names = sorted(p.name for p in plots.iterdir())
    assert len(names) == 6  # the two digests differ: no variant overwrote another
    assert "concurrent-four-slots-latency.png" in names and "concurrent-four-slots-timeline.png" in names
    from simrouter.report.html_report import build_report

    html = build_report([tmp_path / "four.json"], progress=False)
    assert "concurrent [four-slots]" in html


def test_the_default_label_is_a_short_digest_of_the_overrides():
    from argparse import Namespace

    from simrouter.commands.common import run_label

    a = run_label(Namespace(label=None, overrides=["backend.capacity=8"]))
    assert a.startswith("set-") and len(a) == 12
    assert a != run_label(Namespace(label=None, overrides=["backend.capacity=4"]))
    assert run_label(Namespace(label=None, overrides=[])) == ""
    assert run_label(Namespace(label="mine", overrides=["x=1"])) == "mine"


def test_make_install_brings_jupyterlab_and_make_notebook_binds_loopback():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    names = {entry.split(">")[0].split("=")[0].strip() for entry in extras}
    assert {"jupyterlab", "nbconvert"} <= names
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "notebook"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    command = [line for line in dry.stdout.splitlines() if "jupyter lab" in line]
    assert command and "--ip=127.0.0.1" in command[0] and "--no-browser" in command[0]


def test_a_local_dask_cluster_listens_on_loopback_only():
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("distributed")
    from distributed import default_client

    from simrouter.executors import open_executor

    with open_executor("dask", 2) as executor:
        client = default_client()
        info = client.scheduler_info()
        addresses = [client.scheduler.address, *info["workers"]]
        assert all(address.startswith("tcp://127.0.0.1:") for address in addresses), addresses
        assert client.dashboard_link is None or "127.0.0.1" in client.dashboard_link
        assert executor.submit(sum, [1, 2]).result(timeout=60) == 3
        me = psutil.Process()
        listening = [
            c.laddr.ip
            for process in [me, *me.children(recursive=True)]
            for c in process.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and set(listening) == {"127.0.0.1"}, listening


def test_the_capacity_notebook_explains_its_theory_guess_and_compares_like_with_like():
    import nbformat

    notebook = nbformat.read(ROOT / "notebooks" / "capacity_planning.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in notebook.cells)
    assert "not exponential" in text and "like with like" in text
    assert 'dist="exponential"' in text  # the same queue simulated with exponential service, against M/M/c
