"""The notebooks run headless against studies made here, so they never rot; none ships outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from made_studies import run_synthetic, shared_sweeps
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(autouse=True)
def _this_checkouts_hpo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels import the hpo of this checkout, not whichever one is installed."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NOTEBOOKS.parent),
                                                                   os.environ.get("PYTHONPATH")])))


def _execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    """Everything the cells printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _figures(nb: nbformat.NotebookNode) -> int:
    return sum("application/vnd.plotly.v1+json" in out.get("data", {})
               for cell in nb.cells for out in cell.get("outputs", []))


@pytest.mark.parametrize("name", ["importance.ipynb", "two_stage.ipynb"])
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert 'os.environ.get("STUDY"' in nb.cells[1].source and 'os.environ.get("STORAGE")' in nb.cells[1].source


def test_importance_notebook(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDY", "mo")
    monkeypatch.setenv("STORAGE", shared_sweeps(tmp_path_factory))
    nb = _execute("importance.ipynb", tmp_path)
    text = _text(nb)
    assert "study mo: minimize val_loss, minimize train_seconds" in text and "pareto front" in text
    assert _figures(nb) == 6  # importance, history, slice, pareto, curves, time vs loss


def test_two_stage_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    run_synthetic(url, "sweep", n_trials=8)
    narrowed = {"lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
                "width": {"type": "categorical", "choices": [128, 192]}}
    run_synthetic(url, "sweep_stage2", n_trials=6, space=narrowed, fixed={"steps": 8, "dropout": 0.1},
                  parent={"study": "sweep", "top_k": 5})
    monkeypatch.setenv("STUDY", "sweep")
    monkeypatch.setenv("STORAGE", url)
    nb = _execute("two_stage.ipynb", tmp_path)
    text = _text(nb)
    assert "stage 2 was made from: {'study': 'sweep', 'top_k': 5}" in text
    assert "sweep_stage2" in text and "0.01 .. 0.1 (log)" in text and "fixed 0.1" in text
    assert _figures(nb) == 2


def _project(tmp_path: Path, with_db: bool) -> Path:
    """A project as a newcomer has it: search_spaces/, notebooks/ and (maybe) studies.db at the root."""
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "notebooks").mkdir()
    if with_db:
        run_synthetic(f"sqlite:///{tmp_path / 'studies.db'}", "sweep", n_trials=4)
    return tmp_path / "notebooks"


def _first_cells(name: str, n: int) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells = nb.cells[:n]
    return nb


def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel sees neither STORAGE nor HPO_STORAGE."""
    monkeypatch.delenv("STORAGE", raising=False)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.setenv("STUDY", "sweep")


def test_a_kernel_started_in_notebooks_opens_the_projects_studies_db(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = _project(tmp_path, with_db=True)
    _kernel_env(monkeypatch)
    nb = _first_cells("importance.ipynb", 3)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(here)}}).execute()
    assert "sweep" in _text(nb) and not (here / "studies.db").exists()
    streams = [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not streams, streams  # no tqdm or Optuna warnings


def test_no_studies_db_is_one_line_and_creates_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient.exceptions import CellExecutionError

    here = _project(tmp_path, with_db=False)
    _kernel_env(monkeypatch)
    nb = _first_cells("two_stage.ipynb", 3)
    with pytest.raises(CellExecutionError):
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(here)}}).execute()
    error = next(o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error")
    assert error["traceback"] == [f"error: no studies.db in {here} or up to its project's root (fix: run hpo "
                                  "optimize in the project first, or set STORAGE=URL before starting Jupyter)"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notebooks", "search_spaces"]
