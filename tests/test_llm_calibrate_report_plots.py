"""``simrouter run --plot`` and ``simrouter report`` on ``llm-chat``: the TTFT, ITL and batch plots.

The files are real PNGs with content (not a blank canvas), and each panel draws
the run's own figures: the TTFT histogram counts every successful measured
request, the ITL histogram every inter-token gap (the tokens after the first),
the batch panel reaches the run's ``batch.max_running``.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
from matplotlib import image

from simrouter.cli import main
from simrouter.outcomes import SUCCESS
from simrouter.report.llm_plot import llm_figure
from simrouter.sim.run import simulate

PNG = b"\x89PNG\r\n\x1a\n"


def assert_real_png(data: bytes) -> None:
    assert data.startswith(PNG) and len(data) > 20_000
    pixels = image.imread(__import__("io").BytesIO(data), format="png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 900
    # Drawn, not blank: many distinct colours and a spread of brightness.
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 50
    assert pixels[..., :3].std() > 0.05


def test_run_plot_and_report_draw_ttft_itl_and_batch(tmp_path, capsys):
    run_json, plots = tmp_path / "run.json", tmp_path / "plots"
    assert main(["run", "llm-chat", "--set", "duration=30", "--json", str(run_json), "--plot", str(plots)]) == 0
    llm_png = [p for p in plots.iterdir() if p.name.endswith("-llm.png")]
    assert len(llm_png) == 1
    assert_real_png(llm_png[0].read_bytes())

    report = tmp_path / "report.html"
    assert main(["report", str(run_json), "-o", str(report)]) == 0
    html = report.read_text()
    embedded = re.search(r'<img alt="llm plot" src="data:image/png;base64,([^"]+)">', html)
    assert embedded is not None, "the report has no LLM plot"
    assert_real_png(base64.b64decode(embedded.group(1)))
    assert json.loads(run_json.read_text())["ttft_ms"]["count"] > 0


def test_panels_draw_the_runs_figures():
    result = simulate("llm-chat", overrides=["duration=30"])
    ttft_axes, itl_axes, batch_axes = llm_figure(result).axes
    ok = result.measured & (result.kind == SUCCESS) & np.isfinite(result.llm.first_token)
    assert sum(p.get_height() for p in ttft_axes.patches) == int(ok.sum()) == result.summary["ttft_ms"]["count"]
    steps = result.llm.steps
    assert sum(p.get_height() for p in itl_axes.patches) == steps["decoded"].sum() + steps["gaps"].size
    running = next(line for line in batch_axes.lines if line.get_label() == "running")
    assert running.get_ydata().max() == result.summary["batch"]["max_running"]
