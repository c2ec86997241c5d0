"""``simrouter report``: one self-contained HTML file from run JSONs, sweep and compare tables."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from simrouter.cli import main
from simrouter.report.html_report import build_report, load_input, rebuild

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """Run JSONs written by the CLI, as a user would make them."""
    folder = tmp_path_factory.mktemp("runs")
    paths = {}
    for name in ("breaker-failure", "concurrent"):
        paths[name] = folder / f"{name}.json"
        assert main(["run", name, "--seed", "3", "--json", str(paths[name])]) == 0
    return paths


def images(text: str) -> list[tuple[str, bytes]]:
    return [(alt, base64.b64decode(data)) for alt, data in IMAGE.findall(text)]


def assert_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # nothing fetched from elsewhere: every src is inline data, no stylesheet or script links
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "<script" not in text
    for _, png in images(text):
        assert png.startswith(PNG_MAGIC)


def test_one_run(run_files):
    path = run_files["breaker-failure"]
    data = json.loads(path.read_text())
    text = build_report([path], "Capacity review", progress=False)
    assert_self_contained(text)
    assert "<h1>Capacity review</h1>" in text
    assert f"{data['latency_ms']['p95']:,.1f} ms" in text
    for target in data["targets"]:
        assert f"<td>{target['name']}</td>" in text
    verdict = "ALL TARGETS MET" if all(t["passed"] is not False for t in data["targets"]) else "TARGETS MISSED"
    assert verdict in text
    for transition in data["breaker"]["transitions"]:
        assert f"{transition['t']:.2f} s: {transition['from']} → {transition['to']}" in text
    assert [alt for alt, _ in images(text)] == ["latency plot", "timeline plot"]


def test_rebuild_reproduces_the_run_or_says_why(run_files, tmp_path):
    item = rebuild(load_input(run_files["concurrent"]))
    assert item.result is not None and item.note is None
    assert item.result.summary["requests"] == item.data["requests"]
    # figures that a re-simulation does not give back: tables only, and a note
    data = json.loads(run_files["concurrent"].read_text())
    data["requests"]["sent"] += 1
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    item = rebuild(load_input(edited))
    assert item.result is None and "other figures" in item.note
    # no configuration (a live target's summary): tables only
    del data["config"]
    live = tmp_path / "live.json"
    live.write_text(json.dumps(data))
    text = build_report([live], progress=False)
    assert "No configuration in this JSON" in text and not images(text)


def test_several_runs_side_by_side(run_files):
    paths = [run_files["breaker-failure"], run_files["concurrent"]]
    text = build_report(paths, progress=False)
    assert_self_contained(text)
    assert "Runs side by side" in text
    assert "breaker-failure (seed 3, replication 0)" in text and "concurrent (seed 3, replication 0)" in text
    assert [alt for alt, _ in images(text)].count("latency distributions overlaid") == 1
    assert len(images(text)) == 1 + 2 * 2


def test_sweep_and_compare_tables(tmp_path):
    sweep = pd.DataFrame(
        {
            "backend.capacity": [4, 8, 4, 8],
            "workload.rate": [50, 50, 100, 100],
            "metric": "latency_ms.p95",
            "mean": [170.0, 140.0, 3900.0, 150.0],
            "ci_low": [100.0, 130.0, 3600.0, 140.0],
            "ci_high": [240.0, 150.0, 4200.0, 160.0],
        }
    )
    compare = pd.DataFrame(
        {"metric": ["latency_ms.p95", "throughput.rps"], "sim_mean": [131.0, 150.0], "ci_low": [127.0, 148.0], "ci_high": [135.0, 152.0], "live": [133.0, 140.0]}
    )
    sweep.to_csv(tmp_path / "sweep.csv", index=False)
    compare.to_csv(tmp_path / "compare.csv", index=False)
    text = build_report([tmp_path / "sweep.csv", tmp_path / "compare.csv"], progress=False)
    assert_self_contained(text)
    assert [alt for alt, _ in images(text)] == ["latency_ms.p95 sweep", "latency_ms.p95 heatmap", "simulated against live"]
    assert "[3,600, 4,200]" in text  # the sweep table shows each CI
    cells = re.findall(r"<td[^>]*>(inside|outside)</td>", text)
    assert cells == ["inside", "outside"]  # 133 in [127, 135]; 140 not in [148, 152]


def test_compare_json_is_accepted(tmp_path):
    rows = [{"metric": "latency_ms.p95", "unit": "ms", "sim_mean": 131.0, "ci_low": 127.0, "ci_high": 135.0, "pi_low": 120.0, "pi_high": 142.0, "live": 150.0}]
    path = tmp_path / "compare.json"
    path.write_text(json.dumps({"scenario": "concurrent", "rows": rows, "live": {}}))
    text = build_report([path], progress=False)
    assert "prediction interval" in text and re.findall(r"<td[^>]*>(inside|outside)</td>", text) == ["outside"]


def test_wide_sweep_table_is_accepted(tmp_path):
    wide = pd.DataFrame({"backend.capacity": [4, 8, 16], "latency_ms.p95_mean": [300.0, 150.0, 120.0], "latency_ms.p95_ci_low": [280.0, 140.0, 115.0], "latency_ms.p95_ci_high": [320.0, 160.0, 125.0]})
    wide.to_csv(tmp_path / "wide.csv", index=False)
    item = load_input(tmp_path / "wide.csv")
    assert item.kind == "sweep"
    np.testing.assert_allclose(item.frame["mean"], wide["latency_ms.p95_mean"])


def test_cli_report(run_files, tmp_path, capsys):
    out = tmp_path / "deep" / "report.html"
    assert main(["report", str(run_files["concurrent"]), "-o", str(out), "--title", "Review"]) == 0
    assert out.is_file() and "<h1>Review</h1>" in out.read_text()
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "no such file"),
        ("bad.json", "{not json", "not valid JSON"),
        ("other.json", '{"hello": 1}', "not a simrouter run JSON"),
        ("table.csv", "a,b\n1,2\n", "neither a sweep table nor a compare table"),
        ("notes.txt", "hello", "unknown file type"),
    ],
)
def test_cli_report_bad_inputs_exit_2(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err
    assert not (tmp_path / "r.html").exists()
