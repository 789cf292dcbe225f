"""The example notebooks run top to bottom on a real kernel, and are committed clean."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from nbformat import NotebookNode

# Notebooks that show a live feed's dashboard (the others work on recordings).
WITH_DASHBOARD = {"01_quickstart.ipynb", "02_record_and_replay.ipynb", "03_feed_quality.ipynb",
                  "05_exchanges.ipynb"}
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def read(path: Path) -> NotebookNode:
    """The notebook at ``path``, validated.

    nbformat is imported here, not with the module: its schema validator takes over a
    second of CPU to import, and each of the suite's workers collects this module.
    """
    import nbformat

    return nbformat.read(path, as_version=4)


def test_there_are_example_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} == WITH_DASHBOARD | {
        "04_backtest_import.ipynb", "06_markets.ipynb", "07_order_books.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_executed_in_order_without_errors(path: Path) -> None:
    notebook = read(path)
    counts = [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "re-run it top to bottom: make notebooks"
    errors = [o for cell in notebook.cells if cell.cell_type == "code"
              for o in cell.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_real_kernel(path: Path, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    notebook = read(path)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    if path.name in WITH_DASHBOARD:
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs)
