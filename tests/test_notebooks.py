"""The notebooks in notebooks/ run top to bottom in a fresh kernel at their default size.

Each is committed without outputs and opens with a code cell tagged ``parameters``
(the size knobs). It is executed with nbclient in a new ``python3`` kernel, in a
temporary working directory, with a per-cell timeout; any cell error fails the test,
and every notebook must draw at least one figure.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 180


def test_there_are_notebooks():
    assert {"breaker_tuning.ipynb", "capacity_planning.ipynb", "sim_vs_live.ipynb"} <= {path.name for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_committed_clean_and_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell sets the size"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "commit notebooks without outputs"

    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs), "no figure was drawn"
