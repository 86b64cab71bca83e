"""The notebooks in notebooks/ (README, *Notebooks*): each one runs top to bottom in a
fresh kernel of this Python (the venv's, whatever kernels the machine has installed), from
a scratch working directory, without a cell error; and each is committed without
outputs, so that its diffs stay readable. A notebook added to the folder is picked up.

Executing them takes about two minutes in all (the calibration fit is most of it): those
tests are ``slow`` (``make test-slow``, CI after ``make test``); the check for outputs is
not."""
import json
import sys

import pytest

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "rack-twin-test"  # a kernel spec of our own, pointing at sys.executable
CELL_TIMEOUT_S = 600  # a cell that runs longer than this has hung (the longest takes ~40 s)


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"what-if.ipynb", "calibration.ipynb", "rack-generations.ipynb",
                                           "sweep.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    """A JUPYTER_PATH holding a kernel spec that runs this interpreter's ipykernel."""
    base = tmp_path_factory.mktemp("jupyter")
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rack-twin (test)", "language": "python"}))
    return base


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_from_any_directory(path, kernel_path, tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # a cell error raises CellExecutionError, naming the cell and the traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [], \
        f"{path.name} left files in its working directory"
