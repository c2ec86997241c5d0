"""The README's "Your own endpoint" example (docs/examples/your-endpoint.toml), run as a
user would: `serve --protocol openai` with the file, `simrouter live` with the key in the
environment, then `simrouter calibrate` on its JSON; the key is written nowhere."""

import json
import os
import subprocess
import sys
from pathlib import Path

from simrouter.config import load_scenario

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "your-endpoint.toml"
KEY = "sk-example-0123456789abcdef"


def test_the_example_runs_against_serve_openai_and_calibrates(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "simrouter", "serve", "--protocol", "openai", "--config", str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "listening on " in line, process.stderr.read()
        url = line.split("listening on ", 1)[1].split()[0]
        out = tmp_path / "live.json"
        env = {**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "200"}
        # The example's own workload (4 req/s), cut to 8 s: TTFT p50 0.12 s, 32 tokens 10 ms apart.
        run = subprocess.run(
            [sys.executable, "-m", "simrouter", "live", str(EXAMPLE), "--target", url, "--json", str(out), "--set", "duration=8"],
            capture_output=True, text=True, env=env, timeout=120,
        )
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    n = data["requests"]["succeeded"]
    assert n >= 15 and n == data["requests"]["sent"]
    assert data["tokens"]["output"] == 32 * n and data["tokens"]["source"] == "usage"
    # The median of ~30 lognormal TTFTs (P50 120 ms, sigma 0.52) has a standard error of ~14 ms.
    assert 70 < data["ttft_ms"]["p50"] < 250 and 9.5 < data["itl_ms"]["p50"] < 25
    assert data["config"]["request"]["headers"] == {"Authorization": "Bearer ${OPENAI_API_KEY}"}
    assert "TTFT" in run.stdout
    calibrated = tmp_path / "calibrated.toml"
    cal = subprocess.run(
        [sys.executable, "-m", "simrouter", "calibrate", "--from", str(out), "--out", str(calibrated)],
        capture_output=True, text=True, timeout=120,
    )
    assert cal.returncode == 0, cal.stderr
    scenario = load_scenario(calibrated)
    assert scenario.backend.ttft is not None and scenario.backend.tpot is not None
    assert scenario.request.headers == {"Authorization": "Bearer ${OPENAI_API_KEY}"}
    for text in (run.stdout, run.stderr, cal.stdout, cal.stderr):
        assert KEY not in text
    for path in tmp_path.rglob("*"):
        assert KEY.encode() not in path.read_bytes(), path
