"""Issue 15: the README's ten-minute tour runs as written.

The tour's commands are the README's fenced blocks whose info string is
``sh tour``. They run in order as ONE bash script (``set -euo pipefail``) in a
temporary directory, with the venv's ``simrouter`` first on PATH, bounded in
time; the live step's port (8765 in the README) is replaced by a free one.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR_BLOCK = re.compile(r"^```sh tour\n(.*?)^```$", re.S | re.M)
README_PORT = "8765"
TIME_LIMIT_S = 480


def tour_blocks() -> list[str]:
    return TOUR_BLOCK.findall(README.read_text())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_readme_is_a_short_tour_that_keeps_make_demo_and_make_test():
    text = README.read_text()
    assert len(text.splitlines()) <= 260
    assert "make demo" in text and "make test" in text
    blocks = tour_blocks()
    assert len(blocks) >= 5
    tour = "\n".join(blocks)
    for step in ("simrouter run", "--replications", "simrouter capacity", "simrouter sweep", "simrouter serve", "simrouter live"):
        assert step in tour, step
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link


def test_the_tour_runs_as_written(tmp_path):
    script = "\n".join(tour_blocks()).replace(README_PORT, str(_free_port()))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "100"}
    process = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIME_LIMIT_S,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert (tmp_path / "capacity.json").exists() and (tmp_path / "live.json").exists()
    assert "max passing workload.rate" in process.stdout
