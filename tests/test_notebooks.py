"""The notebooks in notebooks/ run, top to bottom, in a fresh Jupyter kernel, so they can never rot.

Each notebook is executed through Jupyter's own machinery (nbformat reads it, nbclient runs it
in an ipykernel kernel), the way "Restart & Run All" would: no cell may raise, and every cell
that draws a figure must show it inline (an ``image/png`` output) with no ``%matplotlib``
magic. The kernel is the ``python3`` kernel of ipykernel, which jupyter_client starts with this
very interpreter (``sys.executable``), and it imports the digitnet under test (its source folder
goes first on the kernel's PYTHONPATH; the last check confirms it).

A cell that draws without meaning to show anything can say so with the cell tag ``no-figure``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

import digitnet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SRC = Path(digitnet.__file__).resolve().parents[1]  # the folder holding the digitnet under test

# A cell "draws" when it calls one of digitnet's figure functions (plots.*_figure, plot_descent)
# or opens a pyplot figure; such a cell must show an image.
DRAWS = re.compile(r"\b\w+_figure\(|\bplot_descent\(|\bplt\.(subplots|figure)\(")
CHECK = "import sys, digitnet\nprint(sys.executable)\nprint(digitnet.__file__)"


def run_notebook(nb, cwd: Path, monkeypatch, timeout: int = 900):
    """Execute ``nb`` (a NotebookNode) in place in a fresh python3 kernel started in ``cwd``."""
    path = os.pathsep.join([str(SRC)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    monkeypatch.setenv("PYTHONPATH", path)  # the kernel inherits the environment
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own default, as a user has it
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def test_the_notebooks_are_there():
    """The suite always has notebook tests (never pytest's exit 5), and the video's is among them."""
    names = {p.name for p in NOTEBOOKS}
    assert "the-video.ipynb" in names, f"notebooks/ holds {sorted(names)}"
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        nbformat.validate(nb)
        leftovers = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not leftovers, f"{p.name}: cells {leftovers} were committed with outputs; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_inline_figures(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    try:
        run_notebook(nb, tmp_path, monkeypatch)
    except nbclient.exceptions.CellExecutionError as e:  # names the cell and the error
        pytest.fail(f"{path.name}: a cell failed:\n{str(e)[-3000:]}")
    executable, where = _text(nb.cells[-1]).split()
    assert Path(where).resolve().parents[1] == SRC, f"the kernel imported another digitnet: {where}"
    assert executable == sys.executable
    drawing = [i for i, c in enumerate(nb.cells[:-1])
               if c.cell_type == "code" and DRAWS.search(c.source) and "no-figure" not in c.metadata.get("tags", [])]
    blank = [i for i in drawing if not _images(nb.cells[i])]
    assert not blank, f"{path.name}: cells {blank} draw a figure but show no image inline"
    errors = [i for i, c in enumerate(nb.cells) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_a_failing_cell_fails_and_a_figure_shows(tmp_path, monkeypatch):
    """The harness can fail: a cell that raises stops the run with the cell's error; and a
    digitnet figure, the last expression of a cell, shows as a PNG in a fresh kernel."""
    ok = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import numpy as np\nfrom digitnet.plots import mosaic, weights_figure\n"
        "weights_figure(np.zeros((4, 28, 28)))")])
    run_notebook(ok, tmp_path, monkeypatch)
    (out,) = ok.cells[0].outputs
    assert out["data"]["image/png"]  # base64 text of the PNG
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                          nbformat.v4.new_code_cell("1 / 0"),
                                          nbformat.v4.new_code_cell("y = 2")])
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="ZeroDivisionError"):
        run_notebook(bad, tmp_path, monkeypatch)
    assert not bad.cells[2].get("outputs") and bad.cells[2].get("execution_count") is None
