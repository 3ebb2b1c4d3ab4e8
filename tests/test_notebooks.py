"""Every notebook runs top to bottom and shows its figures (a broken notebook fails the suite).

The notebooks are stored without outputs and executed here in a fresh kernel with
nbclient, once each (the tests of this file share the executed copies; pytest-xdist's
``--dist loadfile`` keeps a file's tests on one worker).  The kernel inherits
``MPLBACKEND=Agg`` from this process: the suite chooses the backend from outside,
one that needs no display.

Agg alone would draw nothing into a notebook.  Checked: under Agg, ``plt.show()``
and a figure as a cell's value give no ``image/png`` output, and ``display(fig)``
gives only the text ``<Figure size ...>``, because the kernel's PNG formatter for
figures is never registered.  Under the kernel's default inline backend, figures
stop appearing by themselves once ``sideq.plots`` has drawn: it calls
``matplotlib.use("Agg")``, which switches pyplot's backend.  So each notebook asks
for ``%matplotlib inline`` itself (it renders PNGs without a display and registers
the formatter, whatever MPLBACKEND says) and shows each figure with
``display(fig)``.  :func:`test_notebook_shows_figures` counts the ``image/png``
outputs of the executed notebook: it fails for a notebook that would draw nothing
when opened in Jupyter or VS Code, e.g. one that relies on the environment's
backend or calls ``matplotlib.use``.
"""

import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

FOLDER = pathlib.Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
_EXECUTED = {}


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _executed(path):
    """The notebook at ``path`` after running it (once per pytest run), or the
    error its run raised."""
    if path not in _EXECUTED:
        nb = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MPLBACKEND", "Agg")  # (the kernel starts inside execute and inherits it)
            try:
                client.execute()
                _EXECUTED[path] = nb
            except Exception as error:  # (kept, so that every test of this notebook reports it)
                _EXECUTED[path] = error
    result = _EXECUTED[path]
    if isinstance(result, Exception):
        raise result
    return result


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_gradient_flow_conservation.ipynb", "03_sweeps_basins.ipynb"} <= names
    assert (FOLDER / "README.md").is_file()
    readme = (FOLDER / "README.md").read_text()
    assert all(name in readme for name in names), "notebooks/README.md has a line for each notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in _code_cells(nb):
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"store {path.name} without outputs (e.g. jupyter nbconvert --clear-output --inplace)"
        )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path):
    nb = _executed(path)
    errors = [o for c in _code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shows_figures(path):
    stored = nbformat.read(path, as_version=4)
    for cell in _code_cells(stored):
        assert not re.search(r"\b(matplotlib|mpl)\.use\s*\(", cell.source), (
            f"{path.name} chooses a backend with matplotlib.use: it would draw nothing in Jupyter"
        )
    nb = _executed(path)
    shown = 0
    for cell in _code_cells(nb):
        pngs = sum("image/png" in o.get("data", {}) for o in cell.outputs)
        if re.search(r"^\s*show\(", cell.source, flags=re.M):  # (a cell that draws shows a figure)
            assert pngs >= 1, f"{path.name}: no figure appears from the cell\n{cell.source[:200]}"
        shown += pngs
    assert shown >= 1, f"{path.name} shows no figure"
